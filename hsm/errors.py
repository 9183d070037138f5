"""Errors raised by key custody backends.

Messages name the key or store and what went wrong; they never contain a PIN, a
password or key material. Backend-specific exceptions are kept as ``__cause__``.
"""


class KeyStoreError(Exception):
    """Base of every key custody error."""


class KeyNotFound(KeyStoreError):
    """No key matches the URI."""


class KeyExists(KeyStoreError):
    """A key with that label already exists in the store."""


class Unsupported(KeyStoreError):
    """The backend, key or algorithm cannot do what was asked (a permanent condition)."""


class InvalidURI(KeyStoreError):
    """A key URI could not be parsed or names another backend."""


class AuthFailed(KeyStoreError):
    """The PIN or password was refused, or is missing. Permanent until it is changed."""


class StoreCorrupted(KeyStoreError):
    """A key store file cannot be read: it is not one, or it has been damaged."""


class StoreUnsafe(KeyStoreError):
    """A key store file or its directory is not safe to use: refused before reading or writing.

    Someone else could read or change it (wrong owner, open permissions, a symbolic
    link), or it is not a regular file.

    Permanent until the operator fixes what the message names; nothing was read or written.
    """


class StoreLocked(KeyStoreError):
    """Another writer holds the key store file's lock for longer than we wait."""


class TokenUnavailable(KeyStoreError):
    """The token or module failed in a way that may pass: retry later.

    The PKCS#11 backend recovers by itself (new sessions, new login); meanwhile calls
    raise this error.
    """
