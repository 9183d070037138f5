"""`cryptography` private-key objects whose signing happens inside a key store.

The X.509 builders of `cryptography` accept any `RSAPrivateKey` or `EllipticCurvePrivateKey`;
these adapters hash nothing themselves and pass the digest to `KeyStore.sign`, so CSRs,
certificates and CRLs can be signed by a key that never leaves its token or file.
Everything that would reveal the key raises.
"""

from __future__ import annotations

from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as paddings
from mcagent.hsm.base import HashAlgorithm, KeyInfo, KeyStore, SignatureAlgorithm, SignRequest
from mcagent.hsm.errors import Unsupported

_HASHES = {hashes.SHA256.name: HashAlgorithm.SHA256, hashes.SHA1.name: HashAlgorithm.SHA1}


def _digest(data: bytes, algorithm: Any) -> tuple[HashAlgorithm, bytes]:
    """The hash named by `algorithm` (or `Prehashed`) and the digest of `data` under it."""
    prehashed = isinstance(algorithm, utils.Prehashed)
    name = algorithm._algorithm.name if prehashed else algorithm.name
    hash_algorithm = _HASHES.get(name)
    if hash_algorithm is None:
        raise Unsupported(f"hash {name} is not supported by the key store signers")
    return hash_algorithm, data if prehashed else hash_algorithm.digest(data)


def _never(*_: Any) -> NoReturn:
    raise Unsupported("the private key stays in its key store: it cannot be read or used to decrypt")


class _Remote:
    def __init__(self, store: KeyStore, key: KeyInfo) -> None:
        self._store = store
        self._key = key

    def _sign(self, algorithm: SignatureAlgorithm, digest: bytes) -> bytes:
        return self._store.sign(SignRequest(uri=self._key.uri, algorithm=algorithm, key_type=self._key.key_type,
                                            digest=digest))

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self

    private_numbers = private_bytes = decrypt = exchange = _never


class StoreRSAPrivateKey(_Remote, rsa.RSAPrivateKey):
    """An RSA key in a key store, usable by `cryptography`'s builders (PKCS#1 v1.5 and PSS)."""

    def sign(self, data: bytes, padding: paddings.AsymmetricPadding, algorithm: Any) -> bytes:
        # `padding` as cryptography's RSAPrivateKey names it: signxml passes it by keyword.
        hash_algorithm, digest = _digest(data, algorithm)
        if isinstance(padding, paddings.PSS):
            if hash_algorithm is not HashAlgorithm.SHA256:
                raise Unsupported("RSA-PSS is supported with SHA-256 only")
            return self._sign(SignatureAlgorithm.RSA_PSS_SHA256, digest)
        if hash_algorithm is HashAlgorithm.SHA256:
            return self._sign(SignatureAlgorithm.RSA_PKCS1_SHA256, digest)
        return self._sign(SignatureAlgorithm.RSA_PKCS1_SHA1, digest)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key  # type: ignore[return-value]

    @property
    def key_size(self) -> int:
        return self._key.public_key.key_size  # type: ignore[union-attr]


class StoreECPrivateKey(_Remote, ec.EllipticCurvePrivateKey):
    """A P-256 key in a key store, usable by `cryptography`'s builders (ECDSA with SHA-256)."""

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        hash_algorithm, digest = _digest(data, signature_algorithm.algorithm)
        if hash_algorithm is not HashAlgorithm.SHA256:
            raise Unsupported("ECDSA is supported with SHA-256 only")
        return self._sign(SignatureAlgorithm.ECDSA_SHA256, digest)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key  # type: ignore[return-value]

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._key.public_key.curve  # type: ignore[union-attr]

    @property
    def key_size(self) -> int:
        return self.curve.key_size


def store_private_key(store: KeyStore, key: KeyInfo) -> StoreRSAPrivateKey | StoreECPrivateKey:
    """The `cryptography` private-key object for `key` in `store`."""
    return StoreRSAPrivateKey(store, key) if key.key_type.is_rsa else StoreECPrivateKey(store, key)
