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

Nothing the store opens is taken on trust. The directory must be the agent's own (owned by
its uid, not writable by group or others); the file, ``.lock`` and ``.tmp`` are opened
relative to that directory, never through a symbolic link (O_NOFOLLOW), only when they are
regular files owned by the agent (checked on the open descriptor; O_NONBLOCK so a FIFO
cannot hang the open), and the file must not be open to group or others. ``.tmp`` is
always created anew (O_EXCL); a stale one, left by a writer that crashed holding the lock,
is unlinked first. A file that is not a key store is refused without quoting it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import stat
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
from mcagent.hsm.base import CreateKeyRequest, KeyInfo, KeyStore, KeyType, SignatureAlgorithm, SignRequest, key_type_of
from mcagent.hsm.errors import (
    AuthFailed,
    InvalidURI,
    KeyExists,
    KeyNotFound,
    KeyStoreError,
    StoreCorrupted,
    StoreLocked,
    StoreUnsafe,
)
from mcagent.hsm.uri import FileURI

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
            StoreUnsafe: the file or its directory could be read or changed by someone
                else, or the path is a symbolic link or not a regular file.
            KeyStoreError: the directory does not exist.
        """
        if not password:
            raise AuthFailed(f"no password given for key store file {path}")
        if not os.path.isabs(path):
            raise InvalidURI(f"key store path must be absolute: {path}")
        self.path = path
        self._dirname, self._name = os.path.split(path)
        if not self._name:
            raise InvalidURI(f"key store path names a directory, not a file: {path}")
        self._password = password.encode("utf-8")
        self._derived: dict[bytes, bytes] = {}  # salt -> AES key; scrypt is slow on purpose
        self._private: dict[str, PrivateKeyTypes] = {}  # decrypted keys, by label
        self._lock = threading.RLock()
        with self._directory() as directory:
            self._contents = self._read(directory)

    # -- file I/O -----------------------------------------------------------------------

    # Everything the store opens is opened relative to its directory's descriptor, never
    # through a symbolic link, and only if it is a regular file owned by us: the key store
    # must not become a way to read, block on or overwrite someone else's file.

    @contextlib.contextmanager
    def _directory(self) -> Iterator[int]:
        """The key store's directory, opened and checked: ours, not writable by others."""
        try:
            fd = os.open(self._dirname, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KeyStoreError(
                f"directory {self._dirname} of key store file {self.path} does not exist; "
                "create it (owned by the agent's user, mode 0700)"
            ) from None
        except NotADirectoryError:
            raise StoreUnsafe(
                f"{self._dirname}, the directory of key store file {self.path}, is not a directory"
            ) from None
        try:
            st = os.fstat(fd)
            uid = os.geteuid()
            if st.st_uid != uid:
                raise StoreUnsafe(
                    f"directory {self._dirname} holding key store file {self.path} is owned by uid {st.st_uid}, "
                    f"not by the agent's uid {uid}; keep the key store in a directory of the agent's own "
                    f"(chown {uid} {self._dirname})"
                )
            if st.st_mode & 0o022:
                raise StoreUnsafe(
                    f"directory {self._dirname} holding key store file {self.path} is writable by group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); fix it: chmod go-w {self._dirname}"
                )
            yield fd
        finally:
            os.close(fd)

    def _check_file(self, st: os.stat_result, name: str, what: str) -> None:
        full = os.path.join(self._dirname, name)
        if stat.S_ISLNK(st.st_mode):
            raise StoreUnsafe(
                f"{what} {full} is a symbolic link; the agent does not follow links there: "
                "configure the real path, or remove the link"
            )
        if not stat.S_ISREG(st.st_mode):
            raise StoreUnsafe(f"{what} {full} is not a regular file; remove it or configure another path")
        uid = os.geteuid()
        if st.st_uid != uid:
            raise StoreUnsafe(f"{what} {full} is owned by uid {st.st_uid}, not by the agent's uid {uid}")

    def _open_file(self, directory: int, name: str, flags: int, what: str) -> tuple[int, os.stat_result]:
        """Open `name` in `directory` without following a link; only a regular file of ours.

        O_NONBLOCK keeps a FIFO or device from blocking the open; it is cleared once the
        descriptor is known to be a regular file.

        Raises:
            FileNotFoundError: there is no such file (and `flags` do not create it).
            StoreUnsafe: a symbolic link, not a regular file, or not ours.
        """
        full = os.path.join(self._dirname, name)
        with contextlib.suppress(FileNotFoundError):
            # Refuse early, without opening a FIFO or device at all; fstat below decides.
            self._check_file(os.stat(name, dir_fd=directory, follow_symlinks=False), name, what)
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600, dir_fd=directory)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._check_file(os.stat(name, dir_fd=directory, follow_symlinks=False), name, what)
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR):
                raise StoreUnsafe(f"{what} {full} is not a regular file; remove it or configure another path") from None
            raise
        try:
            st = os.fstat(fd)
            self._check_file(st, name, what)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _key_for(self, salt: bytes, kdf: dict[str, int]) -> bytes:
        key = self._derived.get(salt)
        if key is None:
            key = Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(self._password)
            self._derived[salt] = key
        return key

    def _stamp(self, directory: int) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._name, dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self, directory: int) -> _Contents:
        """Read and authenticate the file, or start empty contents when there is none."""
        try:
            fd, st = self._open_file(directory, self._name, os.O_RDONLY, "key store file")
        except FileNotFoundError:
            salt = os.urandom(16)
            key = self._key_for(salt, _SCRYPT)
            return _Contents(salt, dict(_SCRYPT), _seal(key, _CHECK_TEXT, b"check"), {}, None)
        try:
            if stat.S_IMODE(st.st_mode) & 0o077:
                raise StoreUnsafe(
                    f"key store file {self.path} is open to group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                    f"fix it: chmod 600 {self.path}"
                )
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read()
        except OSError as exc:
            raise StoreCorrupted(f"key store file {self.path} cannot be read: {exc.strerror}") from None
        finally:
            os.close(fd)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError("not our format")
            kdf = {k: int(raw["kdf"][k]) for k in ("n", "r", "p")}
            contents = _Contents(_unb64(raw["kdf"]["salt"]), kdf, raw["check"], dict(raw["keys"]), stamp)
        except (ValueError, KeyError, TypeError, AttributeError):
            # Say nothing about what the file holds: parser messages quote its content.
            raise StoreCorrupted(
                f"key store file {self.path} cannot be read: it is not an mcagent key store file"
            ) from None
        try:
            if _open_sealed(self._key_for(contents.salt, kdf), contents.check, b"check") != _CHECK_TEXT:
                raise InvalidTag()
        except InvalidTag:
            raise AuthFailed(f"wrong password for key store file {self.path}") from None
        except ValueError:
            raise StoreCorrupted(
                f"key store file {self.path} cannot be read: it is not an mcagent key store file"
            ) from None
        return contents

    def _refresh(self) -> None:
        """Re-read the file if another process has replaced it since we last looked."""
        with self._directory() as directory:
            self._refresh_in(directory)

    def _refresh_in(self, directory: int) -> None:
        if self._stamp(directory) != self._contents.stamp:
            self._contents = self._read(directory)

    @contextlib.contextmanager
    def _file_lock(self, directory: int) -> Iterator[None]:
        fd, _ = self._open_file(directory, self._name + ".lock", os.O_RDWR | os.O_CREAT, "lock file")
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

    def _create_temporary(self, directory: int) -> int:
        """Create ``<file>.tmp`` anew (O_EXCL: never an existing file, never a link's target)."""
        name = self._name + ".tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, 0o600, dir_fd=directory)
        except FileExistsError:
            pass
        # Left by a writer that crashed while holding the lock we hold now. unlink removes
        # a symbolic link itself, never what it points to.
        try:
            os.unlink(name, dir_fd=directory)
            return os.open(name, flags, 0o600, dir_fd=directory)
        except OSError as exc:
            full = os.path.join(self._dirname, name)
            raise StoreUnsafe(f"stale temporary file {full} cannot be replaced ({exc.strerror}); remove it") from None

    def _write(self, directory: int, contents: _Contents) -> None:
        document = {
            "format": FORMAT,
            "kdf": {"name": "scrypt", "salt": _b64(contents.salt), **contents.kdf},
            "check": contents.check,
            "keys": contents.entries,
        }
        data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
        temporary = self._name + ".tmp"
        fd = self._create_temporary(directory)
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self._name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
            raise
        os.fsync(directory)
        contents.stamp = self._stamp(directory)

    def _update(self, change: Callable[[_Contents], Any]) -> Any:
        """Apply `change` to the newest contents and save them, holding the file lock."""
        with self._lock, self._directory() as directory, self._file_lock(directory):
            self._refresh_in(directory)
            # Change a copy: if the write fails, memory still matches the file.
            draft = dataclasses.replace(self._contents, entries=dict(self._contents.entries))
            result = change(draft)
            self._write(directory, draft)
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
