"""The agent's key custody backends: at most one PKCS#11 token and the configured key store files.

Credentials choose a backend when created (``pkcs11`` or ``file``, default from the daemon's
configuration) and, for ``file``, one of the key store files the operator configured, by
name (``default`` unless the request names another). A client never names a path: every
file the daemon opens is one the operator named at start-up. All key store files share the
daemon's key store password.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument
from mcagent.agent.domain.model import Backend
from mcagent.hsm import open_keystore
from mcagent.hsm.base import KeyDeleter, KeyStore
from mcagent.hsm.errors import KeyStoreError
from mcagent.hsm.uri import FileURI, scheme_of

DEFAULT_STORE = "default"
STORE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class KeyStores:
    """Opens and keeps the backends; finds the one holding a key URI."""

    def __init__(
        self,
        *,
        default_backend: Backend,
        keystore_files: dict[str, str],
        keystore_password: str | None,
        pkcs11: KeyStore | None = None,
    ) -> None:
        """Open every configured key store file now, so a wrong password stops start-up.

        Args:
            default_backend: backend used when a request names none.
            keystore_files: key store file paths by name; ``default`` is used when a request
                names none.
            keystore_password: password of key store files; None disables the file backend.
            pkcs11: the opened token; None disables the pkcs11 backend.
        """
        self.default_backend = default_backend
        self._paths = {name: os.path.normpath(path) for name, path in keystore_files.items()}
        self._names = {path: name for name, path in self._paths.items()}
        self._password = keystore_password
        self._files: dict[str, KeyStore] = {}
        self._lock = threading.Lock()
        self._pkcs11 = pkcs11
        if keystore_password is not None:
            for name in self._paths:
                self._open(name)

    def token_stats(self) -> Any:
        """The token's session pool state (`hsm.pkcs11.pool.PoolStats`), or None without a token."""
        stats = getattr(self._pkcs11, "stats", None)
        return stats() if stats is not None else None

    def _open(self, name: str) -> KeyStore:
        with self._lock:
            store = self._files.get(name)
            if store is None:
                if self._password is None:
                    raise FailedPrecondition(
                        "the file key store is not enabled: start the agent with "
                        "MCAGENT_KEYSTORE_PASSWORD or --keystore-password-file"
                    )
                store = open_keystore(str(FileURI(self._paths[name])), self._password)
                self._files[name] = store
            return store

    def file_store(self, name: str | None) -> KeyStore:
        """The configured key store file called `name` (the default one for None or "").

        Raises:
            InvalidArgument: no key store file of that name is configured.
        """
        name = name or DEFAULT_STORE
        if name not in self._paths:
            configured = ", ".join(sorted(self._paths)) or "none"
            which = f"as {name!r}" if STORE_NAME.match(name) else "under that name"  # a path is not echoed
            raise InvalidArgument(
                f"no key store file is configured {which} (configured: {configured}); key store files "
                "are named by the operator with `mcagent serve --store NAME=PATH`, never chosen by path"
            )
        return self._open(name)

    def pkcs11_store(self) -> KeyStore:
        """The PKCS#11 token."""
        if self._pkcs11 is None:
            raise FailedPrecondition(
                "the pkcs11 backend is not enabled: start the agent with --pkcs11-module and "
                "--pkcs11-token and the PIN in MCAGENT_PKCS11_PIN or --pkcs11-pin-file"
            )
        return self._pkcs11

    def for_new_key(self, backend: Backend | None, store_name: str | None) -> tuple[Backend, KeyStore]:
        """The backend a new key goes to."""
        backend = backend or self.default_backend
        if backend is Backend.PKCS11:
            if store_name:
                raise InvalidArgument("a key store file name (--store) applies to the file backend only")
            return backend, self.pkcs11_store()
        return backend, self.file_store(store_name)

    def for_uri(self, uri: str) -> KeyStore:
        """The backend holding the key at `uri`.

        Raises:
            FailedPrecondition: the key is in a file the operator has not configured (any more).
        """
        if scheme_of(uri) == "pkcs11":
            return self.pkcs11_store()
        path = os.path.normpath(FileURI.parse(uri).path)
        name = self._names.get(path)
        if name is None:
            raise FailedPrecondition(
                f"the key is in key store file {path}, which this agent is not configured with; "
                f"the operator can add it with `mcagent serve --store NAME={path}`"
            )
        return self.file_store(name)

    def delete_key(self, uri: str) -> int:
        """Destroy the key (every object) at `uri`; returns how many objects went."""
        store = self.for_uri(uri)
        if not isinstance(store, KeyDeleter):
            raise FailedPrecondition(f"the {store.scheme} backend cannot destroy keys")
        return store.delete_key(uri)

    def health_problem(self) -> str | None:
        """Why key custody cannot sign now (the token is away), or None.

        Backends with a `check()` (the PKCS#11 token) are asked; key store files are in the
        agent's memory once opened, and each sign reports its own file errors.
        """
        store = self._pkcs11
        check = getattr(store, "check", None)
        if check is None:
            return None
        try:
            check()
        except KeyStoreError as exc:
            return str(exc)
        return None

    def close(self) -> None:
        """Close every backend (logs out of the token, forgets decrypted keys)."""
        with self._lock:
            stores = list(self._files.values()) + ([self._pkcs11] if self._pkcs11 else [])
            self._files.clear()
        for store in stores:
            store.close()
