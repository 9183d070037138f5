"""The agent's key custody backends: at most one PKCS#11 token and any number of files.

Credentials choose a backend when created (``pkcs11`` or ``file``, default from the daemon's
configuration) and, for ``file``, a key store path (default: the pre-filled path in the
data directory). All key store files share the daemon's key store password.
"""

from __future__ import annotations

import os
import threading

from agent.domain.errors import FailedPrecondition, InvalidArgument
from agent.domain.model import Backend
from hsm import open_keystore
from hsm.base import KeyDeleter, KeyStore
from hsm.uri import FileURI, scheme_of


class KeyStores:
    """Opens and keeps the backends; finds the one holding a key URI."""

    def __init__(
        self,
        *,
        default_backend: Backend,
        default_keystore_path: str,
        keystore_password: str | None,
        pkcs11: KeyStore | None = None,
    ) -> None:
        """Open the default key store file now, so a wrong password stops start-up.

        Args:
            default_backend: backend used when a request names none.
            default_keystore_path: the pre-filled key store file path.
            keystore_password: password of key store files; None disables the file backend.
            pkcs11: the opened token; None disables the pkcs11 backend.
        """
        self.default_backend = default_backend
        self.default_keystore_path = default_keystore_path
        self._password = keystore_password
        self._files: dict[str, KeyStore] = {}
        self._lock = threading.Lock()
        self._pkcs11 = pkcs11
        if keystore_password is not None:
            self.file_store(default_keystore_path)

    def file_store(self, path: str) -> KeyStore:
        """The key store file at `path`, opened on first use."""
        if not os.path.isabs(path):
            raise InvalidArgument(f"key store path must be absolute: {path}")
        path = os.path.normpath(path)
        with self._lock:
            store = self._files.get(path)
            if store is None:
                if self._password is None:
                    raise FailedPrecondition(
                        "the file key store is not enabled: start the agent with "
                        "MCAGENT_KEYSTORE_PASSWORD or --keystore-password-file"
                    )
                if not os.path.isdir(os.path.dirname(path)):
                    raise InvalidArgument(f"key store directory {os.path.dirname(path)} does not exist")
                store = open_keystore(str(FileURI(path)), self._password)
                self._files[path] = store
            return store

    def pkcs11_store(self) -> KeyStore:
        """The PKCS#11 token."""
        if self._pkcs11 is None:
            raise FailedPrecondition(
                "the pkcs11 backend is not enabled: start the agent with --pkcs11-module and "
                "--pkcs11-token and the PIN in MCAGENT_PKCS11_PIN or --pkcs11-pin-file"
            )
        return self._pkcs11

    def for_new_key(self, backend: Backend | None, keystore_path: str | None) -> tuple[Backend, KeyStore]:
        """The backend a new key goes to."""
        backend = backend or self.default_backend
        if backend is Backend.PKCS11:
            if keystore_path:
                raise InvalidArgument("--keystore applies to the file backend only")
            return backend, self.pkcs11_store()
        return backend, self.file_store(keystore_path or self.default_keystore_path)

    def for_uri(self, uri: str) -> KeyStore:
        """The backend holding the key at `uri`."""
        if scheme_of(uri) == "pkcs11":
            return self.pkcs11_store()
        return self.file_store(FileURI.parse(uri).path)

    def delete_key(self, uri: str) -> int:
        """Destroy the key (every object) at `uri`; returns how many objects went."""
        store = self.for_uri(uri)
        if not isinstance(store, KeyDeleter):
            raise FailedPrecondition(f"the {store.scheme} backend cannot destroy keys")
        return store.delete_key(uri)

    def close(self) -> None:
        """Close every backend (logs out of the token, forgets decrypted keys)."""
        with self._lock:
            stores = list(self._files.values()) + ([self._pkcs11] if self._pkcs11 else [])
            self._files.clear()
        for store in stores:
            store.close()
