"""Records the agent keeps: businesses, principals, roles, machine credentials."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.policy import Role
from mcagent.hsm.base import KeyType


class Backend(enum.Enum):
    """Where a credential's private key lives."""

    PKCS11 = "pkcs11"
    FILE = "file"


@dataclass(frozen=True)
class Business:
    """A business, identified by its ABN."""

    abn: str
    name: str
    registered_at: dt.datetime


@dataclass(frozen=True)
class Principal:
    """Someone or something that acts for businesses.

    Attributes:
        uid: Unix uid that identifies it on the Unix socket, or None.
        certificate_subject: TLS client certificate subject (RFC 4514) that identifies it, or None.
    """

    id: str
    name: str
    uid: int | None
    certificate_subject: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class RoleGrant:
    """A role a principal holds in a business."""

    abn: str
    principal_id: str
    principal_name: str
    role: Role
    granted_at: dt.datetime
    granted_by: str


@dataclass(frozen=True)
class Reminder:
    """A recorded reminder to claim an unassigned credential."""

    credential_id: str
    day: int
    recorded_at: dt.datetime
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Credential:
    """A machine credential and where its key is.

    Attributes:
        id: the agent's identifier, also the key's label in its backend.
        key_uri: the key's URI (while ``creating``: a URI matching it by label).
        holder_id: the principal responsible for it (None while unassigned).
        permissions: granted permission ids; None before first use (full permissions).
        key_destroyed: for revoked credentials, whether the backend confirmed the destruction.
        certificate_chain: DER certificates, leaf first (empty: none installed).
        issued_by_agent: the leaf came from the agent's CA (so it goes on the agent's CRL).
    """

    id: str
    abn: str
    name: str
    status: CredentialStatus
    key_type: KeyType
    backend: Backend
    key_uri: str
    created_at: dt.datetime
    created_by: str
    terms_version: str
    holder_id: str | None = None
    holder_name: str | None = None
    unassigned_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoked_by: str | None = None
    key_destroyed: bool = False
    first_used_at: dt.datetime | None = None
    permissions: tuple[str, ...] | None = None
    certificate_chain: tuple[bytes, ...] = ()
    issued_by_agent: bool = False
