"""SBR against a real daemon (issue 14): renewal that a client signing by alias does not notice,
the expiry watch under faketime, and `sts request` / `xml sign` from the command line."""

from __future__ import annotations

import datetime as dt
import json
import threading
import zoneinfo

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

from tests.conftest import KEYSTORE_PASSWORD
from tests.e2e.test_rules_e2e import ACME, Acme, build_acme
from tests.sbr_verify import STS_ID_NODES, both_verify

ALIAS = f"ABRD:{ACME}_server-1"
SYDNEY = zoneinfo.ZoneInfo("Australia/Sydney")


@pytest.fixture
def acme(file_daemon, tmp_path) -> Acme:
    return build_acme(file_daemon, tmp_path)


def _outside_ca_certificate(csr_pem: bytes) -> bytes:
    csr = x509.load_pem_x509_csr(csr_pem)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return x509.CertificateBuilder().subject_name(csr.subject).issuer_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Outside CA")])).public_key(csr.public_key()) \
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1)) \
        .not_valid_after(now + dt.timedelta(days=700)).sign(ca_key, hashes.SHA256()) \
        .public_bytes(serialization.Encoding.PEM)


def test_a_client_signing_by_alias_across_renew_and_install_never_notices(acme: Acme, tmp_path):
    old = acme.create(acme.mca, "server-1", "--key-type", "rsa-2048")
    results: list[tuple[bytes, bytes]] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def client() -> None:  # software configured with the alias, signing in a loop
        with grpc.insecure_channel(f"unix:{acme.software.socket}") as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            metadata = (("authorization", f"Bearer {acme.software.token}"),)
            while not stop.is_set() or len(results) < 3:
                try:
                    request = pb.SignRequest(credential_id=ALIAS, data=b"payroll event", include_chain=True)
                    reply = stub.Sign(request, metadata=metadata, timeout=30)
                    results.append((reply.signature, reply.certificate_chain[0]))
                except Exception as exc:  # noqa: BLE001 (any error fails the test)
                    errors.append(exc)
                    return

    thread = threading.Thread(target=client)
    thread.start()
    try:
        renewed = json.loads(acme.mca.ok("credential", "renew", ALIAS, "--accept-terms", "--json"))
        new = renewed["credential"]["id"]
        assert renewed["alias"] == ALIAS and not renewed["alias_moved"] and new != old
        certificate = tmp_path / "new.pem"
        certificate.write_bytes(_outside_ca_certificate(renewed["csr_pem"].encode()))
        while len(results) < 5 and not errors:
            threading.Event().wait(0.05)
        acme.mca.ok("credential", "install", new, "--certificate", str(certificate))
        switched_at = len(results)
        while len(results) < switched_at + 5 and not errors:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    old_leaf = x509.load_pem_x509_certificate(acme.pa.ok("credential", "certificate", old).encode())
    new_leaf = x509.load_pem_x509_certificate(certificate.read_bytes())
    keys = []
    for signature, leaf_der in results:
        leaf = x509.load_der_x509_certificate(leaf_der)
        leaf.public_key().verify(signature, b"payroll event", padding.PKCS1v15(), hashes.SHA256())
        keys.append("new" if leaf == new_leaf else "old" if leaf == old_leaf else "?")
    assert "?" not in keys and keys[0] == "old" and keys[-1] == "new"
    assert keys == sorted(keys, key=lambda k: k == "new"), keys  # old ones, then new ones: one switch
    moved = [e for e in acme.admin.audit() if e["action"] == "credential.alias-moved"]
    assert len(moved) == 1 and moved[0]["detail"]["from"] == old and moved[0]["detail"]["to"] == new
    assert acme.sign(acme.software, old).returncode == 0  # the old credential, by id, still works
    shown = acme.show(new)
    assert shown["alias"] == ALIAS and not acme.show(old)["alias"]


def _restart_before_expiry(daemon, start_daemon, faketime: str, days: int, not_after: dt.datetime):
    """Restart the daemon with its clock at noon (Sydney) `days` calendar days before the expiry date."""
    assert daemon.stop() == 0
    day = not_after.astimezone(SYDNEY).date() - dt.timedelta(days=days)
    noon = dt.datetime.combine(day, dt.time(12), SYDNEY).astimezone(dt.UTC)
    env = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD, "LD_PRELOAD": faketime, "TZ": "UTC",
           "FAKETIME": "@" + noon.strftime("%Y-%m-%d %H:%M:%S"), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return start_daemon(data_dir=daemon.data_dir, env=env)


def test_expiry_watch_at_91_89_and_29_days(acme: Acme, start_daemon, faketime):
    credential = acme.create(acme.mca, "server-1")
    not_after = x509.load_pem_x509_certificate(acme.pa.ok("credential", "certificate", credential).encode()) \
        .not_valid_after_utc
    daemon = acme.admin
    seen = {}
    for days in (91, 89, 29):
        daemon = _restart_before_expiry(daemon, start_daemon, faketime, days, not_after)
        pa = daemon.as_principal(acme.pa.token)
        listed = json.loads(pa.ok("credential", "list", "--expiring-within", "90d", "--json"))["credentials"]
        status = daemon.as_principal(None).ok("status")
        warnings = [line for line in daemon.log().splitlines() if "its certificate expires" in line]
        seen[days] = ([c["id"] for c in listed], warnings, status)
    assert seen[91][0] == [] and seen[91][1] == [] and credential not in seen[91][2]
    assert seen[89][0] == [credential] and credential not in seen[89][2]
    assert len(seen[89][1]) == 1 and "in 89 days (within 90)" in seen[89][1][0] and "WARNING" in seen[89][1][0]
    assert seen[29][0] == [credential]
    assert len(seen[29][1]) == 1 and "in 29 days (within 30)" in seen[29][1][0]
    assert f"certificate expiring within 30 days: {credential} ({ALIAS})" in seen[29][2]
    assert seen[29][2].startswith("SERVING")


def test_sts_request_and_xml_sign_from_the_command_line(acme: Acme, tmp_path):
    credential = acme.create(acme.mca, "server-1", "--key-type", "rsa-2048")
    leaf = x509.load_pem_x509_certificate(acme.pa.ok("credential", "certificate", credential).encode()) \
        .public_bytes(serialization.Encoding.DER)
    envelope = tmp_path / "rst.xml"
    acme.software.ok("sts", "request", ALIAS, "--applies-to", "https://sbr.gov.au/services", "--out", str(envelope))
    assert both_verify(envelope.read_bytes(), leaf, STS_ID_NODES, 6) == (True, True)
    refused = acme.software.cli("sts", "request", ALIAS, "--applies-to", "https://sbr.gov.au/services",
                                "--act-as", "53004085616")
    assert refused.returncode != 0 and b"PERMISSION_DENIED" in refused.stderr
    assert b"no active cloud software notification" in refused.stderr
    document = tmp_path / "doc.xml"
    document.write_bytes(b'<doc><part Id="p1">1</part></doc>')
    out = acme.software.cli("xml", "sign", ALIAS, "--in", str(document), "--id", "p1")
    assert out.returncode == 0, out.stderr
    assert both_verify(out.stdout, leaf, ["part"], 1) == (True, True)


def test_the_client_library_signs_sts_requests_and_documents_by_alias(acme: Acme):
    import mcagent.client as mc

    credential = acme.create(acme.mca, "server-1", "--key-type", "rsa-2048")
    leaf = x509.load_pem_x509_certificate(acme.pa.ok("credential", "certificate", credential).encode()) \
        .public_bytes(serialization.Encoding.DER)
    with mc.Client(mc.Connection(target=f"unix:{acme.software.socket}", token=acme.software.token)) as agent:
        envelope = agent.sign_sts_request(ALIAS, applies_to="https://sbr.gov.au/services", lifetime_minutes=10)
        signed = agent.sign_xml(ALIAS, b'<doc><part Id="p1">1</part></doc>', ["p1"])
    assert both_verify(envelope, leaf, STS_ID_NODES, 6) == (True, True)
    assert both_verify(signed, leaf, ["part"], 1) == (True, True)
    with mc.Client(mc.Connection(target=f"unix:{acme.pa.socket}", token=acme.pa.token)) as agent:
        shown = agent.get_credential(credential)
    assert shown.alias == ALIAS and not shown.local and shown.certificate_not_after is not None
