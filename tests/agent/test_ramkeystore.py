"""RAM key store files as written by the agent, checked with independent readers (openssl, asn1crypto)."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess

import pytest
from asn1crypto import keys
from cryptography.hazmat.primitives import serialization
from defusedxml import ElementTree
from mcagent.agent.domain import ramkeystore
from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument

from tests.conftest import REPO, require_tool

FIXTURES = REPO / "tests" / "fixtures"
PASSWORD = "Fixture-Pass-1!"
NS = {"k": ramkeystore.NS}


def _credential_elements(path):
    return ElementTree.parse(path).getroot().findall(".//k:credential", NS)


def test_fixture_layout_matches_rams():
    root = ElementTree.parse(FIXTURES / "two-abns.keystore.xml").getroot()
    assert root.tag == f"{{{ramkeystore.NS}}}credentialStore"
    assert len(base64.b64decode(root.find("k:salt", NS).text)) == 20
    element = _credential_elements(FIXTURES / "two-abns.keystore.xml")[0]
    assert element.get("credentialType") == "D" and element.get("id") == "ABRD:51824753556_server-1"
    children = [child.tag.split("}")[1] for child in element]
    assert children == ["name1", "name2", "abn", "legalName", "personId", "serialNumber", "creationDate", "notBefore",
                        "notAfter", "sha1fingerprint", "publicCertificate", "protectedPrivateKey"]


def test_private_key_is_3des_pbe_with_the_credential_salt_and_openssl_decrypts_it(tmp_path):
    openssl = require_tool("openssl", "openssl")
    element = _credential_elements(FIXTURES / "two-abns.keystore.xml")[0]
    protected = base64.b64decode(element.find("k:protectedPrivateKey", NS).text)
    algorithm = keys.EncryptedPrivateKeyInfo.load(protected)["encryption_algorithm"]
    assert algorithm["algorithm"].dotted == "1.2.840.113549.1.12.1.3"
    assert algorithm["parameters"]["salt"].native == base64.b64decode(element.get("credentialSalt"))
    assert algorithm["parameters"]["iterations"].native == 1024
    (tmp_path / "key.der").write_bytes(protected)
    result = subprocess.run([openssl, "pkcs8", "-inform", "DER", "-in", str(tmp_path / "key.der"), "-passin",
                             "env:PW"], capture_output=True,
                            env={"PW": PASSWORD, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert b"PRIVATE KEY-----" in result.stdout
    wrong = subprocess.run([openssl, "pkcs8", "-inform", "DER", "-in", str(tmp_path / "key.der"), "-passin",
                            "pass:Wrong-Pass-1!"], capture_output=True)
    assert wrong.returncode != 0


def test_certificates_are_ber_indefinite_pkcs7_that_openssl_reads(tmp_path):
    openssl = require_tool("openssl", "openssl")
    element = _credential_elements(FIXTURES / "two-abns.keystore.xml")[0]
    pkcs7 = base64.b64decode(element.find("k:publicCertificate", NS).text)
    assert pkcs7[:2] == b"\x30\x80"  # indefinite length, as RAM writes it
    (tmp_path / "p7.der").write_bytes(pkcs7)
    result = subprocess.run([openssl, "pkcs7", "-inform", "DER", "-in", str(tmp_path / "p7.der"), "-print_certs",
                             "-noout"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    subjects = [line for line in result.stdout.splitlines() if line.startswith("subject=")]
    assert "CN = server-1" in subjects[0] and "Fixture Device CA" in subjects[1]  # leaf first


def test_parse_checks_and_decrypts_the_fixture():
    credentials = ramkeystore.parse((FIXTURES / "two-abns.keystore.xml").read_bytes())
    assert [c.alias for c in credentials] == ["ABRD:51824753556_server-1", "ABRD:53004085616_desk-1"]
    now = dt.datetime.now(dt.UTC)
    for credential in credentials:
        ramkeystore.check_consistent(credential, now)
        key = ramkeystore.decrypt(credential, PASSWORD)
        assert key.public_key().public_numbers() == credential.leaf.public_key().public_numbers()
    with pytest.raises(InvalidArgument, match="wrong password for the key store"):
        ramkeystore.decrypt(credentials[0], "Not-It-1234!")


def test_expired_fixture_is_refused_naming_the_date():
    (expired,) = ramkeystore.parse((FIXTURES / "expired.keystore.xml").read_bytes())
    with pytest.raises(FailedPrecondition, match="expired on 2019-12-31"):
        ramkeystore.check_consistent(expired, dt.datetime.now(dt.UTC))


@pytest.mark.parametrize(("password", "missing"), [
    ("Short-1!", "at least 10 characters"),
    ("with space-1A", "no spaces"),
    ("lowercase-only-1", "an upper-case letter"),
    ("UPPERCASE-ONLY-1", "a lower-case letter"),
    ("No-Digits-Here!", "a digit"),
    ("NoSpecial123abc", "a special character"),
])
def test_password_rule_says_what_is_missing_without_echoing(password, missing):
    with pytest.raises(InvalidArgument, match=missing) as caught:
        ramkeystore.check_password(password)
    assert password not in str(caught.value)


def test_pkcs12_fixture_loads_with_its_chain():
    key, chain = ramkeystore.load_pkcs12((FIXTURES / "server-1.p12").read_bytes(), PASSWORD)
    assert chain[0].subject.rfc4514_string() == "2.5.4.46=ABR,CN=server-1,O=51824753556,C=AU"
    assert len(chain) == 2
    assert key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == chain[0].public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidArgument, match="wrong password for the PKCS#12 file"):
        ramkeystore.load_pkcs12((FIXTURES / "server-1.p12").read_bytes(), "Wrong-Pass-1!")
