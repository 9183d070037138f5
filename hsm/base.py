"""The key custody contract every backend implements.

A backend keeps private keys where no caller can read them (a PKCS#11 token, or a
password-encrypted key store file) and offers the operations the agent needs on them.
Keys are named by URI (see `hsm.uri`); nothing above this package knows about slots,
sessions, handles or file layouts.

The core interface is `KeyStore`; extra capabilities are small protocols that a caller
checks with `isinstance` before use.
"""

from __future__ import annotations

import abc
import enum
import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from mcagent.hsm.errors import Unsupported


class KeyType(enum.Enum):
    """Key pair types the agent creates. RSA-2048 is what RAM machine credentials use."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    EC_P256 = "ec-p256"

    @property
    def is_rsa(self) -> bool:
        """True for the RSA key types."""
        return self in (KeyType.RSA_2048, KeyType.RSA_3072)

    @property
    def rsa_bits(self) -> int:
        """Modulus length of an RSA key type.

        Raises:
            ValueError: the key type is not RSA.
        """
        bits = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072}.get(self)
        if bits is None:
            raise ValueError(f"{self.value} is not an RSA key type")
        return bits


DEFAULT_KEY_TYPE = KeyType.RSA_2048


class HashAlgorithm(enum.Enum):
    """Hash functions used by the signature algorithms, with their DigestInfo prefix."""

    SHA1 = ("sha1", 20, bytes.fromhex("3021300906052b0e03021a05000414"))
    SHA256 = ("sha256", 32, bytes.fromhex("3031300d060960864801650304020105000420"))

    def __init__(self, hashlib_name: str, digest_size: int, digest_info_prefix: bytes) -> None:
        self.hashlib_name = hashlib_name
        self.digest_size = digest_size
        # DER of DigestInfo{algorithm, NULL} up to the digest OCTET STRING's contents
        # (RFC 8017 section 9.2, note 1): what CKM_RSA_PKCS signs over a precomputed digest.
        self.digest_info_prefix = digest_info_prefix

    def digest(self, data: bytes) -> bytes:
        """Hash `data` with this algorithm."""
        return hashlib.new(self.hashlib_name, data).digest()


class SignatureAlgorithm(enum.Enum):
    """Signature algorithms, each naming its padding and hash explicitly.

    RSA-PSS uses MGF1 with the same hash and a salt as long as the hash (32 bytes).
    ECDSA signatures are returned DER-encoded, as X.509, CMS and openssl expect.
    """

    RSA_PKCS1_SHA256 = ("rsa-pkcs1-sha256", HashAlgorithm.SHA256)
    RSA_PKCS1_SHA1 = ("rsa-pkcs1-sha1", HashAlgorithm.SHA1)
    RSA_PSS_SHA256 = ("rsa-pss-sha256", HashAlgorithm.SHA256)
    ECDSA_SHA256 = ("ecdsa-sha256", HashAlgorithm.SHA256)

    def __init__(self, name: str, hash_algorithm: HashAlgorithm) -> None:
        self.algorithm_name = name
        self.hash = hash_algorithm

    def fits(self, key_type: KeyType) -> bool:
        """True when this algorithm can sign with a key of `key_type`."""
        return (self is SignatureAlgorithm.ECDSA_SHA256) != key_type.is_rsa

    @staticmethod
    def default_for(key_type: KeyType) -> SignatureAlgorithm:
        """The algorithm used when a caller names none: what SBR's token service expects."""
        return SignatureAlgorithm.RSA_PKCS1_SHA256 if key_type.is_rsa else SignatureAlgorithm.ECDSA_SHA256


@dataclass(frozen=True, kw_only=True)
class CreateKeyRequest:
    """Ask a backend for a new key pair.

    Attributes:
        label: object label (PKCS#11 CKA_LABEL, file store entry name); unique per store.
            The agent uses the credential id, so a key can always be found from its record.
        key_type: the key pair type.
    """

    label: str
    key_type: KeyType = DEFAULT_KEY_TYPE


@dataclass(frozen=True, kw_only=True)
class SignRequest:
    """Ask a backend to sign.

    Attributes:
        uri: the key, as returned in `KeyInfo.uri`.
        algorithm: the signature algorithm; must fit the key type.
        key_type: the key's type (the agent records it with the key).
        digest: the message digest, already computed with `algorithm.hash`. Backends
            only ever sign digests, so signing data and signing a digest are one path.
    """

    uri: str
    algorithm: SignatureAlgorithm
    key_type: KeyType
    digest: bytes

    def check(self) -> None:
        """Refuse an algorithm that does not fit the key, or a digest of the wrong size.

        Raises:
            Unsupported: with what was expected.
        """
        algorithm = self.algorithm
        if not algorithm.fits(self.key_type):
            fitting = ", ".join(a.algorithm_name for a in SignatureAlgorithm if a.fits(self.key_type))
            raise Unsupported(f"{algorithm.algorithm_name} does not fit a {self.key_type.value} key; "
                              f"use one of: {fitting}")
        if len(self.digest) != algorithm.hash.digest_size:
            raise Unsupported(
                f"{algorithm.algorithm_name} needs a {algorithm.hash.digest_size}-byte "
                f"{algorithm.hash.hashlib_name.upper()} digest, got {len(self.digest)} bytes"
            )


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """A key pair in a backend.

    Attributes:
        uri: how to address the key from now on (never contains a PIN or password).
        key_type: the key pair type.
        public_key: the public half, as a `cryptography` object.
        key_id: the key identifier: SHA-1 of the public key (RFC 5280 4.2.1.2 method 1),
            which is the PKCS#11 CKA_ID and a certificate's subjectKeyIdentifier.
    """

    uri: str
    key_type: KeyType
    public_key: PublicKeyTypes
    key_id: bytes


class KeyStore(abc.ABC):
    """Key custody backend. Implementations are safe to call from many threads."""

    #: URI scheme this backend answers to (``pkcs11`` or ``file``).
    scheme: str

    @abc.abstractmethod
    def create_key(self, request: CreateKeyRequest) -> KeyInfo:
        """Generate a key pair inside the backend; the private key never leaves it.

        Raises:
            KeyExists: a key with that label already exists.
            TokenUnavailable: the backend cannot be reached right now.
        """

    @abc.abstractmethod
    def label_uri(self, label: str) -> str:
        """The URI matching every object with this label, before its key id is known.

        The agent records it before generating a key, so an interrupted create can be
        cleaned up by label.
        """

    @abc.abstractmethod
    def public_key(self, uri: str) -> KeyInfo:
        """Return the public half of the key at `uri`.

        Raises:
            KeyNotFound: no key at that URI.
        """

    @abc.abstractmethod
    def sign(self, request: SignRequest) -> bytes:
        """Sign a digest with the private key at `request.uri`.

        Raises:
            KeyNotFound: no key at that URI.
            Unsupported: the algorithm does not fit the key, or the digest has the wrong size.
            TokenUnavailable: the backend failed; a later call may succeed.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release sessions, locks and files. The store is unusable afterwards."""


@runtime_checkable
class KeyDeleter(Protocol):
    """A backend that can destroy keys."""

    def delete_key(self, uri: str) -> int:
        """Destroy every object the URI matches (private key, public key, certificate).

        A URI naming only the label (``object=``) matches by label, which is how the agent
        cleans up after a create that did not finish.

        Returns:
            The number of objects destroyed (0 when nothing matched).
        """


@runtime_checkable
class CertificateStore(Protocol):
    """A backend that keeps a key's certificate next to it.

    In a token this is a CKO_CERTIFICATE object with the key's CKA_ID and label, so
    PKCS#11-aware software finds the certificate with the key. Destroying the key by its
    URI destroys the certificate too.
    """

    def store_certificate(self, uri: str, certificate_der: bytes) -> None:
        """Store, or replace, the certificate of the key at `uri`.

        Raises:
            KeyNotFound: no key at that URI.
        """


@runtime_checkable
class KeyImporter(Protocol):
    """A backend that can take in an existing private key (replacing an AUSkey or a RAM key store)."""

    def import_key(self, label: str, private_key: PrivateKeyTypes) -> KeyInfo:
        """Store `private_key` under `label`, as non-extractable as the backend allows.

        Raises:
            KeyExists: the label is taken.
            Unsupported: the key is not RSA-2048, RSA-3072 or EC P-256.
        """


@runtime_checkable
class KeyExporter(Protocol):
    """A backend whose keys may leave it (the key store file; never a token)."""

    def export_private_key(self, uri: str) -> PrivateKeyTypes:
        """The private key at `uri`, for writing to another key store."""


def key_type_of(public_key: PublicKeyTypes) -> KeyType:
    """The KeyType of a public key.

    Raises:
        Unsupported: not RSA-2048, RSA-3072 or EC P-256.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        for key_type in (KeyType.RSA_2048, KeyType.RSA_3072):
            if key_type.rsa_bits == public_key.key_size:
                return key_type
        raise Unsupported(f"RSA keys of {public_key.key_size} bits are not supported (2048 or 3072)")
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return KeyType.EC_P256
    raise Unsupported("only RSA-2048, RSA-3072 and EC P-256 keys are supported")


@runtime_checkable
class KeyLister(Protocol):
    """A backend that can enumerate its keys."""

    def list_keys(self) -> list[str]:
        """URIs of every private key in the store."""
