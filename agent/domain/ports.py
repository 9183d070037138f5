"""What the domain needs from outside: records, the audit log and key custody.

The domain imports only these Protocols; adapters outside `agent/domain` implement them
(`agent.storage` over SQLite, `agent.keys` over the `hsm` backends) and the composition
root (`agent.app`) wires one of each into `AgentService`. A second storage engine is a
second adapter of `Records` and `AuditLog`; nothing in the domain changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, Protocol

from mcagent.agent.domain.audit import AuditEntry
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.model import Backend, Business, Credential, Principal, Reminder, RoleGrant
from mcagent.agent.domain.notification import Notification
from mcagent.agent.domain.policy import Role
from mcagent.hsm.base import KeyStore


class Records(Protocol):
    """The agent's records, with a unit of work.

    Every method that changes something runs inside `transaction()`, so that a change and
    its audit entry (`append_audit`) commit together or not at all. Reads run anywhere;
    inside a transaction they see its uncommitted changes.
    """

    #: Bumped by every committed transaction that changes state, by any process sharing the
    #: database (read from it each time); caches are valid for one value.
    state_version: int
    #: State-changing transactions this process has committed (in memory, no read): a state
    #: version read before the count moved is stale for this process's own changes.
    commits_here: int
    #: The engine: "sqlite" or "postgresql".
    engine: str

    def transaction(self, *, changes_state: bool = True) -> AbstractContextManager[Any]:
        """A unit of work: commits on leaving, rolls back on an exception.

        Raises:
            Unavailable: the records cannot be written now; nothing was kept.
        """

    def lock(self, name: str) -> None:
        """Inside a transaction: wait until no other process holds the lock `name`, and hold it
        until the transaction ends. Start-up steps that create something (the CA, the audit
        key) take one and look again inside it, so that instances starting at once create it once.
        """

    def append_audit(self, *, at: dt.datetime, actor: str, action: str, outcome: str, abn: str = "",
                     target: str = "", detail: dict[str, Any] | None = None) -> AuditEntry:
        """Append an audit entry in the current transaction (chained to the newest)."""

    # businesses, principals, roles
    def insert_business(self, business: Business) -> bool: ...
    def get_business(self, abn: str) -> Business | None: ...
    def list_businesses(self) -> list[Business]: ...
    def insert_principal(self, principal: Principal, token_hash: str, created_by: str) -> None: ...
    def principal_where(self, column: str, value: Any) -> Principal | None: ...
    def list_principals(self) -> list[Principal]: ...
    def grant_role(self, abn: str, principal_id: str, role: Role, at: dt.datetime, by: str) -> bool: ...
    def remove_role(self, abn: str, principal_id: str, role: Role) -> bool: ...
    def roles_of(self, abn: str, principal_id: str) -> set[Role]: ...
    def role_grants(self, abn: str | None = None, principal_id: str | None = None) -> list[RoleGrant]: ...

    # credentials and their reminders
    def insert_credential(self, credential: Credential) -> None: ...
    def update_credential(self, credential_id: str, expected_status: CredentialStatus, **fields: Any) -> None: ...
    def delete_credential(self, credential_id: str) -> None: ...
    def get_credential(self, credential_id: str) -> Credential | None: ...
    def list_credentials(self, *, abn: str | None = None, abns: list[str] | None = None, name: str | None = None,
                         holder_id: str | None = None, status: CredentialStatus | None = None,
                         key_destroyed: bool | None = None,
                         page: tuple[tuple[str, str] | None, int] | None = None) -> list[Credential]: ...
    def insert_reminder(self, reminder: Reminder) -> bool: ...
    def reminders(self, credential_id: str) -> list[Reminder]: ...
    def delete_reminders(self, credential_id: str) -> None: ...

    # the agent's CA and its CRL
    def ca(self) -> dict[str, Any]: ...
    def insert_ca(self, role: str, key_uri: str, key_type: str, certificate: bytes, at: dt.datetime) -> None: ...
    def next_crl_number(self) -> int: ...
    def revoked_agent_certificates(self) -> list[tuple[int, dt.datetime]]: ...
    def set_issued_by_agent(self, credential_id: str, issued_by_agent: bool) -> None: ...
    def undecided_crl_membership(self) -> list[tuple[str, bytes]]: ...

    # notifications
    def save_notification(self, notification: Notification) -> None: ...
    def get_notification(self, notification_id: str) -> Notification | None: ...
    def list_notifications(self, abns: list[str]) -> list[Notification]: ...

    # SBR: aliases (`ABRD:<ABN>_<name>`) and local flags (agent.domain.aliases)
    def alias_target(self, alias: str) -> str | None: ...
    def aliases_of(self, credential_ids: list[str]) -> dict[str, str]: ...
    def point_alias(self, alias: str, credential_id: str, expected: str | None, at: dt.datetime) -> bool: ...
    def is_local(self, credential_id: str) -> bool: ...
    def set_local(self, credential_id: str, local: bool, at: dt.datetime, by: str) -> None: ...

    # operations
    def snapshot(self) -> BinaryIO:
        """A consistent copy of every record, taken while others keep writing, as an open
        file (a complete database file, already removed from the disk; closing it frees it).

        Raises:
            Unavailable: the copy could not be made.
        """


class AuditLog(Protocol):
    """The audit log outside a unit of work: durable group-committed appends and reads."""

    def append_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """Append entries in order in one commit shared with concurrent callers; return once
        durable. An entry may carry ``unless_revoked=<credential id>`` and ``if_revoked=<function
        returning another entry>``: that alternative is built and written instead if that
        credential is revoked when the commit happens.

        Raises:
            Exception: nothing was written (the caller must withhold what the entries vouch for).
        """

    def append_signed(self, make: Callable[[int, str], dict[str, Any]]) -> AuditEntry:
        """Append `make(seq, hash)`, built from the head it directly follows, in one transaction."""

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed entry."""

    def newest(self, action: str) -> AuditEntry | None:
        """The newest entry with this action."""

    def page(self, *, abn: str | None, after: int, limit: int) -> list[AuditEntry]:
        """Entries after `after`, oldest first."""

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in sequence order."""

    def close(self) -> None:
        """Write what is queued, then stop."""


class KeyCustody(Protocol):
    """The key backends in use: where a new key goes, which backend holds a key URI."""

    def for_new_key(self, backend: Backend | None, store_name: str | None) -> tuple[Backend, KeyStore]:
        """The backend a new key goes to (the configured default when None)."""

    def for_uri(self, uri: str) -> KeyStore:
        """The backend holding the key at `uri`."""

    def delete_key(self, uri: str) -> int:
        """Destroy the key (every object) at `uri`; how many objects went."""


class Observer(Protocol):
    """What the agent reports as it works, for metrics; the composition root passes one in.

    The domain and the storage call these; an adapter outside them (agent/server/metrics.py)
    turns the calls into Prometheus metrics. Every method must be cheap and must not raise:
    it runs on the sign path. `NO_OBSERVER` does nothing.
    """

    def signs_finished(self, key_type: str, algorithm: str, outcome: str, count: int = 1) -> None:
        """`count` sign requests (or batch items) ended with `outcome`.

        Args:
            key_type: the credential's key type (``rsa-2048``, …), ``unknown`` when the request
                was refused before its credential was known.
            algorithm: the signature algorithm's name, ``unknown`` likewise.
            outcome: ``allowed`` (signature returned), ``refused`` (any error), or ``withheld``
                (signed, but the credential was revoked before its audit entry committed).
        """

    def sign_duration(self, key_type: str, seconds: float) -> None:
        """A key's backend took `seconds` to make one signature (or to fail to)."""

    def audit_committed(self, entries: int, seconds: float) -> None:
        """One group commit of the audit appender wrote `entries` entries in `seconds`."""

    def audit_queue_depth(self, waiting: int) -> None:
        """Callers now waiting for the audit appender to make their entries durable."""

    def credentials_expiring(self, within_days: int, count: int) -> None:
        """`count` live credentials' certificates expire within `within_days` days (30 or 90)."""


class _NoObserver:
    """An `Observer` that does nothing (the default: metrics are opt-in)."""

    def signs_finished(self, key_type: str, algorithm: str, outcome: str, count: int = 1) -> None:
        """See `Observer.signs_finished`."""

    def sign_duration(self, key_type: str, seconds: float) -> None:
        """See `Observer.sign_duration`."""

    def audit_committed(self, entries: int, seconds: float) -> None:
        """See `Observer.audit_committed`."""

    def audit_queue_depth(self, waiting: int) -> None:
        """See `Observer.audit_queue_depth`."""

    def credentials_expiring(self, within_days: int, count: int) -> None:
        """See `Observer.credentials_expiring`."""


NO_OBSERVER: Observer = _NoObserver()
