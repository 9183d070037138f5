"""Metadata storage in SQLite (WAL, durable commits), schema migrated in order.

Migrations are plain SQL, applied in order and counted in ``PRAGMA user_version``; each
runs in its own transaction. (A migration library comes with the PostgreSQL backend.)

Mutating methods must run inside `transaction()`, so that a change and its audit entry
commit together or not at all. Reads may run anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agent.domain.audit import GENESIS, AuditEntry, bounded, entry_hash
from agent.domain.credential import CredentialStatus
from agent.domain.errors import Unavailable
from agent.domain.model import Backend, Business, Credential, Principal, Reminder, RoleGrant
from agent.domain.notification import Notification, NotificationStatus
from agent.domain.policy import Role
from hsm.base import KeyType

MIGRATIONS = [
    """
    CREATE TABLE business (
        abn TEXT PRIMARY KEY CHECK (length(abn) = 11),
        name TEXT NOT NULL,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE credential (
        id TEXT PRIMARY KEY,
        abn TEXT NOT NULL REFERENCES business(abn),
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        key_type TEXT NOT NULL,
        backend TEXT NOT NULL,
        key_uri TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        terms_version TEXT NOT NULL
    );
    CREATE INDEX credential_by_abn ON credential(abn, created_at);
    CREATE TABLE terms_acceptance (
        id INTEGER PRIMARY KEY,
        accepted_by TEXT NOT NULL,
        version TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        credential_id TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE principal (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        uid INTEGER UNIQUE,
        certificate_subject TEXT UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE role_grant (
        abn TEXT NOT NULL REFERENCES business(abn),
        principal_id TEXT NOT NULL REFERENCES principal(id),
        role TEXT NOT NULL,
        granted_at TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        PRIMARY KEY (abn, principal_id, role)
    );
    CREATE INDEX role_by_principal ON role_grant(principal_id);
    ALTER TABLE credential ADD COLUMN holder_id TEXT REFERENCES principal(id);
    ALTER TABLE credential ADD COLUMN unassigned_at TEXT;
    ALTER TABLE credential ADD COLUMN revoked_at TEXT;
    ALTER TABLE credential ADD COLUMN revoked_by TEXT;
    ALTER TABLE credential ADD COLUMN key_destroyed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE credential ADD COLUMN first_used_at TEXT;
    ALTER TABLE credential ADD COLUMN permissions TEXT;
    CREATE INDEX credential_by_holder ON credential(holder_id);
    CREATE TABLE reminder (
        credential_id TEXT NOT NULL REFERENCES credential(id),
        day INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        recipients TEXT NOT NULL,
        PRIMARY KEY (credential_id, day)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        abn TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_by_abn ON audit(abn, seq);
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    """
    CREATE TABLE notification (
        id TEXT PRIMARY KEY,
        abn TEXT NOT NULL REFERENCES business(abn),
        dsp_abn TEXT NOT NULL REFERENCES business(abn),
        software_ids TEXT NOT NULL,
        start_date TEXT NOT NULL,
        end_date TEXT,
        agencies TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        requested_by TEXT,
        declaration_by TEXT,
        declaration_at TEXT,
        removed_at TEXT,
        removed_by TEXT
    );
    CREATE INDEX notification_by_abn ON notification(abn, created_at);
    CREATE INDEX notification_by_dsp ON notification(dsp_abn, created_at);
    """,
    """
    CREATE INDEX credential_by_status ON credential(status);
    CREATE INDEX credential_by_time ON credential(created_at, id);
    CREATE TABLE ca (
        role TEXT PRIMARY KEY CHECK (role IN ('root', 'issuing')),
        key_uri TEXT NOT NULL,
        key_type TEXT NOT NULL,
        certificate BLOB NOT NULL,
        created_at TEXT NOT NULL,
        crl_number INTEGER NOT NULL DEFAULT 0
    );
    ALTER TABLE credential ADD COLUMN certificate_chain TEXT;
    ALTER TABLE credential ADD COLUMN certificate_serial TEXT;
    ALTER TABLE credential ADD COLUMN issued_by_agent INTEGER NOT NULL DEFAULT 0;
    """,
    # Installed and imported certificates were recorded as issued elsewhere whatever their
    # issuer; 2 = not decided yet: start-up decides from the certificate (decide_crl_membership).
    """
    UPDATE credential SET issued_by_agent = 2 WHERE issued_by_agent = 0 AND certificate_serial IS NOT NULL;
    """,
]


def _ts(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and (" BEGIN" not in text or text.endswith("END;")):
            statements.append(text)
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements


_CREDENTIAL_SELECT = (
    "SELECT c.*, p.name AS holder_name FROM credential c LEFT JOIN principal p ON p.id = c.holder_id"
)


def _credential(row: sqlite3.Row) -> Credential:
    permissions = row["permissions"]
    return Credential(
        id=row["id"],
        abn=row["abn"],
        name=row["name"],
        status=CredentialStatus(row["status"]),
        key_type=KeyType(row["key_type"]),
        backend=Backend(row["backend"]),
        key_uri=row["key_uri"],
        created_at=_dt(row["created_at"]),
        created_by=row["created_by"],
        terms_version=row["terms_version"],
        holder_id=row["holder_id"],
        holder_name=row["holder_name"],
        unassigned_at=_dt(row["unassigned_at"]),
        revoked_at=_dt(row["revoked_at"]),
        revoked_by=row["revoked_by"],
        key_destroyed=bool(row["key_destroyed"]),
        first_used_at=_dt(row["first_used_at"]),
        permissions=None if permissions is None else tuple(json.loads(permissions)),
        certificate_chain=tuple(base64.b64decode(c) for c in json.loads(row["certificate_chain"] or "[]")),
        issued_by_agent=bool(row["issued_by_agent"]),
    )


def _principal(row: sqlite3.Row) -> Principal:
    return Principal(row["id"], row["name"], row["uid"], row["certificate_subject"], _dt(row["created_at"]))


def _audit(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"], at=_dt(row["at"]), actor=row["actor"], action=row["action"], outcome=row["outcome"],
        abn=row["abn"], target=row["target"], detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"], hash=row["hash"],
    )


class Storage:
    """The agent's records. One connection, serialised by a lock (SQLite has one writer)."""

    def __init__(self, path: str) -> None:
        """Open (creating if needed) the database at `path` and migrate it."""
        new = not os.path.exists(path)
        self._path = path
        self._conn = self._connect()
        if new:
            os.chmod(path, 0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.RLock()
        self._tx_owner: int | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._audit_head: tuple[int, str] | None = None  # (seq, hash) of the newest entry, once read
        #: Bumped after every committed transaction that changes state (not audit-only ones):
        #: the service's read caches are valid for one value of it.
        self.state_version = 0
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        """The connection to read with: the writer's inside its own transaction (to see its
        uncommitted changes), else this thread's own read connection (WAL readers never wait)."""
        if self._tx_owner == threading.get_ident():
            return self._conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            with self._lock:
                self._readers.append(conn)
        return conn

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this mcagent ({len(MIGRATIONS)})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as conn:
                for statement in _split_statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self, *, changes_state: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error).

        A transaction that does not commit leaves nothing behind: neither rows nor the
        in-memory head of the audit chain (it is read again from the database).

        Args:
            changes_state: False for transactions that only append audit entries; the others
                invalidate the service's read caches when they commit.

        Raises:
            Unavailable: the database cannot be written now (disk full, I/O error, locked,
                read-only); nothing of the transaction was kept.
        """
        with self._lock:
            outer = self._tx_owner is None
            self._tx_owner = threading.get_ident()
            try:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._audit_head = None  # entries appended in this transaction are gone
                    if self._conn.in_transaction:
                        try:
                            self._conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass  # SQLite rolled back already (or will, when the connection is next used)
                    raise
            except sqlite3.OperationalError as exc:
                raise Unavailable(f"the agent's database cannot be written ({exc}); nothing was changed, "
                                  "try again") from exc
            finally:
                if outer:
                    self._tx_owner = None
            if changes_state:
                self.state_version += 1

    def _one(self, query: str, params: tuple = ()) -> sqlite3.Row | None:
        return self._reader().execute(query, params).fetchone()

    def _all(self, query: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        return self._reader().execute(query, params).fetchall()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._conn.close()

    # -- businesses ---------------------------------------------------------------------

    def insert_business(self, business: Business) -> bool:
        """Insert a business; False when the ABN is already registered."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO business (abn, name, registered_at) VALUES (?, ?, ?)",
            (business.abn, business.name, _ts(business.registered_at)),
        )
        return cursor.rowcount == 1

    def get_business(self, abn: str) -> Business | None:
        """The business with this ABN, or None."""
        row = self._one("SELECT * FROM business WHERE abn = ?", (abn,))
        return None if row is None else Business(row["abn"], row["name"], _dt(row["registered_at"]))

    def list_businesses(self) -> list[Business]:
        """Every business, by ABN."""
        return [Business(r["abn"], r["name"], _dt(r["registered_at"]))
                for r in self._all("SELECT * FROM business ORDER BY abn")]

    # -- principals and roles -------------------------------------------------------------

    def insert_principal(self, principal: Principal, token_hash: str, created_by: str) -> None:
        """Insert a principal with the hash of its bearer token."""
        self._conn.execute(
            "INSERT INTO principal (id, name, uid, certificate_subject, token_hash, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (principal.id, principal.name, principal.uid, principal.certificate_subject, token_hash,
             _ts(principal.created_at), created_by),
        )

    def principal_where(self, column: str, value: Any) -> Principal | None:
        """The principal whose `column` (name, uid, certificate_subject, token_hash, id) is `value`."""
        if column not in ("id", "name", "uid", "certificate_subject", "token_hash"):
            raise ValueError(column)
        row = self._one(f"SELECT * FROM principal WHERE {column} = ?", (value,))
        return None if row is None else _principal(row)

    def list_principals(self) -> list[Principal]:
        """Every principal, by name."""
        return [_principal(r) for r in self._all("SELECT * FROM principal ORDER BY name")]

    def grant_role(self, abn: str, principal_id: str, role: Role, at: dt.datetime, by: str) -> bool:
        """Grant a role; False if it was held already."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO role_grant (abn, principal_id, role, granted_at, granted_by) VALUES (?, ?, ?, ?, ?)",
            (abn, principal_id, role.value, _ts(at), by),
        )
        return cursor.rowcount == 1

    def remove_role(self, abn: str, principal_id: str, role: Role) -> bool:
        """Remove a role; False if it was not held."""
        cursor = self._conn.execute(
            "DELETE FROM role_grant WHERE abn = ? AND principal_id = ? AND role = ?", (abn, principal_id, role.value)
        )
        return cursor.rowcount == 1

    def roles_of(self, abn: str, principal_id: str) -> set[Role]:
        """The roles `principal_id` holds in `abn`."""
        rows = self._all("SELECT role FROM role_grant WHERE abn = ? AND principal_id = ?", (abn, principal_id))
        return {Role(r["role"]) for r in rows}

    def role_grants(self, abn: str | None = None, principal_id: str | None = None) -> list[RoleGrant]:
        """Role grants of a business and/or a principal."""
        query = ("SELECT g.*, p.name AS principal_name FROM role_grant g JOIN principal p ON p.id = g.principal_id"
                 " WHERE 1=1")
        params: list[Any] = []
        if abn is not None:
            query += " AND g.abn = ?"
            params.append(abn)
        if principal_id is not None:
            query += " AND g.principal_id = ?"
            params.append(principal_id)
        rows = self._all(query + " ORDER BY g.abn, g.role, p.name", params)
        return [RoleGrant(r["abn"], r["principal_id"], r["principal_name"], Role(r["role"]), _dt(r["granted_at"]),
                          r["granted_by"]) for r in rows]

    # -- credentials --------------------------------------------------------------------

    def insert_credential(self, credential: Credential) -> None:
        """Insert a credential record and the terms acceptance it was created under."""
        self._conn.execute(
            "INSERT INTO credential (id, abn, name, status, key_type, backend, key_uri, created_at, created_by,"
            " terms_version, holder_id, permissions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                credential.id, credential.abn, credential.name, credential.status.value,
                credential.key_type.value, credential.backend.value, credential.key_uri,
                _ts(credential.created_at), credential.created_by, credential.terms_version,
                credential.holder_id,
                None if credential.permissions is None else json.dumps(list(credential.permissions)),
            ),
        )
        self._conn.execute(
            "INSERT INTO terms_acceptance (accepted_by, version, accepted_at, credential_id) VALUES (?, ?, ?, ?)",
            (credential.created_by, credential.terms_version, _ts(credential.created_at), credential.id),
        )

    def update_credential(self, credential_id: str, expected_status: CredentialStatus, **fields: Any) -> None:
        """Change fields of a credential that is still in `expected_status`.

        Raises:
            RuntimeError: the credential is not (or no longer) in that status: a concurrent change.
        """
        encoded = {}
        for name, value in fields.items():
            if isinstance(value, dt.datetime):
                value = _ts(value)
            elif isinstance(value, CredentialStatus):
                value = value.value
            elif name == "permissions" and value is not None:
                value = json.dumps(list(value))
            elif name == "certificate_chain":
                value = json.dumps([base64.b64encode(c).decode() for c in value])
            encoded[name] = value
        assignments = ", ".join(f"{name} = ?" for name in encoded)
        cursor = self._conn.execute(
            f"UPDATE credential SET {assignments} WHERE id = ? AND status = ?",
            (*encoded.values(), credential_id, expected_status.value),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"credential {credential_id} changed while being updated")

    def delete_credential(self, credential_id: str) -> None:
        """Remove a credential record (only used to undo a create that failed)."""
        self._conn.execute("DELETE FROM terms_acceptance WHERE credential_id = ?", (credential_id,))
        self._conn.execute("DELETE FROM credential WHERE id = ?", (credential_id,))

    def get_credential(self, credential_id: str) -> Credential | None:
        """The credential with this id, or None."""
        row = self._one(_CREDENTIAL_SELECT + " WHERE c.id = ?", (credential_id,))
        return None if row is None else _credential(row)

    def list_credentials(
        self,
        abn: str | None = None,
        status: CredentialStatus | None = None,
        holder_id: str | None = None,
        abns: list[str] | None = None,
        name: str | None = None,
        key_destroyed: bool | None = None,
        page: tuple[tuple[str, str] | None, int] | None = None,
    ) -> list[Credential]:
        """Credentials, oldest first, filtered by whichever arguments are given.

        Args:
            page: (after, limit): only credentials after (created_at, id) `after`, at most `limit`.
        """
        query, params = _CREDENTIAL_SELECT + " WHERE 1=1", []
        for column, value in (("c.abn", abn), ("c.status", status.value if status else None),
                              ("c.holder_id", holder_id), ("c.name", name),
                              ("c.key_destroyed", None if key_destroyed is None else int(key_destroyed))):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        if abns is not None:
            query += f" AND c.abn IN ({', '.join('?' * len(abns))})"
            params.extend(abns)
        query += " AND c.status != 'creating'" if page is not None else ""
        suffix = ""
        if page is not None:
            after, limit = page
            if after is not None:
                query += " AND (c.created_at, c.id) > (?, ?)"
                params.extend(after)
            suffix = f" LIMIT {int(limit)}"
        rows = self._all(query + " ORDER BY c.created_at, c.id" + suffix, params)
        return [_credential(row) for row in rows]

    def insert_reminder(self, reminder: Reminder) -> bool:
        """Record a reminder once; False if that day's reminder was already recorded."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO reminder (credential_id, day, recorded_at, recipients) VALUES (?, ?, ?, ?)",
            (reminder.credential_id, reminder.day, _ts(reminder.recorded_at), json.dumps(list(reminder.recipients))),
        )
        return cursor.rowcount == 1

    def reminders(self, credential_id: str) -> list[Reminder]:
        """Reminders recorded for a credential, by day."""
        rows = self._all("SELECT * FROM reminder WHERE credential_id = ? ORDER BY day", (credential_id,))
        return [Reminder(r["credential_id"], r["day"], _dt(r["recorded_at"]), tuple(json.loads(r["recipients"])))
                for r in rows]

    def delete_reminders(self, credential_id: str) -> None:
        """Forget reminders (a claimed credential starts afresh if unassigned again)."""
        self._conn.execute("DELETE FROM reminder WHERE credential_id = ?", (credential_id,))

    # -- the agent's CA -------------------------------------------------------------------

    def ca(self) -> dict[str, sqlite3.Row]:
        """The CA rows by role ('root', 'issuing'); empty before the CA exists."""
        return {row["role"]: row for row in self._all("SELECT * FROM ca")}

    def insert_ca(self, role: str, key_uri: str, key_type: str, certificate: bytes, at: dt.datetime) -> None:
        """Record a CA key and certificate (inside a transaction)."""
        self._conn.execute("INSERT INTO ca (role, key_uri, key_type, certificate, created_at) VALUES (?, ?, ?, ?, ?)",
                           (role, key_uri, key_type, certificate, _ts(at)))

    def next_crl_number(self) -> int:
        """Increment and return the issuing CA's CRL number (inside a transaction)."""
        (number,) = self._conn.execute(
            "UPDATE ca SET crl_number = crl_number + 1 WHERE role = 'issuing' RETURNING crl_number").fetchone()
        return number

    def revoked_among(self, credential_ids: set[str]) -> set[str]:
        """Which of these credentials are revoked (read in the caller's transaction, if any)."""
        if not credential_ids:
            return set()
        ids = sorted(credential_ids)
        rows = self._all(f"SELECT id FROM credential WHERE status = 'revoked' AND id IN ({', '.join('?' * len(ids))})",
                         ids)
        return {row["id"] for row in rows}

    def revoked_agent_certificates(self) -> list[tuple[int, dt.datetime]]:
        """(serial, revocation time) of revoked credentials whose certificate the agent issued.

        A certificate held by two credentials (created, then imported again) is listed once,
        revoked when the first of them was.
        """
        rows = self._all("SELECT certificate_serial, MIN(revoked_at) AS revoked_at FROM credential"
                         " WHERE status = 'revoked' AND issued_by_agent = 1 AND certificate_serial IS NOT NULL"
                         " GROUP BY certificate_serial ORDER BY revoked_at")
        return [(int(r["certificate_serial"]), _dt(r["revoked_at"])) for r in rows]

    def undecided_crl_membership(self) -> list[tuple[str, bytes]]:
        """(credential id, leaf DER) of credentials whose CRL membership is not decided yet."""
        rows = self._all("SELECT id, certificate_chain FROM credential WHERE issued_by_agent = 2")
        chains = [(r["id"], json.loads(r["certificate_chain"] or "[]")) for r in rows]
        return [(credential_id, base64.b64decode(chain[0])) for credential_id, chain in chains if chain]

    def set_issued_by_agent(self, credential_id: str, issued_by_agent: bool) -> None:
        """Record whether the agent's CA issued the credential's certificate (inside a transaction)."""
        self._conn.execute("UPDATE credential SET issued_by_agent = ? WHERE id = ?",
                           (int(issued_by_agent), credential_id))

    # -- notifications --------------------------------------------------------------------

    _NOTIFICATION_FIELDS = ("id", "abn", "dsp_abn", "software_ids", "start_date", "end_date", "agencies", "status",
                            "created_at", "created_by", "requested_by", "declaration_by", "declaration_at",
                            "removed_at", "removed_by")

    @staticmethod
    def _notification_values(n: Notification) -> tuple:
        return (n.id, n.abn, n.dsp_abn, json.dumps(list(n.software_ids)), n.start_date.isoformat(),
                n.end_date.isoformat() if n.end_date else None, json.dumps(list(n.agencies)), n.status.value,
                _ts(n.created_at), n.created_by, n.requested_by, n.declaration_by, _ts(n.declaration_at),
                _ts(n.removed_at), n.removed_by)

    def save_notification(self, notification: Notification) -> None:
        """Insert or replace a notification (inside a transaction)."""
        columns = ", ".join(self._NOTIFICATION_FIELDS)
        marks = ", ".join("?" * len(self._NOTIFICATION_FIELDS))
        self._conn.execute(f"INSERT OR REPLACE INTO notification ({columns}) VALUES ({marks})",
                           self._notification_values(notification))

    @staticmethod
    def _notification(row: sqlite3.Row) -> Notification:
        return Notification(
            id=row["id"], abn=row["abn"], dsp_abn=row["dsp_abn"], software_ids=tuple(json.loads(row["software_ids"])),
            start_date=dt.date.fromisoformat(row["start_date"]),
            end_date=dt.date.fromisoformat(row["end_date"]) if row["end_date"] else None,
            agencies=tuple(json.loads(row["agencies"])), status=NotificationStatus(row["status"]),
            created_at=_dt(row["created_at"]), created_by=row["created_by"], requested_by=row["requested_by"],
            declaration_by=row["declaration_by"], declaration_at=_dt(row["declaration_at"]),
            removed_at=_dt(row["removed_at"]), removed_by=row["removed_by"],
        )

    def get_notification(self, notification_id: str) -> Notification | None:
        """The notification with this id, or None."""
        row = self._one("SELECT * FROM notification WHERE id = ?", (notification_id,))
        return None if row is None else self._notification(row)

    def list_notifications(self, abns: list[str]) -> list[Notification]:
        """Notifications whose business or provider is one of `abns`, oldest first."""
        marks = ", ".join("?" * len(abns))
        rows = self._all(f"SELECT * FROM notification WHERE abn IN ({marks}) OR dsp_abn IN ({marks})"
                         " ORDER BY created_at, id", [*abns, *abns])
        return [self._notification(r) for r in rows]

    # -- audit --------------------------------------------------------------------------

    def append_audit(self, *, at: dt.datetime, actor: str, action: str, outcome: str, abn: str = "",
                     target: str = "", detail: dict[str, Any] | None = None) -> AuditEntry:
        """Append an entry chained to the newest one (inside the caller's transaction)."""
        return self.append_audit_many([dict(at=at, actor=actor, action=action, outcome=outcome, abn=abn,
                                            target=target, detail=detail)])[0]

    def append_audit_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """Append entries in order, each chained to the one before (inside the caller's transaction)."""
        if self._audit_head is None:
            last = self._conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            self._audit_head = (last["seq"], last["hash"]) if last else (0, GENESIS)
        seq, prev_hash = self._audit_head
        written = []
        for fields in entries:
            seq += 1
            entry = AuditEntry(seq=seq, prev_hash=prev_hash, **bounded(fields))
            entry = dataclasses.replace(entry, hash=entry_hash(entry))
            written.append(entry)
            prev_hash = entry.hash
        self._conn.executemany(
            "INSERT INTO audit (seq, at, actor, action, outcome, abn, target, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.seq, _ts(e.at), e.actor, e.action, e.outcome, e.abn, e.target, json.dumps(e.detail, sort_keys=True),
              e.prev_hash, e.hash) for e in written],
        )
        self._audit_head = (seq, prev_hash)
        return written

    def audit_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed entry; (0, GENESIS) when the log is empty."""
        row = self._one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (row["seq"], row["hash"]) if row else (0, GENESIS)

    def newest_audit_entry(self, action: str) -> AuditEntry | None:
        """The newest entry with this action, or None."""
        row = self._one("SELECT * FROM audit WHERE action = ? ORDER BY seq DESC LIMIT 1", (action,))
        return None if row is None else _audit(row)

    def append_signed(self, make: Callable[[int, str], dict[str, Any]]) -> AuditEntry:
        """Append the entry `make(seq, hash)` builds from the head it follows, in one transaction,
        so that nothing can come between the head it signs and the entry itself."""
        with self.transaction(changes_state=False):
            seq, head = self.audit_head()
            return self.append_audit_many([make(seq, head)])[0]

    def audit_page(self, *, abn: str | None, after: int, limit: int) -> list[AuditEntry]:
        """Entries after sequence number `after`, oldest first, at most `limit`."""
        if abn is None:
            rows = self._all("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        else:
            rows = self._all("SELECT * FROM audit WHERE abn = ? AND seq > ? ORDER BY seq LIMIT ?", (abn, after, limit))
        return [_audit(r) for r in rows]

    def audit_entries(self) -> Iterator[AuditEntry]:
        """Every entry in sequence order, read in batches."""
        after = 0
        while True:
            batch = self.audit_page(abn=None, after=after, limit=5000)
            yield from batch
            if len(batch) < 5000:
                return
            after = batch[-1].seq


def _choose(fields: dict[str, Any], revoked: set[str]) -> dict[str, Any]:
    """An entry marked ``unless_revoked=ID`` with its ``if_revoked`` alternative: the one that applies."""
    if "unless_revoked" not in fields:
        return fields
    if fields["unless_revoked"] in revoked:
        return fields["if_revoked"]
    return {k: v for k, v in fields.items() if k not in ("unless_revoked", "if_revoked")}


class AuditAppender:
    """Appends audit-only entries (signs, refusals) in batches: every entry queued while the
    previous batch was being written goes into the next transaction, so concurrent signs share
    one commit. `append` returns once its entry is durable, and raises if it could not be written.
    """

    def __init__(self, storage: Storage, max_batch: int = 1000) -> None:
        self._storage = storage
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_PendingEntry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-appender", daemon=True)
        self._thread.start()

    def append(self, **fields: Any) -> AuditEntry:
        """Append one entry (the keyword arguments of `Storage.append_audit`); waits for the commit."""
        return self.append_many([fields])[0]

    def append_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """Append several entries, in order, in the same commit; waits for it.

        An entry may carry ``unless_revoked=<credential id>`` and ``if_revoked=<other entry>``:
        the other entry is written instead when that credential is revoked at commit time.
        """
        pending = _PendingEntry(entries)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.entries

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                with self._storage.transaction(changes_state=False):
                    # Read in the same transaction as the append: a revoke commits either before
                    # (the entry is swapped) or after (the entry precedes the revoke's).
                    revoked = self._storage.revoked_among(
                        {f["unless_revoked"] for p in batch for f in p.fields if "unless_revoked" in f})
                    for pending in batch:
                        pending.entries = self._storage.append_audit_many(
                            [_choose(fields, revoked) for fields in pending.fields])
            except Exception as exc:  # every waiter learns its entries were not written
                for pending in batch:
                    pending.entries, pending.error = [], exc
            for pending in batch:
                pending.done.set()

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()


class _PendingEntry:
    """Entries one caller waits for, written together."""

    __slots__ = ("fields", "done", "entries", "error")

    def __init__(self, fields: list[dict[str, Any]]) -> None:
        self.fields = fields
        self.done = threading.Event()
        self.entries: list[AuditEntry] = []
        self.error: Exception | None = None
