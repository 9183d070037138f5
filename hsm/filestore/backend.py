"""Key custody in an encrypted key store file, for machines without a token.

File layout (JSON, mode 0600)::

    {"format": "mcagent-keystore/1",
     "kdf": {"name": "scrypt", "salt": b64, "n": 32768, "r": 8, "p": 1},
     "check": b64(nonce || AES-256-GCM(fixed text)),
     "keys": {label: {"key_type", "key_id", "public_key", "private_key": b64(nonce || AES-GCM(PKCS#8 DER))}}}

One scrypt derivation per file gives the AES-256 key; each private key is sealed with
AES-GCM and its label as associated data, so entries cannot be swapped unnoticed. The
``check`` value tells a wrong password from a damaged entry.

Writes take an exclusive lock on ``<file>.lock``, re-read the file (another process may
have written since), write ``<file>.tmp``, fsync it, rename it over the file and fsync the
directory: a crash at any instant leaves the old or the new file, never a broken one.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hsm.base import CreateKeyRequest, KeyInfo, KeyStore, KeyType, SignatureAlgorithm, SignRequest, key_type_of
from hsm.errors import (
    AuthFailed,
    InvalidURI,
    KeyExists,
    KeyNotFound,
    StoreCorrupted,
    StoreLocked,
)
from hsm.uri import FileURI

FORMAT = "mcagent-keystore/1"
_CHECK_TEXT = b"mcagent key store password check"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_LOCK_WAIT = 10.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> str:
    nonce = os.urandom(12)
    return _b64(nonce + AESGCM(key).encrypt(nonce, plaintext, aad))


def _open_sealed(key: bytes, sealed: str, aad: bytes) -> bytes:
    raw = _unb64(sealed)
    return AESGCM(key).decrypt(raw[:12], raw[12:], aad)


def _generate(key_type: KeyType) -> PrivateKeyTypes:
    if key_type.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=key_type.rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def _hash_object(algorithm: SignatureAlgorithm) -> hashes.HashAlgorithm:
    return hashes.SHA1() if algorithm.hash.hashlib_name == "sha1" else hashes.SHA256()


@dataclass
class _Contents:
    """A parsed key store file; `entries` hold the still-encrypted private keys."""

    salt: bytes
    kdf: dict[str, int]
    check: str
    entries: dict[str, dict[str, str]]
    stamp: tuple[int, int, int] | None  # (inode, size, mtime_ns) of the file read, None if new


class FileKeyStore(KeyStore):
    """Keys in one password-protected file, addressed as ``file:///path#label``."""

    scheme = "file"

    def __init__(self, path: str, password: str) -> None:
        """Open (or prepare to create) the key store file at `path`.

        The file is created on the first key; its directory must exist.

        Args:
            path: absolute path of the key store file.
            password: the key store password (from the environment or a file).

        Raises:
            AuthFailed: empty password, or the wrong one for an existing file.
            StoreCorrupted: the file exists but is not a readable key store.
        """
        if not password:
            raise AuthFailed(f"no password given for key store file {path}")
        if not os.path.isabs(path):
            raise InvalidURI(f"key store path must be absolute: {path}")
        self.path = path
        self._password = password.encode("utf-8")
        self._derived: dict[bytes, bytes] = {}  # salt -> AES key; scrypt is slow on purpose
        self._private: dict[str, PrivateKeyTypes] = {}  # decrypted keys, by label
        self._lock = threading.RLock()
        self._contents = self._read()

    # -- file I/O -----------------------------------------------------------------------

    def _key_for(self, salt: bytes, kdf: dict[str, int]) -> bytes:
        key = self._derived.get(salt)
        if key is None:
            key = Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(self._password)
            self._derived[salt] = key
        return key

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self) -> _Contents:
        """Read and authenticate the file, or start empty contents when there is none."""
        stamp = self._stamp()
        if stamp is None:
            salt = os.urandom(16)
            key = self._key_for(salt, _SCRYPT)
            return _Contents(salt, dict(_SCRYPT), _seal(key, _CHECK_TEXT, b"check"), {}, None)
        try:
            with open(self.path, "rb") as fh:
                raw = json.loads(fh.read())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format is {raw.get('format')!r}, expected {FORMAT!r}")
            kdf = {k: int(raw["kdf"][k]) for k in ("n", "r", "p")}
            contents = _Contents(_unb64(raw["kdf"]["salt"]), kdf, raw["check"], dict(raw["keys"]), stamp)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupted(f"key store file {self.path} cannot be read: {exc}") from None
        try:
            if _open_sealed(self._key_for(contents.salt, kdf), contents.check, b"check") != _CHECK_TEXT:
                raise InvalidTag()
        except InvalidTag:
            raise AuthFailed(f"wrong password for key store file {self.path}") from None
        return contents

    def _refresh(self) -> None:
        """Re-read the file if another process has replaced it since we last looked."""
        if self._stamp() != self._contents.stamp:
            self._contents = self._read()

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + _LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreLocked(
                            f"key store file {self.path} is locked by another writer for over {_LOCK_WAIT:.0f}s"
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, contents: _Contents) -> None:
        document = {
            "format": FORMAT,
            "kdf": {"name": "scrypt", "salt": _b64(contents.salt), **contents.kdf},
            "check": contents.check,
            "keys": contents.entries,
        }
        data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
        temporary = self.path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a stale temporary file may have other permissions
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        contents.stamp = self._stamp()

    def _update(self, change: Callable[[_Contents], Any]) -> Any:
        """Apply `change` to the newest contents and save them, holding the file lock."""
        with self._lock, self._file_lock():
            self._refresh()
            # Change a copy: if the write fails, memory still matches the file.
            draft = dataclasses.replace(self._contents, entries=dict(self._contents.entries))
            result = change(draft)
            self._write(draft)
            self._contents = draft
            return result

    # -- helpers ------------------------------------------------------------------------

    def _label_of(self, uri: str) -> str:
        parsed = FileURI.parse(uri)
        if parsed.path != self.path:
            raise InvalidURI(f"key URI names key store {parsed.path}, not {self.path}")
        if not parsed.label:
            raise InvalidURI(f"key URI {uri} names no key (file:///path#label)")
        return parsed.label

    def _entry(self, label: str) -> dict[str, str]:
        with self._lock:
            entry = self._contents.entries.get(label)
            if entry is None:
                self._refresh()  # another process may have added it
                entry = self._contents.entries.get(label)
            if entry is None:
                raise KeyNotFound(f"no key {label!r} in key store file {self.path}")
            return entry

    def _info(self, label: str, entry: dict[str, str]) -> KeyInfo:
        return KeyInfo(
            uri=str(FileURI(self.path, label)),
            key_type=KeyType(entry["key_type"]),
            public_key=serialization.load_der_public_key(_unb64(entry["public_key"])),
            key_id=bytes.fromhex(entry["key_id"]),
        )

    def _private_key(self, label: str) -> PrivateKeyTypes:
        key = self._private.get(label)
        if key is None:
            entry = self._entry(label)
            contents = self._contents
            try:
                der = _open_sealed(self._key_for(contents.salt, contents.kdf), entry["private_key"], label.encode())
            except (InvalidTag, ValueError, KeyError):
                raise StoreCorrupted(f"key {label!r} in key store file {self.path} is damaged") from None
            key = serialization.load_der_private_key(der, password=None)
            self._private[label] = key
        return key

    # -- KeyStore -----------------------------------------------------------------------

    def create_key(self, request: CreateKeyRequest) -> KeyInfo:
        """See `KeyStore.create_key`. The key is generated in this process and saved encrypted."""
        return self._add(request.label, request.key_type, _generate(request.key_type))

    def import_key(self, label: str, private_key: PrivateKeyTypes) -> KeyInfo:
        """See `KeyImporter.import_key`: saved encrypted like a generated key."""
        return self._add(label, key_type_of(private_key.public_key()), private_key)

    def export_private_key(self, uri: str) -> PrivateKeyTypes:
        """See `KeyExporter.export_private_key`."""
        return self._private_key(self._label_of(uri))

    def _add(self, label: str, key_type: KeyType, private_key: PrivateKeyTypes) -> KeyInfo:
        public_key = private_key.public_key()
        key_id = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

        def add(contents: _Contents) -> None:
            if label in contents.entries:
                raise KeyExists(f"key store file {self.path} already holds a key {label!r}")
            contents.entries[label] = {
                "key_type": key_type.value,
                "key_id": key_id.hex(),
                "public_key": _b64(
                    public_key.public_bytes(
                        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                ),
                "private_key": _seal(self._key_for(contents.salt, contents.kdf), der, label.encode()),
            }

        self._update(add)
        self._private[label] = private_key
        return KeyInfo(
            uri=str(FileURI(self.path, label)),
            key_type=key_type,
            public_key=public_key,
            key_id=key_id,
        )

    def store_certificate(self, uri: str, certificate_der: bytes) -> None:
        """See `CertificateStore.store_certificate`: kept in the key's entry."""
        label = self._label_of(uri)

        def keep(contents: _Contents) -> None:
            entry = contents.entries.get(label)
            if entry is None:
                raise KeyNotFound(f"no key {label!r} in key store file {self.path}")
            contents.entries[label] = {**entry, "certificate": _b64(certificate_der)}

        self._update(keep)

    def label_uri(self, label: str) -> str:
        """See `KeyStore.label_uri`: labels name keys in this backend, so it is the key's URI."""
        return str(FileURI(self.path, label))

    def public_key(self, uri: str) -> KeyInfo:
        """See `KeyStore.public_key`."""
        label = self._label_of(uri)
        return self._info(label, self._entry(label))

    def sign(self, request: SignRequest) -> bytes:
        """See `KeyStore.sign`."""
        request.check()
        algorithm = request.algorithm
        key = self._private_key(self._label_of(request.uri))
        prehashed = utils.Prehashed(_hash_object(algorithm))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(request.digest, ec.ECDSA(prehashed))
        if algorithm is SignatureAlgorithm.RSA_PSS_SHA256:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=algorithm.hash.digest_size)
            return key.sign(request.digest, pss, prehashed)
        return key.sign(request.digest, padding.PKCS1v15(), prehashed)

    def delete_key(self, uri: str) -> int:
        """Remove the key from the file; 0 when it was not there."""
        label = self._label_of(uri)

        def remove(contents: _Contents) -> int:
            return 1 if contents.entries.pop(label, None) is not None else 0

        with self._lock:
            if label not in self._contents.entries:
                self._refresh()
                if label not in self._contents.entries:
                    return 0
            count = self._update(remove)
            self._private.pop(label, None)
            return count

    def list_keys(self) -> list[str]:
        """URIs of every key in the file."""
        with self._lock:
            self._refresh()
            return [str(FileURI(self.path, label)) for label in sorted(self._contents.entries)]

    def close(self) -> None:
        """Forget the decrypted keys and the derived file key."""
        with self._lock:
            self._private.clear()
            self._derived.clear()
