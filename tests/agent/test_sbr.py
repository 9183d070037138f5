"""SBR in the service (issue 14): STS requests and XML signatures made in custody and checked by
xmlsec1 and signxml, the RST's names, the ActAs rule, aliases and renewal."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from lxml import etree
from mcagent.agent.domain import wssec
from mcagent.agent.domain.calls import SignItem
from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from mcagent.agent.domain.model import Backend
from mcagent.agent.domain.policy import Role
from mcagent.agent.domain.terms import CURRENT_TERMS
from mcagent.agent.storage import open_storage
from mcagent.hsm.base import KeyType

from tests.agent.clocked import make_agent
from tests.sbr_verify import STS_ID_NODES, both_verify

PROVIDER = "51824753556"
CLIENT = "53004085616"
OTHER = "33051775556"
APPLIES_TO = "https://sbr.gov.au/services"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
NS = {"s": wssec.SOAP12, "a": wssec.WSA, "o": wssec.WSSE, "u": wssec.WSU, "ds": "http://www.w3.org/2000/09/xmldsig#",
      "t": wssec.WST, "wsp": wssec.WSP, "i": wssec.IDENTITY, "tr": wssec.WST14, "v": wssec.VANGUARD}


@pytest.fixture
def world(tmp_path):
    agent = make_agent(tmp_path, NOW)
    agent.service.ensure_ca()
    agent.pa = agent.business(PROVIDER, "Cloud Pty Ltd", "pam")
    agent.client_pa = agent.business(CLIENT, "Client Pty Ltd", "cliff")
    agent.other_pa = agent.business(OTHER, "Other Cloud Pty Ltd", "olga")
    agent.software = agent.grant(agent.pa, PROVIDER, "sw", Role.SOFTWARE)
    agent.credential = agent.service.create_credential(
        agent.pa, abn=PROVIDER, name="cloud", key_type=KeyType.RSA_2048, backend=Backend.FILE, store=None,
        accepted_terms_version=CURRENT_TERMS.version).view.credential
    yield agent
    agent.close()


def _notify(world, *, dsp=PROVIDER, start=None, end=None, request=False):
    options = dict(abn=CLIENT, dsp_abn=dsp, software_ids=["1234567890"], end=end, agencies=["osir"],
                   start=start or world.service.today().isoformat())
    if request:
        by = world.pa if dsp == PROVIDER else world.other_pa
        return world.service.request_notification(by, **options).notification
    return world.service.add_notification(world.client_pa, **options, declaration=True).notification


def _sts(world, reference=None, **options):
    document, _ = world.service.sign_sts_request(world.software, reference or world.credential.id,
                                                 applies_to=APPLIES_TO, **options)
    return document


def _leaf(world) -> bytes:
    return world.storage.get_credential(world.credential.id).certificate_chain[0]


def test_sts_request_verifies_with_xmlsec1_and_signxml_and_a_changed_byte_breaks_both(world):
    document = _sts(world)
    assert both_verify(document, _leaf(world), STS_ID_NODES, 6) == (True, True)
    tampered = document.replace(APPLIES_TO.encode(), APPLIES_TO.replace("sbr", "sbs").encode())
    assert len(tampered) == len(document) and tampered != document
    assert both_verify(tampered, _leaf(world), STS_ID_NODES, 6) == (False, False)
    # and the signature value really is the credential's key: the leaf's public key checks it
    root = etree.fromstring(document)
    signed_info = root.find(".//ds:SignedInfo", NS)
    value = base64.b64decode(root.findtext(".//ds:SignatureValue", namespaces=NS))
    public = x509.load_der_x509_certificate(_leaf(world)).public_key()
    public.verify(value, etree.tostring(signed_info, method="c14n", exclusive=True), padding.PKCS1v15(),
                  hashes.SHA256())


def test_rst_names_namespaces_algorithms_window_and_lifetime(world):
    _notify(world)
    root = etree.fromstring(_sts(world, act_as=CLIENT, lifetime_minutes=20))
    assert root.tag == f"{{{wssec.SOAP12}}}Envelope"
    header, body = root.find("s:Header", NS), root.find("s:Body", NS)
    assert header.findtext("a:Action", namespaces=NS) == "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue"
    assert header.find("a:Action", NS).get(f"{{{wssec.SOAP12}}}mustUnderstand") == "1"
    assert header.findtext("a:MessageID", namespaces=NS).startswith("urn:uuid:")
    assert header.findtext("a:ReplyTo/a:Address", namespaces=NS) == "http://www.w3.org/2005/08/addressing/anonymous"
    assert header.findtext("a:To", namespaces=NS) == "https://softwareauthorisations.ato.gov.au/R3.0/S007v1.3/service.svc"
    security = header.find("o:Security", NS)
    assert security.get(f"{{{wssec.SOAP12}}}mustUnderstand") == "1"
    assert [etree.QName(e).localname for e in security] == ["Timestamp", "BinarySecurityToken", "Signature"]
    created = dt.datetime.fromisoformat(security.findtext("u:Timestamp/u:Created", namespaces=NS))
    expires = dt.datetime.fromisoformat(security.findtext("u:Timestamp/u:Expires", namespaces=NS))
    assert created == NOW and expires - created == dt.timedelta(minutes=5)
    token = security.find("o:BinarySecurityToken", NS)
    assert token.get("ValueType") == wssec.X509V3 and token.get("EncodingType") == wssec.BASE64
    assert base64.b64decode(token.text) == _leaf(world)
    signature = security.find("ds:Signature", NS)
    signed_info = signature.find("ds:SignedInfo", NS)
    assert signed_info.find("ds:CanonicalizationMethod", NS).get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"
    assert signed_info.find("ds:SignatureMethod", NS).get("Algorithm") == \
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    references = signed_info.findall("ds:Reference", NS)
    ids = {e.get(f"{{{wssec.WSU}}}Id"): etree.QName(e).localname for e in root.iter() if e.get(f"{{{wssec.WSU}}}Id")}
    assert sorted(ids[r.get("URI")[1:]] for r in references if r.get("URI")[1:] in ids) == \
        sorted(["Timestamp", "Action", "MessageID", "ReplyTo", "To", "Body"])
    for reference in references:
        assert reference.find("ds:DigestMethod", NS).get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
        assert [t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", NS)] == \
            ["http://www.w3.org/2001/10/xml-exc-c14n#"]
    str_reference = signature.find("ds:KeyInfo/o:SecurityTokenReference/o:Reference", NS)
    assert str_reference.get("URI") == "#" + token.get(f"{{{wssec.WSU}}}Id")
    assert str_reference.get("ValueType") == wssec.X509V3
    rst = body.find("t:RequestSecurityToken", NS)
    assert rst.findtext("wsp:AppliesTo/a:EndpointReference/a:Address", namespaces=NS) == APPLIES_TO
    assert rst.findtext("t:RequestType", namespaces=NS) == "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
    assert rst.findtext("t:KeyType", namespaces=NS) == "http://docs.oasis-open.org/ws-sx/ws-trust/200512/SymmetricKey"
    assert rst.findtext("t:KeySize", namespaces=NS) == "256"
    assert rst.findtext("t:TokenType", namespaces=NS) == wssec.TOKEN_TYPE_SAML2
    claims = rst.find("t:Claims", NS)
    assert claims.get("Dialect") == "http://schemas.xmlsoap.org/ws/2005/05/identity"
    assert [c.get("Uri") for c in claims.findall("i:ClaimType", NS)] == [
        "http://vanguard.ebusiness.gov.au/2008/06/identity/claims/credentialtype",
        "http://vanguard.ebusiness.gov.au/2008/06/identity/claims/abn"]
    life_created = dt.datetime.fromisoformat(rst.findtext("t:Lifetime/u:Created", namespaces=NS))
    life_expires = dt.datetime.fromisoformat(rst.findtext("t:Lifetime/u:Expires", namespaces=NS))
    assert life_created == NOW and life_expires - life_created == dt.timedelta(minutes=20)
    relationship = rst.find("tr:ActAs/v:RelationshipToken", NS)
    value = f"{{{wssec.VANGUARD}}}Value"
    assert relationship.find("v:FirstParty", NS).get(value) == PROVIDER
    assert relationship.find("v:SecondParty", NS).get(value) == CLIENT


@pytest.mark.parametrize(("options", "message"), [
    ({"lifetime_minutes": 61}, "1 to 60 minutes"),
    ({"sts_endpoint": "ftp://x"}, "STS endpoint"),
    ({"claims": ["not a uri"]}, "claim type"),
    ({"act_as": "12345678901"}, "checksum"),
])
def test_sts_bad_input_is_refused(world, options, message):
    with pytest.raises(InvalidArgument, match=message):
        _sts(world, **options)


def test_act_as_allowed_with_an_active_notification(world):
    _notify(world)
    assert both_verify(_sts(world, act_as=CLIENT), _leaf(world), STS_ID_NODES, 6) == (True, True)
    entry = [e for e in world.service._audit_log.entries() if e.action == "credential.sts-request"][-1]
    assert entry.outcome == "allowed" and entry.detail["act_as"] == CLIENT and entry.detail["applies_to"] == APPLIES_TO


def _refused(world, *texts):
    with pytest.raises(PermissionDenied) as raised:
        _sts(world, act_as=CLIENT)
    for text in texts:
        assert text in str(raised.value), str(raised.value)
    entry = [e for e in world.service._audit_log.entries() if e.action == "credential.sts-request"][-1]
    assert entry.outcome == "refused" and entry.detail["act_as"] == CLIENT


def test_act_as_refused_without_a_notification(world):
    _refused(world, f"no active cloud software notification by business {CLIENT} names {PROVIDER} as its provider")


def test_act_as_refused_with_a_pending_one(world):
    pending = _notify(world, request=True)
    _refused(world, "no active cloud software notification", f"{pending.id} is pending")


def test_act_as_refused_with_a_removed_one(world):
    removed = _notify(world)
    world.service.remove_notification(world.client_pa, removed.id, confirm=True)
    _refused(world, f"{removed.id} is removed")


def test_act_as_refused_with_an_ended_one(world):
    ended = _notify(world, end=world.service.today().isoformat())
    assert both_verify(_sts(world, act_as=CLIENT), _leaf(world), STS_ID_NODES, 6) == (True, True)
    world.clock.advance(days=1)
    _refused(world, f"{ended.id} ended on")


def test_act_as_refused_for_one_naming_another_provider(world):
    _notify(world, dsp=OTHER)
    _refused(world, f"names {PROVIDER} as its provider")


def test_act_as_refused_for_a_credential_flagged_local(world):
    _notify(world)
    world.service.set_credential_local(world.pa, world.credential.id, True)
    _refused(world, "flagged local")
    assert both_verify(_sts(world), _leaf(world), STS_ID_NODES, 6) == (True, True)  # without ActAs it still works
    world.service.set_credential_local(world.pa, world.credential.id, False)
    _sts(world, act_as=CLIENT)


DOCUMENT = (b'<?xml version="1.0"?><doc xmlns:u="' + wssec.WSU.encode() + b'">'
            b'<head Id="h1">header</head><part u:Id="p1"><amount>100</amount></part><other>x</other></doc>')


def test_generic_xml_signature_verifies_and_a_changed_byte_breaks_it(world):
    alias = f"ABRD:{PROVIDER}_cloud"
    signed, credential = world.service.sign_xml(world.software, alias, document=DOCUMENT, ids=["h1", "p1"])
    assert credential.id == world.credential.id
    nodes = ["head", "part"]
    assert both_verify(signed, _leaf(world), nodes, 2) == (True, True)
    tampered = signed.replace(b"<amount>100</amount>", b"<amount>900</amount>")
    assert both_verify(tampered, _leaf(world), nodes, 2) == (False, False)


@pytest.mark.parametrize(("document", "ids", "message"), [
    (b'<!DOCTYPE d [<!ENTITY x "y">]><d Id="a">&x;</d>', ["a"], "refused"),
    (b'<!DOCTYPE d SYSTEM "http://example.com/d.dtd"><d Id="a"/>', ["a"], "refused"),
    (b'<d><a Id="x"/><b Id="x"/></d>', ["x"], "on 2 elements"),
    (b'<d><a Id="x"/></d>', ["y"], "on 0 elements"),
    (b'<d><a Id="x"/></d>', [], "1 to 32"),
    (b'<d><a Id="x"/>', ["x"], "not well-formed"),
    (b'<d Id="x">' + b"a" * (1 << 20) + b"</d>", ["x"], "at most"),
])
def test_hostile_or_bad_documents_are_refused(world, document, ids, message):
    with pytest.raises(InvalidArgument, match=message):
        world.service.sign_xml(world.software, world.credential.id, document=document, ids=ids)


def _sign(world, reference):
    signed = world.service.sign(world.software, SignItem(credential_id=reference, data=b"payload"))
    return signed.signature, signed.certificate_chain[0]


def _issue_elsewhere(csr_pem: bytes) -> bytes:
    """What an outside CA does with the CSR: a certificate for its subject and key."""
    csr = x509.load_pem_x509_csr(csr_pem)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Outside CA")])
    return x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_name).public_key(csr.public_key()) \
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1)) \
        .not_valid_after(NOW + dt.timedelta(days=700)).sign(ca_key, hashes.SHA256()) \
        .public_bytes(serialization.Encoding.PEM)


def test_alias_moves_on_install_once_and_the_old_credential_keeps_working_by_id(world):
    alias = f"ABRD:{PROVIDER}_cloud"
    old = world.credential
    _, leaf = _sign(world, alias)
    assert leaf == _leaf(world)
    with pytest.raises(NotFound, match="no credential with alias"):
        _sign(world, f"ABRD:{PROVIDER}_nothing")
    world.service.set_credential_local(world.pa, alias, True)
    world.clock.advance(seconds=1)
    renewed = world.service.renew_credential(world.pa, alias, issue=False,
                                             accepted_terms_version=CURRENT_TERMS.version)
    new = renewed.view.credential
    assert renewed.alias == alias and not renewed.alias_moved and new.id != old.id
    assert world.service.credential_id_for(alias) == old.id  # not before its certificate is installed
    certificate = _issue_elsewhere(renewed.csr.public_bytes(serialization.Encoding.PEM))
    world.service.install_certificate(world.pa, new.id, certificate, None)
    assert world.service.credential_id_for(alias) == new.id
    signature, leaf = _sign(world, alias)
    x509.load_der_x509_certificate(leaf).public_key().verify(signature, b"payload", padding.PKCS1v15(),
                                                             hashes.SHA256())
    assert leaf != _leaf(world)  # the new key's certificate, not the old one's
    assert _sign(world, old.id)[1] == _leaf(world)  # the old one, by id
    moved = [e for e in world.service._audit_log.entries() if e.action == "credential.alias-moved"]
    assert [(e.detail["from"], e.detail["to"]) for e in moved] == [(old.id, new.id)]
    assert world.storage.is_local(new.id)  # the local flag carried over
    world.service.install_certificate(world.pa, new.id, certificate, None)  # again: no second move
    assert len([e for e in world.service._audit_log.entries() if e.action == "credential.alias-moved"]) == 1


def test_an_alias_moved_by_another_process_signs_with_the_certificate_installed_with_it(world, tmp_path):
    """A request's cached view is of when it began; an alias read now must not be paired with it."""
    alias = f"ABRD:{PROVIDER}_cloud"
    renewed = world.service.renew_credential(world.pa, alias, issue=False,
                                             accepted_terms_version=CURRENT_TERMS.version)
    new = renewed.view.credential
    installed = x509.load_pem_x509_certificate(_issue_elsewhere(renewed.csr.public_bytes(serialization.Encoding.PEM)))
    installed_der = installed.public_bytes(serialization.Encoding.DER)
    with world.service.one_state_version():  # one request, begun before the other process's install
        assert world.service._credential(new.id).certificate_chain[0] != installed_der  # cached: the agent's leaf
        other = open_storage(str(tmp_path / "agent.db"))  # another process on the same database
        with other.transaction():
            other.update_credential(new.id, new.status, certificate_chain=(installed_der,))
            assert other.point_alias(alias, new.id, world.credential.id, NOW)
        other.close()
        signature, leaf = _sign(world, alias)
    assert leaf == installed_der
    installed.public_key().verify(signature, b"payload", padding.PKCS1v15(), hashes.SHA256())


def test_renew_with_issue_moves_the_alias_at_once(world):
    alias = f"ABRD:{PROVIDER}_cloud"
    world.clock.advance(seconds=1)
    renewed = world.service.renew_credential(world.pa, alias, issue=True, accepted_terms_version=CURRENT_TERMS.version)
    assert renewed.alias_moved and renewed.csr is None
    assert world.service.credential_id_for(alias) == renewed.view.credential.id


def test_a_create_by_the_same_name_takes_the_alias_with_one_entry(world):
    alias = f"ABRD:{PROVIDER}_cloud"
    world.clock.advance(seconds=1)
    newer = world.service.create_credential(
        world.pa, abn=PROVIDER, name="cloud", key_type=KeyType.EC_P256, backend=Backend.FILE, store=None,
        accepted_terms_version=CURRENT_TERMS.version).view.credential
    assert world.service.credential_id_for(alias) == newer.id
    moved = [e for e in world.service._audit_log.entries() if e.action == "credential.alias-moved"]
    assert [(e.detail["from"], e.detail["to"]) for e in moved] == [(world.credential.id, newer.id)]
    # installing again on the older credential does not take the alias back
    leaf = x509.load_der_x509_certificate(_leaf(world)).public_bytes(serialization.Encoding.PEM)
    world.service.install_certificate(world.pa, world.credential.id, leaf, None)
    assert world.service.credential_id_for(alias) == newer.id


def test_migration_0007_backfills_the_newest_live_credential_per_name(world):
    world.clock.advance(seconds=1)
    newer = world.service.create_credential(
        world.pa, abn=PROVIDER, name="cloud", key_type=KeyType.EC_P256, backend=Backend.FILE, store=None,
        accepted_terms_version=CURRENT_TERMS.version).view.credential
    path = world.storage._conn.execute("PRAGMA database_list").fetchone()[2]
    world.close()
    import sqlite3

    from mcagent.agent.storage import Storage
    from mcagent.agent.storage.migrate import migrations

    with sqlite3.connect(path) as db:  # as a database from before 0007 holds it
        db.execute("DELETE FROM credential_alias")
        db.execute(f"PRAGMA user_version = {[m.id[:4] for m in migrations()].index('0007')}")
    storage = Storage(path)
    try:
        assert storage.alias_target(f"ABRD:{PROVIDER}_cloud") == newer.id
    finally:
        storage.close()
    world.close = lambda: None  # closed above


class _Observer:
    def __init__(self):
        self.expiring = {}

    def credentials_expiring(self, within_days, count):
        self.expiring[within_days] = count

    def signs_finished(self, *args, **kwargs): ...
    def sign_duration(self, *args): ...
    def audit_committed(self, *args): ...
    def audit_queue_depth(self, *args): ...


def test_expiry_watch_counts_warns_once_and_lists(world, caplog):
    observer = _Observer()
    world.service._observer = observer
    expires = x509.load_der_x509_certificate(_leaf(world)).not_valid_after_utc
    sydney_day = expires.astimezone(world.service._timezone).date()

    def days_before(days):  # noon in Sydney, `days` calendar days before the expiry date
        noon = dt.datetime.combine(sydney_day - dt.timedelta(days=days), dt.time(12), world.service._timezone)
        world.clock.now = noon.astimezone(dt.UTC)

    days_before(91)
    assert world.service.watch_expiry() == [] and observer.expiring == {90: 0, 30: 0}
    assert world.service.expiring_credentials(world.pa, None, 90) == []
    days_before(89)
    with caplog.at_level("WARNING"):
        assert world.service.watch_expiry() == []
        world.service.watch_expiry()  # once per threshold
    assert observer.expiring == {90: 1, 30: 0}
    assert [r.getMessage() for r in caplog.records if "expires" in r.getMessage()] == [
        f"credential {world.credential.id} (cloud of {PROVIDER}): its certificate expires on {sydney_day}, in 89 days "
        f"(within 90); renew it with `mcagent credential renew ABRD:{PROVIDER}_cloud`"]
    assert [e.days_left for e in world.service.expiring_credentials(world.pa, None, 90)] == [89]
    days_before(29)
    caplog.clear()
    with caplog.at_level("WARNING"):
        soon = world.service.watch_expiry()
    assert observer.expiring == {90: 1, 30: 1}
    assert soon == [f"{world.credential.id} (ABRD:{PROVIDER}_cloud) expires on {sydney_day}, in 29 days"]
    assert len([r for r in caplog.records if "within 30" in r.getMessage()]) == 1
    world.clock.now = expires + dt.timedelta(seconds=1)
    with pytest.raises(FailedPrecondition, match="certificate expired"):
        _sts(world)


def test_in_a_softhsm_token_the_signature_value_is_made_by_the_token(tmp_path, pkcs11_store):
    """The key is a non-extractable token object: only the token can have made a value that verifies."""
    from mcagent.agent.app import build_service
    from mcagent.agent.keys import KeyStores
    from mcagent.agent.storage import Storage

    from tests.agent.clocked import ADMIN
    from tests.conftest import KEYSTORE_PASSWORD

    storage = Storage(str(tmp_path / "token.db"))
    # The agent's own keys (CA, audit) in the file: the session's token is shared with the e2e daemons.
    keys = KeyStores(default_backend=Backend.FILE, keystore_files={"default": str(tmp_path / "k.mcks")},
                     keystore_password=KEYSTORE_PASSWORD, pkcs11=pkcs11_store)
    service = build_service(storage, keys)
    try:
        service.ensure_ca()
        principal, _ = service.create_principal(ADMIN, "tokpa", None, None)
        service.register_business(ADMIN, PROVIDER, "Cloud Pty Ltd", "tokpa")
        from mcagent.agent.domain.calls import Caller

        pa = Caller("tokpa", principal.id)
        credential = service.create_credential(pa, abn=PROVIDER, name="in-token", key_type=KeyType.RSA_2048,
                                               backend=Backend.PKCS11, store=None,
                                               accepted_terms_version=CURRENT_TERMS.version).view.credential
        assert credential.key_uri.startswith("pkcs11:")
        alias = f"ABRD:{PROVIDER}_in-token"
        envelope, _ = service.sign_sts_request(pa, alias, applies_to=APPLIES_TO)
        leaf = storage.get_credential(credential.id).certificate_chain[0]
        assert both_verify(envelope, leaf, STS_ID_NODES, 6) == (True, True)
        batch = service.sign_batch(pa, [SignItem(credential_id=alias, digest=b"\1" * 32),
                                        SignItem(credential_id=credential.id, digest=b"\2" * 32)])
        assert all(r.certificate_chain[0] == leaf for r in batch)
    finally:
        service.close()
        storage.close()
