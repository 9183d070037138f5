"""Key URIs: RFC 7512 ``pkcs11:`` URIs and the ``file:`` form of the key store.

``pkcs11:token=mcagent;id=%4a%2b...;object=<label>;type=private`` names a key in a token:
the token by label (never by slot number, which SoftHSM2 assigns at random), the key by
CKA_ID and CKA_LABEL. ``pin-value`` is refused: PINs come from the environment or a file.

``file:///var/lib/mcagent/keystore.mcks#<label>`` names a key in a key store file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from mcagent.hsm.errors import InvalidURI

# RFC 7512 section 2.3: characters allowed unescaped in a path attribute value.
_PK11_SAFE = "-._~:[]@!$'()*+,="


@dataclass(frozen=True)
class Pkcs11URI:
    """The parts of a ``pkcs11:`` URI that mcagent uses.

    Attributes:
        token: token label (CKA token label, up to 32 characters).
        key_id: CKA_ID bytes, or None to match any.
        label: CKA_LABEL, or None to match any.
        module_path: the ``module-path`` query attribute: which PKCS#11 library to load.
    """

    token: str
    key_id: bytes | None = None
    label: str | None = None
    module_path: str | None = None

    @classmethod
    def parse(cls, uri: str) -> Pkcs11URI:
        """Parse a ``pkcs11:`` URI.

        Raises:
            InvalidURI: not a pkcs11 URI, no token, a repeated attribute, or a PIN in it.
        """
        if not uri.startswith("pkcs11:"):
            raise InvalidURI(f"not a pkcs11: URI: {uri.split(':', 1)[0]}:...")
        path, _, query = uri[len("pkcs11:"):].partition("?")
        attrs: dict[str, str] = {}
        for part in filter(None, path.split(";")):
            name, sep, value = part.partition("=")
            if not sep:
                raise InvalidURI(f"pkcs11 URI attribute {name!r} has no value")
            if name in attrs:
                raise InvalidURI(f"pkcs11 URI repeats attribute {name!r}")
            attrs[name] = value
        if "pin-value" in uri or "pin-source" in uri:
            raise InvalidURI("pkcs11 URIs must not carry a PIN; pass it in the environment or a file")
        if "token" not in attrs:
            raise InvalidURI("pkcs11 URI names no token (token=...)")
        key_id = unquote_to_bytes(attrs["id"]) if "id" in attrs else None
        label = unquote(attrs["object"]) if "object" in attrs else None
        module_path = None
        for part in filter(None, query.split("&")):
            name, _, value = part.partition("=")
            if name == "module-path":
                module_path = unquote(value)
        return cls(token=unquote(attrs["token"]), key_id=key_id, label=label, module_path=module_path)

    def __str__(self) -> str:
        parts = [f"token={quote(self.token, safe=_PK11_SAFE)}"]
        if self.key_id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.key_id))
        if self.label is not None:
            parts.append(f"object={quote(self.label, safe=_PK11_SAFE)}")
        uri = "pkcs11:" + ";".join(parts)
        if self.module_path is not None:
            uri += "?module-path=" + quote(self.module_path)
        return uri


@dataclass(frozen=True)
class FileURI:
    """A key in a key store file.

    Attributes:
        path: absolute path of the key store file.
        label: the key's entry name in the file, or None for the file itself.
    """

    path: str
    label: str | None = None

    @classmethod
    def parse(cls, uri: str) -> FileURI:
        """Parse a ``file:`` URI.

        Raises:
            InvalidURI: not a file URI, or a relative or remote path.
        """
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise InvalidURI(f"not a file: URI: {parts.scheme or uri[:10]}:...")
        if parts.netloc not in ("", "localhost"):
            raise InvalidURI(f"file: URI names a remote host {parts.netloc!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidURI("file: URI must hold an absolute path")
        return cls(path=path, label=unquote(parts.fragment) if parts.fragment else None)

    def __str__(self) -> str:
        uri = "file://" + quote(self.path)
        if self.label is not None:
            uri += "#" + quote(self.label, safe="")
        return uri


def scheme_of(uri: str) -> str:
    """The scheme of a key URI (``pkcs11`` or ``file``)."""
    scheme, sep, _ = uri.partition(":")
    if not sep:
        raise InvalidURI("key URI has no scheme (expected pkcs11: or file:)")
    return scheme
