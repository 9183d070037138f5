"""Key custody: one interface (`hsm.base.KeyStore`), one backend per URI scheme.

`open_keystore` picks the backend from the store URI:

- ``pkcs11:token=<label>?module-path=<library>`` opens a PKCS#11 token;
- ``file:///path/to/keystore.mcks`` opens an encrypted key store file.

The secret (token PIN or file password) is passed separately, never inside the URI.
"""

from __future__ import annotations

from collections.abc import Callable

from mcagent.hsm.base import KeyStore
from mcagent.hsm.errors import InvalidURI, Unsupported
from mcagent.hsm.uri import FileURI, Pkcs11URI, scheme_of


def _open_pkcs11(uri: str, secret: str) -> KeyStore:
    try:
        from mcagent.hsm.pkcs11.backend import Pkcs11KeyStore
    except ImportError as exc:  # the backend stays registered and says why it cannot work
        raise Unsupported(f"pkcs11 backend unavailable: python-pkcs11 not installed ({exc})") from exc
    parsed = Pkcs11URI.parse(uri)
    if not parsed.module_path:
        raise InvalidURI("pkcs11 store URI needs ?module-path=<PKCS#11 library>")
    return Pkcs11KeyStore(parsed.module_path, parsed.token, secret)


def _open_file(uri: str, secret: str) -> KeyStore:
    from mcagent.hsm.filestore import FileKeyStore

    return FileKeyStore(FileURI.parse(uri).path, secret)


_BACKENDS: dict[str, Callable[[str, str], KeyStore]] = {
    "pkcs11": _open_pkcs11,
    "file": _open_file,
}


def open_keystore(uri: str, secret: str) -> KeyStore:
    """Open the key store named by `uri`.

    Args:
        uri: store URI (see the module docstring).
        secret: the token PIN or the file password.

    Raises:
        InvalidURI: unknown scheme or malformed URI.
        AuthFailed: the secret was refused.
        TokenUnavailable: the token or module cannot be used.
    """
    scheme = scheme_of(uri)
    opener = _BACKENDS.get(scheme)
    if opener is None:
        raise InvalidURI(f"no key store backend for {scheme}: URIs (known: {', '.join(_BACKENDS)})")
    return opener(uri, secret)
