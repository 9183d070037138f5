"""RAM's key store file (``keystore.xml``): read, check, decrypt and write it.

Layout (what RAM hands out and SBR software reads): root ``credentialStore`` in namespace
NS with ``salt`` (base64, 20 bytes) and ``credentials`` holding ``credential`` elements
(attributes ``integrityValue``, ``credentialType="D"``, ``id`` = ``ABRD:<ABN>_<name>``,
``credentialSalt``), whose children are, in order: name1, name2, abn, legalName, personId,
serialNumber, creationDate, notBefore, notAfter, sha1fingerprint, publicCertificate (base64
PKCS#7 certs-only SignedData, BER with indefinite lengths, leaf first), protectedPrivateKey
(base64 DER EncryptedPrivateKeyInfo: pbeWithSHAAnd3-KeyTripleDES-CBC, salt =
credentialSalt, 1024 iterations).

Reading trusts the certificate, not the XML dates (they carry a wrong +10:00 suffix), and
never relies on ``integrityValue``: its keyed algorithm is not public, so files written
here carry an empty one, and software that checks it will refuse them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from xml.etree import ElementTree

import defusedxml.ElementTree as SafeElementTree
from asn1crypto import cms, core, keys
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.serialization import pkcs12
from mcagent.agent.domain.audit import clip
from mcagent.agent.domain.certificates import abn_of, name_of, same_public_key
from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument

NS = "http://auth.abr.gov.au/credential/xsd/SBRCredentialStore"
PBE_ITERATIONS = 1024
SALT_BYTES = 20
_SPECIAL = re.compile(r"[^A-Za-z0-9]")


def check_password(password: str) -> None:
    """RAM's key store password rule.

    Raises:
        InvalidArgument: saying which part of the rule the password misses (never echoing it).
    """
    missing = []
    if len(password) < 10:
        missing.append("at least 10 characters")
    if any(c.isspace() for c in password):
        missing.append("no spaces")
    for test, what in ((str.isupper, "an upper-case letter"), (str.islower, "a lower-case letter"),
                       (str.isdigit, "a digit")):
        if not any(test(c) for c in password):
            missing.append(what)
    if not _SPECIAL.search(password.replace(" ", "")):
        missing.append("a special character")
    if missing:
        raise InvalidArgument("the key store password does not meet RAM's rule: it needs " + ", ".join(missing))


ALIAS_PREFIX = "ABRD:"


def alias_for(abn: str, name: str) -> str:
    """The alias SBR software selects a credential by."""
    return f"{ALIAS_PREFIX}{abn}_{name}"


def sha1_fingerprint(certificate: x509.Certificate) -> str:
    """Base64 SHA-1 of the certificate's DER, as the file records it."""
    return base64.b64encode(hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).digest()).decode()


@dataclass(frozen=True)
class StoredCredential:
    """One ``credential`` element, parsed; the private key still encrypted."""

    alias: str
    abn: str
    legal_name: str
    name: str
    serial_number: str
    fingerprint: str
    chain: tuple[x509.Certificate, ...]
    protected_key: bytes

    @property
    def leaf(self) -> x509.Certificate:
        """The credential's own certificate (the first one that is not a CA)."""
        for certificate in self.chain:
            try:
                if not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                    return certificate
            except x509.ExtensionNotFound:
                return certificate
        return self.chain[0]

    def status(self, now: dt.datetime) -> str:
        """``valid`` or ``expired on <date>`` (or ``not yet valid``), from the certificate."""
        if self.leaf.not_valid_after_utc <= now:
            return f"expired on {self.leaf.not_valid_after_utc.date().isoformat()}"
        if self.leaf.not_valid_before_utc > now:
            return "not yet valid"
        return "valid"


def _text(element: ElementTree.Element, tag: str) -> str:
    child = element.find(f"{{{NS}}}{tag}")
    return (child.text or "").strip() if child is not None else ""


def certificates_from_pkcs7(data: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of a PKCS#7 certs-only SignedData (DER or BER, indefinite lengths too)."""
    content = cms.ContentInfo.load(data)
    if content["content_type"].native != "signed_data":
        raise ValueError(f"PKCS#7 content is {content['content_type'].native}, not signed data")
    return tuple(x509.load_der_x509_certificate(choice.chosen.dump())
                 for choice in content["content"]["certificates"])


def parse(data: bytes) -> list[StoredCredential]:
    """Every credential in a key store file, without the password.

    Raises:
        InvalidArgument: not a RAM key store file, or a credential in it cannot be read.
    """
    try:
        root = SafeElementTree.fromstring(data)
    except Exception as exc:  # defusedxml and expat raise several types
        raise InvalidArgument(f"not a key store file: the XML cannot be read ({exc})") from None
    if root.tag != f"{{{NS}}}credentialStore":
        raise InvalidArgument(f"not a RAM key store file: the root element is {clip(root.tag, 100)}, not "
                              f"{{{NS}}}credentialStore")
    found = []
    for element in root.iter(f"{{{NS}}}credential"):
        alias = element.get("id", "")
        try:
            chain = certificates_from_pkcs7(base64.b64decode(_text(element, "publicCertificate")))
            protected = base64.b64decode(_text(element, "protectedPrivateKey"))
        except ValueError as exc:
            raise InvalidArgument(f"credential {alias!r} in the key store cannot be read: {exc}") from None
        if not chain:
            raise InvalidArgument(f"credential {alias!r} in the key store holds no certificate")
        found.append(StoredCredential(
            alias=alias, abn=_text(element, "abn"), legal_name=_text(element, "legalName"),
            name=_text(element, "name1"), serial_number=_text(element, "serialNumber"),
            fingerprint=_text(element, "sha1fingerprint"), chain=chain, protected_key=protected,
        ))
    if not found:
        raise InvalidArgument("the key store file holds no credential")
    return found


def find(credentials: list[StoredCredential], alias: str) -> StoredCredential:
    """The credential with `alias`.

    Raises:
        InvalidArgument: no such alias (the message lists those present).
    """
    for credential in credentials:
        if credential.alias == alias:
            return credential
    raise InvalidArgument(f"no credential with alias {alias!r} in the key store; it holds: "
                          + ", ".join(c.alias for c in credentials))


def check_consistent(credential: StoredCredential, now: dt.datetime) -> None:
    """The XML must agree with the leaf certificate, and the certificate must not have expired.

    Raises:
        InvalidArgument: fingerprint, serial, ABN or alias disagree (the message says which).
        FailedPrecondition: expired, naming the date.
    """
    leaf = credential.leaf
    checks = [
        ("sha1fingerprint", credential.fingerprint, sha1_fingerprint(leaf)),
        ("serialNumber", credential.serial_number, str(leaf.serial_number)),
        ("abn", credential.abn, abn_of(leaf)),
        ("id", credential.alias, alias_for(abn_of(leaf), name_of(leaf))),
    ]
    for field, recorded, actual in checks:
        if recorded != actual:
            raise InvalidArgument(f"credential {credential.alias!r}: its {field} ({recorded!r}) does not match its "
                                  f"certificate ({actual!r}); the key store has been altered or damaged")
    expiry = leaf.not_valid_after_utc
    if expiry <= now:
        raise FailedPrecondition(f"credential {credential.alias!r} expired on {expiry.date().isoformat()} "
                                 f"({expiry.isoformat()}); create a new one instead")


def _password_bytes(password: str, what: str) -> bytes:
    """The password as the decoders take it; refused if they could not (empty, or with a NUL,
    which the PKCS#12 decoder cannot take and would report with the password in its error)."""
    if not password:
        raise InvalidArgument(f"the {what} password is empty; give the password it was saved with")
    if "\x00" in password:
        raise InvalidArgument(f"wrong password for the {what}: a password cannot contain a NUL character")
    return password.encode("utf-8")


def decrypt(credential: StoredCredential, password: str) -> PrivateKeyTypes:
    """The credential's private key.

    Raises:
        InvalidArgument: wrong password, an unsupported cipher, or a key that is not the certificate's.
    """
    try:
        key = serialization.load_der_private_key(credential.protected_key, _password_bytes(password, "key store"))
    except ValueError as exc:
        if "incorrect password" in str(exc).lower() or "bad decrypt" in str(exc).lower():
            raise InvalidArgument("wrong password for the key store") from None
        algorithm = _encryption_algorithm(credential.protected_key)
        if algorithm in _KNOWN_SUPPORTED:
            raise InvalidArgument("wrong password for the key store") from None
        raise InvalidArgument(f"credential {credential.alias!r} is encrypted with {algorithm}, which this agent "
                              "cannot read; export it again from RAM") from None
    check_key_matches(key, credential.leaf)
    return key


_KNOWN_SUPPORTED = {"pkcs12_sha1_tripledes_3key", "pbes2", "pkcs12_sha1_tripledes_2key"}


def _encryption_algorithm(protected_key: bytes) -> str:
    try:
        return keys.EncryptedPrivateKeyInfo.load(protected_key)["encryption_algorithm"]["algorithm"].native
    except ValueError:
        return "an unreadable algorithm"


def check_key_matches(key: PrivateKeyTypes, certificate: x509.Certificate) -> None:
    """Raises InvalidArgument when the certificate is for another key."""
    if not same_public_key(key.public_key(), certificate.public_key()):
        raise InvalidArgument("the certificate is for another key: its public key does not match the private key")


def load_pkcs12(data: bytes, password: str) -> tuple[PrivateKeyTypes, tuple[x509.Certificate, ...]]:
    """The key and chain (leaf first) of a PKCS#12 file.

    Raises:
        InvalidArgument: wrong password or not PKCS#12, no key or certificate, or mismatched.
    """
    try:
        key, certificate, others = pkcs12.load_key_and_certificates(data, _password_bytes(password, "PKCS#12 file"))
    except ValueError:
        raise InvalidArgument("wrong password for the PKCS#12 file (or it is not PKCS#12)") from None
    if key is None or certificate is None:
        raise InvalidArgument("the PKCS#12 file must hold a private key and its certificate")
    check_key_matches(key, certificate)
    return key, (certificate, *others)


# -- writing ------------------------------------------------------------------------------------


def pkcs12_kdf(password: str, salt: bytes, iterations: int, purpose: int, length: int) -> bytes:
    """RFC 7292 appendix B.2 key derivation with SHA-1 (purpose 1: key, 2: IV).

    Written here because no maintained library exposes it; its output is checked in the tests
    by decrypting with OpenSSL's implementation (through `cryptography`).
    """
    u, v = 20, 64
    password_bytes = password.encode("utf-16-be") + b"\x00\x00"  # BMPString, NUL-terminated

    def stretch(data: bytes) -> bytes:
        """Repeat `data` to fill a whole number of v-byte blocks."""
        if not data:
            return b""
        size = v * ((len(data) + v - 1) // v)
        return (data * (size // len(data) + 1))[:size]

    block = stretch(salt) + stretch(password_bytes)
    diversifier = bytes([purpose]) * v
    out = b""
    while len(out) < length:
        digest = hashlib.sha1(diversifier + block).digest()
        for _ in range(iterations - 1):
            digest = hashlib.sha1(digest).digest()
        out += digest
        increment = int.from_bytes((digest * (v // u + 1))[:v], "big") + 1
        block = b"".join(
            ((int.from_bytes(block[i:i + v], "big") + increment) % (1 << (8 * v))).to_bytes(v, "big")
            for i in range(0, len(block), v)
        )
    return out[:length]


def encrypt_private_key(key: PrivateKeyTypes, password: str, salt: bytes) -> bytes:
    """EncryptedPrivateKeyInfo with pbeWithSHAAnd3-KeyTripleDES-CBC, `salt`, 1024 iterations."""
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    cipher_key = pkcs12_kdf(password, salt, PBE_ITERATIONS, 1, 24)
    iv = pkcs12_kdf(password, salt, PBE_ITERATIONS, 2, 8)
    padder = symmetric_padding.PKCS7(64).padder()
    encryptor = Cipher(TripleDES(cipher_key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    return keys.EncryptedPrivateKeyInfo({
        "encryption_algorithm": {"algorithm": "pkcs12_sha1_tripledes_3key",
                                 "parameters": {"salt": salt, "iterations": PBE_ITERATIONS}},
        "encrypted_data": encrypted,
    }).dump()


def _indefinite(tag: bytes, *contents: bytes) -> bytes:
    """A constructed BER element with indefinite length (as RAM's files have them)."""
    return tag + b"\x80" + b"".join(contents) + b"\x00\x00"


def certs_only_pkcs7(chain: tuple[x509.Certificate, ...]) -> bytes:
    """PKCS#7 certs-only SignedData, BER with indefinite lengths, certificates in the given order."""
    signed_data_oid = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
    data_oid = core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()
    empty_set = b"\x31\x00"
    certificates = b"".join(c.public_bytes(serialization.Encoding.DER) for c in chain)
    signed_data = _indefinite(
        b"\x30",
        core.Integer(1).dump(),
        empty_set,  # digestAlgorithms
        _indefinite(b"\x30", data_oid),  # encapContentInfo, no content
        _indefinite(b"\xa0", certificates),
        empty_set,  # signerInfos
    )
    return _indefinite(b"\x30", signed_data_oid, _indefinite(b"\xa0", signed_data))


@dataclass(frozen=True)
class ExportItem:
    """What a credential needs to be written to a key store file."""

    key: PrivateKeyTypes
    chain: tuple[x509.Certificate, ...]
    abn: str
    legal_name: str
    name: str


def _xml_time(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone(dt.timedelta(hours=10))).isoformat(timespec="milliseconds")


def write(items: list[ExportItem], password: str, now: dt.datetime) -> bytes:
    """A key store file holding `items`, all protected by `password` (RAM's rule applies)."""
    check_password(password)
    ElementTree.register_namespace("", NS)
    root = ElementTree.Element(f"{{{NS}}}credentialStore")
    ElementTree.SubElement(root, f"{{{NS}}}salt").text = base64.b64encode(os.urandom(SALT_BYTES)).decode()
    container = ElementTree.SubElement(root, f"{{{NS}}}credentials")
    for item in items:
        leaf = item.chain[0]
        salt = os.urandom(SALT_BYTES)
        element = ElementTree.SubElement(container, f"{{{NS}}}credential", {
            "integrityValue": "", "credentialType": "D", "id": alias_for(item.abn, item.name),
            "credentialSalt": base64.b64encode(salt).decode(),
        })
        for tag, text in (
            ("name1", item.name), ("name2", ""), ("abn", item.abn), ("legalName", item.legal_name),
            ("personId", ""), ("serialNumber", str(leaf.serial_number)), ("creationDate", _xml_time(now)),
            ("notBefore", _xml_time(leaf.not_valid_before_utc)), ("notAfter", _xml_time(leaf.not_valid_after_utc)),
            ("sha1fingerprint", sha1_fingerprint(leaf)),
            ("publicCertificate", base64.b64encode(certs_only_pkcs7(item.chain)).decode()),
            ("protectedPrivateKey", base64.b64encode(encrypt_private_key(item.key, password, salt)).decode()),
        ):
            ElementTree.SubElement(element, f"{{{NS}}}{tag}").text = text
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def write_pkcs12(item: ExportItem, password: str) -> bytes:
    """A PKCS#12 file with the key and chain: 3DES PBE and SHA-1 MAC, which older SBR software reads."""
    check_password(password)
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(PBE_ITERATIONS * 2)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                  .hmac_hash(hashes.SHA1())
                  .build(password.encode("utf-8")))
    return pkcs12.serialize_key_and_certificates(alias_for(item.abn, item.name).encode(), item.key, item.chain[0],
                                                 list(item.chain[1:]) or None, encryption)
