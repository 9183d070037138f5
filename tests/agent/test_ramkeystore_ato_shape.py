"""A key store in the shape of the ATO's published sample, made without our writer, read by the agent.

The committed fixtures (tests/fixtures/make_keystores.py) come from mcagent.agent.domain.ramkeystore.write,
so they only show that the agent reads what it writes. The ATO's sample key store
(keystore/keystore-usi.xml in github.com/ato-pub/usi.cl.java) differs from our writer where
make_keystores.py says: its publicCertificate is a *signed* SignedData (digest algorithm
sha256, an empty data content, one SignerInfo by the issuing sub-CA), its chain has three
certificates, integrityValue is set, creationDate has no offset and notBefore/notAfter are
UTC times labelled +10:00. This file builds such a key store with openssl (the private key)
and asn1crypto (the PKCS#7), then reads it through the agent's reader.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import subprocess

import pytest
from asn1crypto import algos, cms, core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcagent.agent.domain import ramkeystore
from mcagent.agent.domain.errors import InvalidArgument

from tests.conftest import require_tool

NS = ramkeystore.NS
PASSWORD = "Sample-Pass-1!"
ABN = "51824753556"
NAME = "USIMachine"
NOT_BEFORE = dt.datetime(2025, 11, 19, 10, 29, 29, tzinfo=dt.UTC)
NOT_AFTER = NOT_BEFORE + dt.timedelta(days=730)


def _name(*parts: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _ca(subject: x509.Name, issuer: x509.Name, key, signer, path_length):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .sign(signer, hashes.SHA256()))


def _chain():
    root_key, sub_key, leaf_key = (rsa.generate_private_key(65537, 2048) for _ in range(3))
    ato = (NameOID.ORGANIZATION_NAME, "Example Taxation Office")
    root_name = _name((NameOID.COUNTRY_NAME, "AU"), ato, (NameOID.COMMON_NAME, "Example Root CA"))
    sub_name = _name((NameOID.COUNTRY_NAME, "AU"), ato, (NameOID.COMMON_NAME, "Example Sub CA"))
    root = _ca(root_name, root_name, root_key, root_key, None)
    sub = _ca(sub_name, root_name, sub_key, root_key, 0)
    leaf = (x509.CertificateBuilder()
            .subject_name(_name((NameOID.COUNTRY_NAME, "AU"), (NameOID.ORGANIZATION_NAME, ABN),
                                (NameOID.COMMON_NAME, NAME), (NameOID.DN_QUALIFIER, "ABR")))
            .issuer_name(sub_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .sign(sub_key, hashes.SHA256()))
    return leaf_key, (leaf, sub, root), sub_key


def _indefinite(tag: bytes, *contents: bytes) -> bytes:
    return tag + b"\x80" + b"".join(contents) + b"\x00\x00"


def _signed_pkcs7(chain, signer_key) -> bytes:
    """SignedData as in the ATO sample: sha256, empty data content, one SignerInfo by the sub-CA."""
    signer = asn1_x509.Certificate.load(chain[1].public_bytes(serialization.Encoding.DER))
    attributes = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": NOT_BEFORE})]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(b"").digest()]}),
    ])
    signature = signer_key.sign(attributes.dump(), padding.PKCS1v15(), hashes.SHA256())
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
            "issuer": signer.issuer, "serial_number": signer.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": attributes,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        "signature": signature,
    })
    digest_algorithms = cms.DigestAlgorithms([algos.DigestAlgorithm({"algorithm": "sha256"})]).dump()
    data_oid = core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()
    encapsulated = _indefinite(b"\x30", data_oid, _indefinite(b"\xa0", _indefinite(b"\x24")))
    certificates = b"".join(c.public_bytes(serialization.Encoding.DER) for c in chain)
    signer_infos = cms.SignerInfos([signer_info]).dump()
    signed_data = _indefinite(b"\x30", core.Integer(1).dump(), digest_algorithms, encapsulated,
                              _indefinite(b"\xa0", certificates), signer_infos)
    signed_data_oid = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
    return _indefinite(b"\x30", signed_data_oid, _indefinite(b"\xa0", signed_data))


def _openssl_pbe_key(key, tmp_path) -> bytes:
    """PKCS#8 with PBE-SHA1-3DES and 1024 iterations, by openssl (its own random salt)."""
    openssl = require_tool("openssl", "openssl")
    clear = tmp_path / "clear.pem"
    clear.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    result = subprocess.run([openssl, "pkcs8", "-topk8", "-in", str(clear), "-outform", "DER", "-v1",
                             "PBE-SHA1-3DES", "-iter", "1024", "-passout", "env:PBE_PASSWORD"],
                            capture_output=True, env={**os.environ, "PBE_PASSWORD": PASSWORD})
    if result.returncode != 0 and b"unsupported" in result.stderr.lower():  # OpenSSL 3 without legacy
        result = subprocess.run([openssl, "pkcs8", "-topk8", "-in", str(clear), "-outform", "DER", "-v1",
                                 "PBE-SHA1-3DES", "-iter", "1024", "-passout", "env:PBE_PASSWORD",
                                 "-provider", "legacy", "-provider", "default"],
                                capture_output=True, env={**os.environ, "PBE_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def _ato_shaped_store(tmp_path, *, alias: str | None = None) -> tuple[bytes, tuple, rsa.RSAPrivateKey]:
    key, chain, sub_key = _chain()
    protected = _openssl_pbe_key(key, tmp_path)
    parameters = asn1_keys.EncryptedPrivateKeyInfo.load(protected)["encryption_algorithm"]["parameters"]
    leaf = chain[0]
    label = "%Y-%m-%dT%H:%M:%S+10:00"  # UTC wall-clock time, wrongly labelled, as in the sample
    fields = {
        "name1": NAME, "name2": "", "abn": ABN, "legalName": NAME, "personId": "",
        "serialNumber": str(leaf.serial_number),
        "creationDate": (NOT_BEFORE + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"),
        "notBefore": leaf.not_valid_before_utc.strftime(label), "notAfter": leaf.not_valid_after_utc.strftime(label),
        "sha1fingerprint": base64.b64encode(leaf.fingerprint(hashes.SHA1())).decode(),
        "publicCertificate": base64.b64encode(_signed_pkcs7(chain, sub_key)).decode(),
        "protectedPrivateKey": base64.b64encode(protected).decode(),
    }
    children = "".join(f"<{tag}/>" if not text else f"<{tag}>{text}</{tag}>" for tag, text in fields.items())
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<credentialStore xmlns="{NS}"><salt>{base64.b64encode(os.urandom(20)).decode()}</salt><credentials>'
        f'<credential integrityValue="{base64.b64encode(os.urandom(20)).decode()}" credentialType="D" '
        f'id="{alias or f"ABRD:{ABN}_{NAME}"}" '
        f'credentialSalt="{base64.b64encode(parameters["salt"].native).decode()}">{children}</credential>'
        '</credentials></credentialStore>'
    )
    return xml.encode(), chain, key


def test_a_key_store_shaped_like_the_ato_sample_is_read(tmp_path):
    data, chain, key = _ato_shaped_store(tmp_path)
    (credential,) = ramkeystore.parse(data)
    # The shape is the sample's: a 3DES PBE key with 1024 iterations, a SignedData with a signer.
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(credential.protected_key)["encryption_algorithm"]
    assert algorithm["algorithm"].dotted == "1.2.840.113549.1.12.1.3"
    assert algorithm["parameters"]["iterations"].native == 1024
    signed = cms.ContentInfo.load(base64.b64decode(data.split(b"<publicCertificate>")[1].split(b"<")[0]))
    assert len(signed["content"]["signer_infos"]) == 1 and data.count(b"+10:00") == 2
    assert credential.alias == f"ABRD:{ABN}_{NAME}"
    assert credential.chain == chain  # leaf, sub-CA, root, from a SignedData that carries a SignerInfo
    ramkeystore.check_consistent(credential, NOT_BEFORE + dt.timedelta(days=1))
    decrypted = ramkeystore.decrypt(credential, PASSWORD)
    assert decrypted.private_numbers() == key.private_numbers()


def test_the_sample_shape_still_fails_when_its_id_disagrees(tmp_path):
    data, _, _ = _ato_shaped_store(tmp_path, alias=f"ABRD:{ABN}_someone-else")
    (credential,) = ramkeystore.parse(data)
    with pytest.raises(InvalidArgument, match="its id .* does not match its certificate"):
        ramkeystore.check_consistent(credential, NOT_BEFORE + dt.timedelta(days=1))


def test_wrong_password_for_the_sample_shape(tmp_path):
    data, _, _ = _ato_shaped_store(tmp_path)
    (credential,) = ramkeystore.parse(data)
    with pytest.raises(InvalidArgument, match="wrong password for the key store"):
        ramkeystore.decrypt(credential, "Wrong-Pass-1!")
