"""Credential creation keeps record and key together, on a real SQLite file and real backends."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from mcagent.agent.app import build_service
from mcagent.agent.domain.calls import Caller, SignItem
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from mcagent.agent.domain.model import Backend
from mcagent.agent.domain.terms import CURRENT_TERMS
from mcagent.agent.keys import KeyStores
from mcagent.agent.storage import Storage
from mcagent.hsm.base import CreateKeyRequest, KeyType
from mcagent.hsm.errors import StoreCorrupted

from tests.conftest import KEYSTORE_PASSWORD

ABN = "51824753556"
ADMIN = Caller("test-admin", is_admin=True)


@pytest.fixture
def storage(tmp_path):
    store = Storage(str(tmp_path / "agent.db"))
    yield store
    store.close()


@pytest.fixture
def service(tmp_path, storage, pkcs11_store):
    keys = KeyStores(
        default_backend=Backend.FILE,
        keystore_files={"default": str(tmp_path / "keys.mcks")},
        keystore_password=KEYSTORE_PASSWORD,
        pkcs11=pkcs11_store,
    )
    service = build_service(storage, keys)
    service.ensure_ca()
    principal, _ = service.create_principal(ADMIN, "pa", None, None)
    service.register_business(ADMIN, ABN, "Example Pty Ltd", "pa")
    service.test_pa = Caller("pa", principal.id)
    return service


def _create(service, backend=Backend.PKCS11, **overrides):
    options = dict(abn=ABN, name="server-1", key_type=KeyType.EC_P256, backend=backend,
                   store=None, accepted_terms_version=CURRENT_TERMS.version)
    options.update(overrides)
    return service.create_credential(service.test_pa, **options).view.credential


def _token_labels(pkcs11_store) -> set[str]:
    return {uri.split("object=")[1] for uri in pkcs11_store.list_keys()}


def test_create_records_terms_acceptance_and_key(service, storage, pkcs11_store):
    credential = _create(service)
    assert credential.status is CredentialStatus.ACTIVE
    assert credential.terms_version == CURRENT_TERMS.version
    assert credential.id in _token_labels(pkcs11_store)
    assert credential.key_uri.startswith("pkcs11:token=mcagent-test;id=%")
    row = storage._conn.execute("SELECT accepted_by, version FROM terms_acceptance WHERE credential_id = ?",
                                (credential.id,)).fetchone()
    assert tuple(row) == ("pa", CURRENT_TERMS.version)


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"accepted_terms_version": ""}, FailedPrecondition, "must be accepted"),
    ({"accepted_terms_version": "1999-01-01"}, FailedPrecondition, "is not current"),
    ({"abn": "12 345 678 901"}, InvalidArgument, "checksum"),
    ({"abn": "53 004 085 616"}, NotFound, "not registered"),
    ({"name": "  "}, InvalidArgument, "must not be empty"),
    ({"name": "x" * 65}, InvalidArgument, "at most 64"),
])
def test_refused_create_leaves_nothing(service, storage, pkcs11_store, overrides, error, message):
    keys_before = _token_labels(pkcs11_store)
    with pytest.raises(error, match=message):
        _create(service, **overrides)
    assert storage.list_credentials() == []
    assert _token_labels(pkcs11_store) == keys_before


def test_key_that_cannot_be_made_leaves_no_record(service, storage, tmp_path):
    _create(service, backend=Backend.FILE)  # the key store file now exists
    (tmp_path / "keys.mcks").write_bytes(b"damaged")
    with pytest.raises(StoreCorrupted):
        _create(service, backend=Backend.FILE, name="server-2")
    assert [c.name for c in storage.list_credentials()] == ["server-1"]


def test_record_that_cannot_be_saved_destroys_the_key(service, storage, pkcs11_store):
    keys_before = _token_labels(pkcs11_store)
    # The database refuses the final write, as a full disk or a lost connection would.
    storage._conn.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON credential BEGIN SELECT RAISE(ABORT, 'database refused'); END"
    )
    with pytest.raises(Unavailable, match="was not created") as caught:
        _create(service)
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert storage.list_credentials() == []
    assert _token_labels(pkcs11_store) == keys_before


def test_create_interrupted_after_key_generation_is_cleaned_up_at_start(service, storage, pkcs11_store):
    from mcagent.agent.clock import system_clock
    from mcagent.agent.domain.model import Credential

    # The state a crash between key generation and activation leaves behind, 11 minutes ago;
    # and one begun just now, as another instance on the same database may be creating it.
    label, fresh = "interrupted-0001", "in-flight-0001"
    for name, begun in ((label, system_clock() - dt.timedelta(minutes=11)), (fresh, system_clock())):
        with storage.transaction():
            storage.insert_credential(Credential(
                id=name, abn=ABN, name=name, status=CredentialStatus.CREATING, key_type=KeyType.EC_P256,
                backend=Backend.PKCS11, key_uri=pkcs11_store.label_uri(name), created_at=begun,
                created_by="pa", terms_version=CURRENT_TERMS.version,
            ))
        pkcs11_store.create_key(CreateKeyRequest(label=name, key_type=KeyType.EC_P256))
    with pytest.raises(NotFound):
        service.get_credential(ADMIN, label)  # never shown while being created
    service.finish_interrupted_work()
    assert label not in _token_labels(pkcs11_store)
    assert storage.get_credential(label) is None
    assert fresh in _token_labels(pkcs11_store)  # another process's creation in flight is left alone
    assert storage.get_credential(fresh).status is CredentialStatus.CREATING


def test_sign_refuses_bad_input_with_reasons(service):
    credential = _create(service)
    from mcagent.hsm.base import SignatureAlgorithm

    with pytest.raises(InvalidArgument, match="does not fit .* ec-p256 key; use one of: ecdsa-sha256"):
        service.sign(service.test_pa, SignItem(credential_id=credential.id,
                                               algorithm=SignatureAlgorithm.RSA_PKCS1_SHA256, data=b"x"))
    with pytest.raises(InvalidArgument, match="needs a 32-byte SHA256 digest, got 20 bytes"):
        service.sign(service.test_pa, SignItem(credential_id=credential.id, digest=bytes(20)))
    with pytest.raises(InvalidArgument, match="either the data to sign or its digest"):
        service.sign(service.test_pa, SignItem(credential_id=credential.id))
    with pytest.raises(NotFound, match="no credential with id 'nope'"):
        service.sign(service.test_pa, SignItem(credential_id="nope", data=b"x"))


def test_a_batch_withholds_a_signature_whose_credential_was_revoked_before_its_entry_committed(service, storage):
    """The path SignBatch and SignStream share: one entry per item; a credential revoked after its
    signature was made but before the batch's entries committed gets no signature out."""
    from mcagent.agent.domain.calls import Signed

    keep = _create(service, name="keep")
    rsa = _create(service, name="rsa", key_type=KeyType.RSA_2048)  # signed on a batch worker
    doomed = _create(service, name="doomed")
    sign_in_custody = service._sign_in_custody

    def sign_then_revoke(authorised):
        signature = sign_in_custody(authorised)
        if authorised.credential.id == doomed.id:  # the signature exists; the entries are not written yet
            service.revoke_credential(service.test_pa, doomed.id, confirm=True)
        return signature

    service._sign_in_custody = sign_then_revoke
    before = sum(1 for _ in storage.audit_entries())
    items = [SignItem(credential_id=c, digest=bytes(32)) for c in (keep.id, rsa.id, doomed.id, "nope", rsa.id)]
    results = service.sign_batch(service.test_pa, items)
    assert [type(r) for r in results] == [Signed, Signed, FailedPrecondition, NotFound, Signed]
    assert "the signature was withheld" in str(results[2])
    signs = [e for e in list(storage.audit_entries())[before:] if e.action == "credential.sign"]
    assert sorted((e.target, e.outcome) for e in signs) == sorted(
        [(keep.id, "allowed"), (rsa.id, "allowed"), (rsa.id, "allowed"), (doomed.id, "refused"), ("nope", "refused")])
    assert "withheld" in next(e for e in signs if e.target == doomed.id).detail["reason"]


def test_a_token_failure_after_authorisation_is_audited_alike_by_sign_and_batch(service, storage, pkcs11_store):
    """Sign, SignBatch and SignStream (the batch path) write the same refusal entry when the key
    is gone from the token: the business, the credential and the permission asked for."""
    permission = "ato.activity-statements"
    alone, batched = _create(service, name="alone"), _create(service, name="batched")
    for credential in (alone, batched):
        pkcs11_store.delete_key(credential.key_uri)
    with pytest.raises(Exception, match="no private key"):
        service.sign(service.test_pa, SignItem(credential_id=alone.id, digest=bytes(32), permission=permission))
    (outcome,) = service.sign_batch(service.test_pa, [SignItem(credential_id=batched.id, digest=bytes(32),
                                                                permission=permission)])
    assert "no private key" in str(outcome)
    refused = {e.target: e for e in storage.audit_entries() if e.action == "credential.sign"
               and e.outcome == "refused"}
    for credential in (alone, batched):
        entry = refused[credential.id]
        assert (entry.abn, entry.detail["permission"]) == (ABN, permission)
        assert "no private key" in entry.detail["reason"]
    assert set(refused[alone.id].detail) == set(refused[batched.id].detail)
