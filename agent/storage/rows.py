"""Row codecs: database rows to domain objects and back. Pure functions, no connection.

A row is anything indexable by column name (``sqlite3.Row``, a dict). Times are stored as
ISO 8601 text in UTC with microseconds, lists as JSON, certificates as a JSON list of base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from mcagent.agent.domain.audit import AuditEntry, canonical_json, timestamp
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.model import Backend, Business, Credential, Principal, Reminder, RoleGrant
from mcagent.agent.domain.notification import Notification, NotificationStatus
from mcagent.agent.domain.policy import Role
from mcagent.hsm.base import KeyType

Row = Mapping[str, Any]


def ts(value: dt.datetime | None) -> str | None:
    """A time as stored: the audit entry's `timestamp` format (None stays None)."""
    return None if value is None else timestamp(value)


def parse_ts(text: str | None) -> dt.datetime | None:
    """A stored time read back (None stays None)."""
    return None if text is None else dt.datetime.fromisoformat(text)


def encode_chain(chain: tuple[bytes, ...] | list[bytes]) -> str:
    """DER certificates as stored: a JSON list of base64."""
    return json.dumps([base64.b64encode(c).decode() for c in chain])


def decode_chain(text: str | None) -> tuple[bytes, ...]:
    """A stored certificate chain read back (NULL: none installed)."""
    return tuple(base64.b64decode(c) for c in json.loads(text or "[]"))


# -- businesses, principals, roles, reminders -------------------------------------------------


def business(row: Row) -> Business:
    """A ``business`` row as a Business."""
    return Business(row["abn"], row["name"], parse_ts(row["registered_at"]))


def principal(row: Row) -> Principal:
    """A ``principal`` row as a Principal."""
    return Principal(row["id"], row["name"], row["uid"], row["certificate_subject"], parse_ts(row["created_at"]))


def role_grant(row: Row) -> RoleGrant:
    """A ``role_grant`` row joined with the principal's name (``principal_name``)."""
    return RoleGrant(row["abn"], row["principal_id"], row["principal_name"], Role(row["role"]),
                     parse_ts(row["granted_at"]), row["granted_by"])


def reminder(row: Row) -> Reminder:
    """A ``reminder`` row as a Reminder."""
    return Reminder(row["credential_id"], row["day"], parse_ts(row["recorded_at"]),
                    tuple(json.loads(row["recipients"])))


def reminder_values(r: Reminder) -> tuple:
    """(credential_id, day, recorded_at, recipients) of a reminder."""
    return (r.credential_id, r.day, ts(r.recorded_at), json.dumps(list(r.recipients)))


# -- credentials ----------------------------------------------------------------------------------


def credential(row: Row) -> Credential:
    """A ``credential`` row joined with its holder's name (``holder_name``)."""
    permissions = row["permissions"]
    return Credential(
        id=row["id"],
        abn=row["abn"],
        name=row["name"],
        status=CredentialStatus(row["status"]),
        key_type=KeyType(row["key_type"]),
        backend=Backend(row["backend"]),
        key_uri=row["key_uri"],
        created_at=parse_ts(row["created_at"]),
        created_by=row["created_by"],
        terms_version=row["terms_version"],
        holder_id=row["holder_id"],
        holder_name=row["holder_name"],
        unassigned_at=parse_ts(row["unassigned_at"]),
        revoked_at=parse_ts(row["revoked_at"]),
        revoked_by=row["revoked_by"],
        key_destroyed=bool(row["key_destroyed"]),
        first_used_at=parse_ts(row["first_used_at"]),
        permissions=None if permissions is None else tuple(json.loads(permissions)),
        certificate_chain=decode_chain(row["certificate_chain"]),
        issued_by_agent=bool(row["issued_by_agent"]),
    )


def credential_column(name: str, value: Any) -> Any:
    """One credential field as stored in the column of the same name."""
    if isinstance(value, dt.datetime):
        return ts(value)
    if isinstance(value, CredentialStatus | KeyType | Backend):
        return value.value
    if name == "permissions" and value is not None:
        return json.dumps(list(value))
    if name == "certificate_chain":
        return encode_chain(value)
    if isinstance(value, bool):
        return int(value)
    return value


#: Credential fields stored in a column of the same name (holder_name comes from a join).
CREDENTIAL_COLUMNS = tuple(f for f in Credential.__dataclass_fields__ if f != "holder_name")


def credential_columns(c: Credential, names: tuple[str, ...] = CREDENTIAL_COLUMNS) -> dict[str, Any]:
    """The credential's `names` fields as stored, by column name."""
    return {name: credential_column(name, getattr(c, name)) for name in names}


# -- notifications --------------------------------------------------------------------------------

NOTIFICATION_COLUMNS = ("id", "abn", "dsp_abn", "software_ids", "start_date", "end_date", "agencies", "status",
                        "created_at", "created_by", "requested_by", "declaration_by", "declaration_at",
                        "removed_at", "removed_by")


def notification_values(n: Notification) -> tuple:
    """A notification's values in NOTIFICATION_COLUMNS order."""
    return (n.id, n.abn, n.dsp_abn, json.dumps(list(n.software_ids)), n.start_date.isoformat(),
            n.end_date.isoformat() if n.end_date else None, json.dumps(list(n.agencies)), n.status.value,
            ts(n.created_at), n.created_by, n.requested_by, n.declaration_by, ts(n.declaration_at),
            ts(n.removed_at), n.removed_by)


def notification(row: Row) -> Notification:
    """A ``notification`` row as a Notification."""
    return Notification(
        id=row["id"], abn=row["abn"], dsp_abn=row["dsp_abn"], software_ids=tuple(json.loads(row["software_ids"])),
        start_date=dt.date.fromisoformat(row["start_date"]),
        end_date=dt.date.fromisoformat(row["end_date"]) if row["end_date"] else None,
        agencies=tuple(json.loads(row["agencies"])), status=NotificationStatus(row["status"]),
        created_at=parse_ts(row["created_at"]), created_by=row["created_by"], requested_by=row["requested_by"],
        declaration_by=row["declaration_by"], declaration_at=parse_ts(row["declaration_at"]),
        removed_at=parse_ts(row["removed_at"]), removed_by=row["removed_by"],
    )


# -- audit ----------------------------------------------------------------------------------------

AUDIT_COLUMNS = ("seq", "at", "actor", "action", "outcome", "abn", "target", "detail", "prev_hash", "hash")


def audit_values(e: AuditEntry, detail_json: str | None = None, when: str | None = None) -> tuple:
    """An audit entry's values in AUDIT_COLUMNS order (detail as canonical JSON, time as `ts`: pass
    them if the caller has them already)."""
    return (e.seq, ts(e.at) if when is None else when, e.actor, e.action, e.outcome, e.abn, e.target,
            canonical_json(e.detail) if detail_json is None else detail_json, e.prev_hash, e.hash)


def audit(row: Row) -> AuditEntry:
    """An ``audit`` row as an AuditEntry."""
    return AuditEntry(
        seq=row["seq"], at=parse_ts(row["at"]), actor=row["actor"], action=row["action"], outcome=row["outcome"],
        abn=row["abn"], target=row["target"], detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"], hash=row["hash"],
    )
