"""The types that cross the domain's edge: who calls, what they ask, what they get back."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from mcagent.agent.domain.errors import (
    InvalidArgument,
)
from mcagent.agent.domain.model import Credential, Reminder
from mcagent.agent.domain.notification import Notification
from mcagent.agent.domain.policy import PA, Role
from mcagent.hsm.base import (
    SignatureAlgorithm,
)

# The certificate's CN holds the credential name: X.520 allows at most 64 characters.
MAX_CREDENTIAL_NAME = 64
MAX_BUSINESS_NAME = 200
SYSTEM_ACTOR = "mcagent"


@dataclass(frozen=True)
class Caller:
    """Who is asking.

    Attributes:
        name: for messages and the audit log.
        principal_id: the principal, or None for the local administrator.
        is_admin: the local administrator (registers businesses, creates principals).
    """

    name: str
    principal_id: str | None = None
    is_admin: bool = False


@dataclass(frozen=True)
class Signed:
    """What a sign returns: the signature, the algorithm that made it, the certificate chain."""

    signature: bytes
    algorithm: SignatureAlgorithm
    certificate_chain: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class CredentialView:
    """A credential as callers see it: the record plus what is derived from the clock."""

    credential: Credential
    display_status: str
    window_ends_at: dt.datetime | None
    reminders: tuple[Reminder, ...]


@dataclass(frozen=True)
class Created:
    """The answer to a create: the credential and, on renewal, what to do about the old one."""

    view: CredentialView
    notice: str = ""
    replaces_id: str = ""


@dataclass(frozen=True)
class NotificationView:
    """A notification as callers see it: with names and the status as of today."""

    notification: Notification
    status: str
    business_name: str
    dsp_name: str


@dataclass(frozen=True, kw_only=True)
class SignItem:
    """What a caller asks to have signed (one `Sign`, or one item of a batch).

    Attributes:
        credential_id: the credential whose key signs.
        algorithm: None for the key type's default.
        data: the data, hashed by the agent; or
        digest: its precomputed digest (exactly one of the two).
        permission: the permission the signature is used for ("" for none).
    """

    credential_id: str
    algorithm: SignatureAlgorithm | None = None
    data: bytes | None = None
    digest: bytes | None = None
    permission: str = ""


@dataclass
class AuditContext:
    """What a refusal entry should name; filled in as the operation learns it."""

    abn: str = ""
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


DEFAULT_PAGE = 100


def encode_page_token(last: Credential) -> str:
    return base64.urlsafe_b64encode(f"{last.created_at.isoformat()}|{last.id}".encode()).decode()


def decode_page_token(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        created, _, credential_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return dt.datetime.fromisoformat(created).astimezone(dt.UTC).isoformat(timespec="microseconds"), credential_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("the page token is not one this agent gave out") from None


def check_name(kind: str, name: str, limit: int) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument(f"{kind} must not be empty")
    if len(name) > limit:
        raise InvalidArgument(f"{kind} is {len(name)} characters long; at most {limit} are allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(f"{kind} must not contain control characters")
    return name


def token_hash(token: str) -> str:
    """How bearer tokens are stored: SHA-256 (the tokens are 256-bit random, so no KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalise_subject(subject: str) -> str:
    """An RFC 4514 distinguished name in the form certificates are compared in.

    Raises:
        InvalidArgument: not a distinguished name.
    """
    try:
        return x509.Name.from_rfc4514_string(subject).rfc4514_string()
    except ValueError as exc:
        raise InvalidArgument(f"certificate subject {subject!r} is not an RFC 4514 name: {exc}") from None


def roles_text(roles: frozenset[Role] | set[Role]) -> str:
    """'the principal authority, an authorisation administrator or a machine credential administrator'."""
    def named(role: Role) -> str:
        article = "the" if role is PA else ("an" if role.title[0] in "aeiou" else "a")
        return f"{article} {role.title}" + (" principal" if role is Role.SOFTWARE else "")

    names = [named(r) for r in Role if r in roles]
    if len(names) <= 1:
        return names[0] if names else "no role"
    return ", ".join(names[:-1]) + " or " + names[-1]

