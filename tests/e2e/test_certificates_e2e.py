"""Certificates and key store files end to end: openssl checks the CSR, the chain and the CRL."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcagent.hsm.uri import Pkcs11URI

from tests.conftest import KEYSTORE_PASSWORD, REPO, require_tool
from tests.e2e.test_rules_e2e import refused
from tests.pkcs11_tool import list_objects, objects_by_label

ABN = "51824753556"
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE_PASSWORD = {"MCAGENT_IMPORT_PASSWORD": "Fixture-Pass-1!"}
EXPORT_PASSWORD = "Export-Pass-2026!"


def _openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("openssl", "openssl"), *args], capture_output=True, input=input)


def _split_pem(pem: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", pem, re.S)


@pytest.fixture
def both_daemon(start_daemon, softhsm):
    """A daemon with the token and the key store file; the file is the default backend."""
    return start_daemon(
        "--pkcs11-module", softhsm.module, "--pkcs11-token", softhsm.token,
        env={"MCAGENT_PKCS11_PIN": softhsm.pin, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD},
        secrets=[softhsm.pin, KEYSTORE_PASSWORD],
    )


def _create(pa, backend: str = "pkcs11", name: str = "server-1", key_type: str = "rsa-2048") -> dict:
    return json.loads(pa.ok("credential", "create", "--abn", ABN, "--name", name, "--backend", backend,
                           "--key-type", key_type, "--accept-terms", "--json"))


def test_csr_chain_and_profile(both_daemon, softhsm, tmp_path):
    pa = both_daemon.new_business(ABN, "alice")
    credential = _create(pa)
    # The CSR, signed inside the token, verifies and names the credential.
    csr_pem = pa.ok("credential", "csr", credential["id"]).encode()
    verified = _openssl("req", "-verify", "-noout", "-subject", input=csr_pem)
    assert verified.returncode == 0, verified.stderr
    assert b"C = AU, O = 51824753556, CN = server-1, dnQualifier = ABR" in verified.stdout
    # The chain verifies against the agent's root.
    chain = _split_pem(pa.ok("credential", "certificate", credential["id"]))
    assert len(chain) == 3  # leaf, issuing, root
    (tmp_path / "root.pem").write_text(pa.ok("ca", "certificate"))
    (tmp_path / "issuing.pem").write_text(chain[1])
    (tmp_path / "leaf.pem").write_text(chain[0])
    result = _openssl("verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "issuing.pem"),
                      str(tmp_path / "leaf.pem"))
    assert result.returncode == 0 and b"leaf.pem: OK" in result.stdout, result.stderr
    # The leaf matches the profile, field by field.
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert leaf.subject == x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "AU"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, ABN),
        x509.NameAttribute(NameOID.COMMON_NAME, "server-1"), x509.NameAttribute(NameOID.DN_QUALIFIER, "ABR")])
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey) and leaf.public_key().key_size == 2048
    assert leaf.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=730) - dt.timedelta(seconds=1)
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.digital_signature, usage.value.content_commitment, usage.value.key_encipherment,
            usage.value.data_encipherment, usage.value.key_cert_sign) == (True, True, True, True, False)
    extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    key_id = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert key_id == Pkcs11URI.parse(credential["key_uri"]).key_id  # the token's CKA_ID
    # The certificate sits next to the key in the token, with the same id and label.
    certificate_objects = [b for b in objects_by_label(list_objects(softhsm), credential["id"])
                           if b.startswith("Certificate Object")]
    assert len(certificate_objects) == 1 and f"ID:         {key_id.hex()}" in certificate_objects[0]
    # Signatures come with the chain.
    message = tmp_path / "m"
    message.write_bytes(b"payload")
    signed = json.loads(pa.ok("credential", "sign", credential["id"], "--in", str(message), "--json"))
    assert len(signed["certificate_chain"]) == 3


def test_install_a_certificate_issued_elsewhere_and_refusals(both_daemon, tmp_path):
    from tests.e2e.certs import TestCA

    pa = both_daemon.new_business(ABN, "alice")
    credential = _create(pa, key_type="ec-p256")
    other = _create(pa, name="other", key_type="ec-p256")
    csr = x509.load_pem_x509_csr(pa.ok("credential", "csr", credential["id"]).encode())
    external = TestCA(tmp_path, "external-ca")
    now = dt.datetime.now(dt.UTC)

    def certificate(public_key, subject=csr.subject, start=now - dt.timedelta(days=1), days=365):
        built = (x509.CertificateBuilder().subject_name(subject).issuer_name(external.cert.subject)
                 .public_key(public_key).serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
                 .sign(external.key, hashes.SHA256()))
        path = tmp_path / f"cert-{built.serial_number}.pem"
        path.write_bytes(built.public_bytes(serialization.Encoding.PEM))
        return str(path)

    other_key = x509.load_pem_x509_csr(pa.ok("credential", "csr", other["id"]).encode()).public_key()
    wrong_abn = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "53004085616"),
                           x509.NameAttribute(NameOID.COMMON_NAME, "server-1")])
    before = pa.ok("credential", "certificate", credential["id"])
    refused(pa.cli("credential", "install", credential["id"], "--certificate", certificate(other_key)),
            "INVALID_ARGUMENT", "the certificate is for another key")
    refused(pa.cli("credential", "install", credential["id"], "--certificate",
                   certificate(csr.public_key(), start=now - dt.timedelta(days=400))),
            "FAILED_PRECONDITION", "the certificate expired on")
    refused(pa.cli("credential", "install", credential["id"], "--certificate",
                   certificate(csr.public_key(), subject=wrong_abn)),
            "INVALID_ARGUMENT", "names ABN 53004085616", f"belongs to business {ABN}")
    assert pa.ok("credential", "certificate", credential["id"]) == before  # nothing changed
    good = certificate(csr.public_key())
    pa.ok("credential", "install", credential["id"], "--certificate", good, "--chain", str(external.ca.cert))
    chain = _split_pem(pa.ok("credential", "certificate", credential["id"]))
    assert chain[0] == open(good).read() and "external-ca" in x509.load_pem_x509_certificate(
        chain[1].encode()).subject.rfc4514_string()


def test_revoked_agent_certificates_are_on_a_crl_openssl_accepts(both_daemon, tmp_path):
    pa = both_daemon.new_business(ABN, "alice")
    revoked = _create(pa, backend="file", key_type="ec-p256")
    kept = _create(pa, backend="file", name="kept", key_type="ec-p256")
    pa.ok("credential", "revoke", revoked["id"], "--yes")
    (tmp_path / "issuing.pem").write_text(pa.ok("ca", "certificate", "--issuing"))
    (tmp_path / "crl.pem").write_text(pa.ok("ca", "crl"))
    result = _openssl("crl", "-in", str(tmp_path / "crl.pem"), "-CAfile", str(tmp_path / "issuing.pem"), "-noout",
                      "-text")
    assert result.returncode == 0 and b"verify OK" in result.stderr + result.stdout, result.stderr
    crl = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())

    def leaf_serial(credential: dict) -> int:
        chain = _split_pem(pa.ok("credential", "certificate", credential["id"]))
        return x509.load_pem_x509_certificate(chain[0].encode()).serial_number

    assert {entry.serial_number for entry in crl} == {leaf_serial(revoked)}
    assert leaf_serial(kept) != leaf_serial(revoked)


def test_keystore_inspect_lists_both_abns_and_the_expired_one(file_daemon):
    listing = file_daemon.ok("keystore", "inspect", str(FIXTURES / "two-abns.keystore.xml"), "--json")
    entries = json.loads(listing)["entries"]
    assert [(e["alias"], e["abn"], e["name"], e["status"]) for e in entries] == [
        ("ABRD:51824753556_server-1", "51824753556", "server-1", "valid"),
        ("ABRD:53004085616_desk-1", "53004085616", "desk-1", "valid"),
    ]
    assert all(e["serial_number"].isdigit() and e["not_after"].startswith("2055-01-01") for e in entries)
    expired = json.loads(file_daemon.ok("keystore", "inspect", str(FIXTURES / "expired.keystore.xml"), "--json"))
    assert expired["entries"][0]["status"] == "expired on 2019-12-31"


def _sign_and_verify(pa, credential_id: str, certificate_pem: str, tmp_path) -> None:
    message = tmp_path / "payload"
    message.write_bytes(b"<RequestSecurityToken/>")
    signature = tmp_path / "signature"
    pa.ok("credential", "sign", credential_id, "--in", str(message), "--out", str(signature))
    public = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    (tmp_path / "public.pem").write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    verified = _openssl("dgst", "-sha256", "-verify", str(tmp_path / "public.pem"), "-signature", str(signature),
                        str(message))
    assert verified.returncode == 0, verified.stderr


def test_import_picks_the_alias_into_the_token_and_registers_the_business(both_daemon, softhsm, tmp_path):
    both_daemon.new_principal("olga")
    imported = json.loads(both_daemon.cli(
        "credential", "import", "--keystore", str(FIXTURES / "two-abns.keystore.xml"), "--alias",
        "ABRD:53004085616_desk-1", "--backend", "pkcs11", "--principal-authority", "olga", "--accept-terms", "--json",
        env=FIXTURE_PASSWORD).stdout)
    credential = imported
    assert credential["abn"] == "53004085616" and credential["name"] == "desk-1"
    assert credential["key_uri"].startswith("pkcs11:")
    assert both_daemon.ok("business", "lookup", "--abn", "53004085616").strip().endswith("Other Pty Ltd")
    blocks = objects_by_label(list_objects(softhsm), credential["id"])
    private = [b for b in blocks if b.startswith("Private Key Object")]
    assert len(private) == 1 and "Access:     sensitive" in private[0]
    assert "extractable" not in private[0].replace("never extractable", "")
    olga = both_daemon.as_principal(both_daemon.secrets[-1])
    chain = _split_pem(olga.ok("credential", "certificate", credential["id"]))
    _sign_and_verify(olga, credential["id"], chain[0], tmp_path)


def test_round_trip_file_credential_to_keystore_xml_into_the_token(both_daemon, softhsm, tmp_path):
    pa = both_daemon.new_business(ABN, "alice")
    original = _create(pa, backend="file")
    exported = tmp_path / "exported.xml"
    result = pa.cli("credential", "export", original["id"], "--format", "keystore-xml", "--out", str(exported),
                    env={"MCAGENT_EXPORT_PASSWORD": EXPORT_PASSWORD})
    assert result.returncode == 0, result.stderr
    assert "integrityValue is empty" in result.stderr.decode()
    assert exported.stat().st_mode & 0o777 == 0o600
    inspected = json.loads(pa.ok("keystore", "inspect", str(exported), "--json"))["entries"]
    assert [e["alias"] for e in inspected] == ["ABRD:51824753556_server-1"]
    imported = json.loads(pa.cli("credential", "import", "--keystore", str(exported), "--alias",
                                 "ABRD:51824753556_server-1", "--backend", "pkcs11", "--accept-terms", "--json",
                                 env={"MCAGENT_IMPORT_PASSWORD": EXPORT_PASSWORD}).stdout)
    assert imported["replaces_id"] == original["id"]  # same name, same business: a renewal
    credential = imported  # the same shape as `credential create --json`
    assert credential["key_uri"].startswith("pkcs11:")
    chain = _split_pem(pa.ok("credential", "certificate", credential["id"]))
    assert chain == _split_pem(pa.ok("credential", "certificate", original["id"]))
    _sign_and_verify(pa, credential["id"], chain[0], tmp_path)
    # A key in the token cannot be exported.
    refused(pa.cli("credential", "export", credential["id"], "--format", "pkcs12", "--out", str(tmp_path / "x.p12"),
                   env={"MCAGENT_EXPORT_PASSWORD": EXPORT_PASSWORD}),
            "FAILED_PRECONDITION", "is in a PKCS#11 token and cannot leave it")
    refused(pa.cli("credential", "export", original["id"], "--format", "pkcs12", "--out", str(tmp_path / "x.p12"),
                   env={"MCAGENT_EXPORT_PASSWORD": "weakpassword"}),
            "INVALID_ARGUMENT", "does not meet RAM's rule", "an upper-case letter")
    assert not (tmp_path / "x.p12").exists()


def test_pkcs12_export_and_import(both_daemon, tmp_path):
    pa = both_daemon.new_business(ABN, "alice")
    original = _create(pa, backend="file", key_type="ec-p256")
    p12 = tmp_path / "c.p12"
    result = pa.cli("credential", "export", original["id"], "--format", "pkcs12", "--out", str(p12),
                    env={"MCAGENT_EXPORT_PASSWORD": EXPORT_PASSWORD})
    assert result.returncode == 0, result.stderr
    openssl_read = _openssl("pkcs12", "-in", str(p12), "-nokeys", "-passin", f"pass:{EXPORT_PASSWORD}")
    assert openssl_read.returncode == 0 and b"CN = server-1" in openssl_read.stdout, openssl_read.stderr
    imported = json.loads(pa.cli("credential", "import", "--pkcs12", str(p12), "--backend", "pkcs11",
                                 "--accept-terms", "--json", env={"MCAGENT_IMPORT_PASSWORD": EXPORT_PASSWORD}).stdout)
    chain = _split_pem(pa.ok("credential", "certificate", imported["id"]))
    message = tmp_path / "m"
    message.write_bytes(b"m")
    signature = tmp_path / "s"
    pa.ok("credential", "sign", imported["id"], "--in", str(message), "--out", str(signature))
    x509.load_pem_x509_certificate(chain[0].encode()).public_key().verify(
        signature.read_bytes(), b"m", ec.ECDSA(hashes.SHA256()))


def _tampered(tmp_path, field: str, value: str) -> str:
    text = (FIXTURES / "two-abns.keystore.xml").read_text()
    text = re.sub(rf"<{field}>[^<]*</{field}>", f"<{field}>{value}</{field}>", text, count=1)
    path = tmp_path / f"tampered-{field}.xml"
    path.write_text(text)
    return str(path)


def test_bad_imports_are_refused_and_leave_nothing(both_daemon, softhsm, tmp_path):
    import datetime

    from mcagent.agent.domain import ramkeystore

    pa = both_daemon.new_business(ABN, "alice")
    before_objects = list_objects(softhsm)
    mismatched = tmp_path / "mismatched.xml"
    fixture = ramkeystore.parse((FIXTURES / "two-abns.keystore.xml").read_bytes())[0]
    mismatched.write_bytes(ramkeystore.write([ramkeystore.ExportItem(
        key=rsa.generate_private_key(65537, 2048), chain=fixture.chain, abn=ABN, legal_name="Example Pty Ltd",
        name="server-1")], "Fixture-Pass-1!", datetime.datetime.now(datetime.UTC)))
    cases = [
        ((str(FIXTURES / "two-abns.keystore.xml"), "ABRD:51824753556_server-1"), {"MCAGENT_IMPORT_PASSWORD":
         "Not-The-Pass-1!"}, "INVALID_ARGUMENT", ["wrong password"]),
        ((_tampered(tmp_path, "sha1fingerprint", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "ABRD:51824753556_server-1"),
         FIXTURE_PASSWORD, "INVALID_ARGUMENT", ["its sha1fingerprint", "does not match its certificate"]),
        ((_tampered(tmp_path, "serialNumber", "12345"), "ABRD:51824753556_server-1"), FIXTURE_PASSWORD,
         "INVALID_ARGUMENT", ["its serialNumber ('12345') does not match"]),
        ((str(FIXTURES / "expired.keystore.xml"), "ABRD:83914571673_old-server"), FIXTURE_PASSWORD,
         "FAILED_PRECONDITION", ["expired on 2019-12-31"]),
        ((str(mismatched), "ABRD:51824753556_server-1"), FIXTURE_PASSWORD, "INVALID_ARGUMENT",
         ["the certificate is for another key"]),
        ((str(FIXTURES / "two-abns.keystore.xml"), "ABRD:00000000000_nope"), FIXTURE_PASSWORD, "INVALID_ARGUMENT",
         ["no credential with alias 'ABRD:00000000000_nope'", "ABRD:51824753556_server-1"]),
    ]
    for (path, alias), env, code, texts in cases:
        refused(pa.cli("credential", "import", "--keystore", path, "--alias", alias, "--backend", "pkcs11",
                       "--accept-terms", env=env), code, *texts)
    # The administrator may not import into an existing business (it holds no role there).
    refused(both_daemon.cli("credential", "import", "--keystore", str(FIXTURES / "two-abns.keystore.xml"), "--alias",
                            "ABRD:51824753556_server-1", "--accept-terms", env=FIXTURE_PASSWORD),
            "PERMISSION_DENIED", "holds no role there")
    assert json.loads(pa.ok("credential", "list", "--json")) == {"credentials": [], "next_page_token": ""}
    assert list_objects(softhsm) == before_objects
    audit = json.loads(both_daemon.ok("audit", "list", "--limit", "1000", "--json"))["entries"]
    assert sum(1 for e in audit if e["action"] == "credential.import" and e["outcome"] == "refused") == len(cases) + 1
