"""What the client returns: plain frozen dataclasses and enums, never protobuf messages.

Field names follow the API (`proto/…/agent.proto`); timestamps are aware `datetime`s (None
when unset), repeated fields are tuples, enums are the ones below.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import grpc


class Algorithm(enum.Enum):
    """Signature algorithms; the hash is always named. The values are the CLI's names."""

    RSA_PKCS1_SHA256 = "rsa-pkcs1-sha256"
    RSA_PKCS1_SHA1 = "rsa-pkcs1-sha1"  # the legacy SBR endpoint only
    RSA_PSS_SHA256 = "rsa-pss-sha256"  # MGF1-SHA256, salt length 32
    ECDSA_SHA256 = "ecdsa-sha256"  # DER-encoded (r, s)


class KeyType(enum.Enum):
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    EC_P256 = "ec-p256"


class Backend(enum.Enum):
    PKCS11 = "pkcs11"
    FILE = "file"


class Role(enum.Enum):
    PRINCIPAL_AUTHORITY = "principal-authority"
    AUTHORISATION_ADMINISTRATOR = "authorisation-administrator"
    MACHINE_CREDENTIAL_ADMINISTRATOR = "machine-credential-administrator"
    SOFTWARE = "software"


_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class Reminder:
    day: int
    recorded_at: dt.datetime | None
    recipients: tuple[str, ...]


@_frozen
class Credential:
    """A machine credential as the agent shows it (its private key never leaves the agent)."""

    id: str
    abn: str
    name: str
    status: str  # active | unassigned | revoked
    display_status: str  # as RAM shows it: unassigned is "Suspended"
    key_type: KeyType | None
    backend: Backend | None
    key_uri: str
    created_at: dt.datetime | None
    created_by: str
    terms_version: str
    holder: str
    unassigned_at: dt.datetime | None
    window_ends_at: dt.datetime | None
    reminders: tuple[Reminder, ...]
    first_used_at: dt.datetime | None
    permissions: tuple[str, ...] | None  # None before first use: full permissions
    revoked_at: dt.datetime | None
    revoked_by: str
    certificate_not_after: dt.datetime | None = None  # when its leaf certificate expires
    alias: str = ""  # ABRD:<ABN>_<name> when it holds its RAM alias (get and list)
    local: bool = False  # flagged local: never used with ActAs (get and list)


@_frozen
class CreatedCredential:
    credential: Credential
    notice: str  # on renewal: what to do about the credential it replaces
    replaces_id: str


@_frozen
class CredentialPage:
    credentials: tuple[Credential, ...]
    next_page_token: str  # empty: no further page


@_frozen
class Signature:
    signature: bytes  # RSA: raw; ECDSA: DER
    algorithm: Algorithm | None
    certificate_chain: tuple[bytes, ...]  # DER, leaf first; empty until a certificate is installed


@_frozen
class BatchItem:
    """One digest for `sign_batch`, already hashed with the algorithm's hash."""

    credential_id: str
    digest: bytes
    algorithm: Algorithm | str | None = None
    permission: str = ""


@_frozen
class BatchResult:
    """One item's outcome: a signature, or the error the agent gave for that item alone."""

    signature: bytes
    algorithm: Algorithm | None
    code: grpc.StatusCode
    error: str

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK

    def raise_for_error(self) -> bytes:
        """The signature, or the item's error raised as a `McagentError`."""
        if not self.ok:
            from mcagent.client.errors import error_for

            raise error_for(self.code, self.error)
        return self.signature


@_frozen
class StreamItem:
    """One sign for `sign_stream`: data (hashed by the agent) or a digest, with an id of your choosing."""

    request_id: str
    credential_id: str
    data: bytes | None = None
    digest: bytes | None = None
    algorithm: Algorithm | str | None = None
    permission: str = ""


@_frozen
class StreamResult(BatchResult):
    """One answer of `sign_stream`: the `request_id` of its item, and a signature or that item's error."""

    request_id: str


@_frozen
class MachineTerms:
    version: str
    text: str


@_frozen
class PermissionEntry:
    id: str
    agency: str
    service: str
    granted: bool


@_frozen
class Permissions:
    credential_id: str
    first_used: bool  # False: not yet used, so full permissions and not amendable yet
    permissions: tuple[PermissionEntry, ...]


@_frozen
class KeystoreEntry:
    alias: str
    abn: str
    legal_name: str
    name: str
    serial_number: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    status: str
    issuer: str


@_frozen
class ExportedCredential:
    data: bytes
    notice: str


@_frozen
class Business:
    abn: str
    name: str
    registered_at: dt.datetime | None


@_frozen
class RoleGrant:
    abn: str
    principal: str
    role: Role | None
    granted_at: dt.datetime | None
    granted_by: str


@_frozen
class Principal:
    name: str
    uid: int  # -1: not identified by uid
    certificate_subject: str
    created_at: dt.datetime | None


@_frozen
class CreatedPrincipal:
    principal: Principal
    token: str  # shown once; the agent keeps only its hash


@_frozen
class WhoAmI:
    name: str
    local_administrator: bool


@_frozen
class AuditEntry:
    seq: int
    at: dt.datetime | None
    actor: str
    action: str
    outcome: str  # allowed | refused
    abn: str
    target: str
    detail_json: str
    prev_hash: str
    hash: str


@_frozen
class AuditPage:
    entries: tuple[AuditEntry, ...]
    next_after: int  # 0: no further page


@_frozen
class AuditVerification:
    ok: bool
    entries: int
    head_hash: str
    problem: str
    bad_seq: int
    checkpoint_seq: int
    first_checkpoint_seq: int


@_frozen
class Notification:
    id: str
    abn: str
    business_name: str
    dsp_abn: str
    dsp_name: str
    software_ids: tuple[str, ...]
    start_date: str  # YYYY-MM-DD
    end_date: str  # empty: no end date
    agencies: tuple[str, ...]
    status: str  # pending | active | removed | ended
    created_at: dt.datetime | None
    created_by: str
    requested_by: str
    declaration_by: str
    declaration_at: dt.datetime | None
    removed_at: dt.datetime | None
    removed_by: str


@_frozen
class Agency:
    id: str
    name: str


@_frozen
class CACertificates:
    root_pem: str
    issuing_pem: str
