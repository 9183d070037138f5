"""The agent's records in SQLite (WAL, durable commits): connections, transactions, queries.

Mutating methods must run inside `transaction()`, so that a change and its audit entry
commit together or not at all. Reads may run anywhere. The schema is migrated on open
(agent/storage/migrate.py); the audit queries live in sqlite_audit.py, the row codecs in rows.py.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import Aborted, Unavailable
from mcagent.agent.domain.model import Business, Credential, Principal, Reminder, RoleGrant
from mcagent.agent.domain.policy import Role
from mcagent.agent.storage import rows
from mcagent.agent.storage.backup import snapshot_database
from mcagent.agent.storage.migrate import migrate
from mcagent.agent.storage.rows import ts
from mcagent.agent.storage.sqlite_audit import AuditQueries
from mcagent.agent.storage.sqlite_notifications import NotificationQueries
from mcagent.agent.storage.sqlite_pki import PkiQueries
from mcagent.agent.storage.sqlite_sbr import SbrQueries

_CREDENTIAL_SELECT = (
    "SELECT c.*, p.name AS holder_name FROM credential c LEFT JOIN principal p ON p.id = c.holder_id"
)
_MIN_FREE_BYTES = 1 << 20  # after a failed write, less free space than this is "full"
_CREDENTIAL_INSERTED = ("id", "abn", "name", "status", "key_type", "backend", "key_uri", "created_at", "created_by",
                        "terms_version", "holder_id", "permissions")


def _set_wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """Switch to WAL. SQLite does not wait (busy timeout) for the lock this needs, so two
    processes creating the same new database at once would fail: retry for a few seconds."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


class Storage(AuditQueries, PkiQueries, NotificationQueries, SbrQueries):
    """The agent's records. One writer connection, serialised by a lock (SQLite has one writer);
    each reading thread has its own connection (WAL readers never wait for the writer)."""

    def __init__(self, path: str) -> None:
        """Open (creating if needed) the database at `path` and migrate it.

        Raises:
            agent.storage.migrate.SchemaTooNew: the database is newer than this mcagent.
        """
        new = not os.path.exists(path)
        self._path = path
        self._conn = self._connect()
        if new:
            os.chmod(path, 0o600)
        self._inode = os.stat(path).st_ino  # to notice the file being removed or replaced
        self._last_write_error: str | None = None  # why the last write failed, until one succeeds
        _set_wal(self._conn)
        self._lock = threading.RLock()
        self._tx_owner: int | None = None
        self._tx_depth = 0  # savepoints open inside the current transaction
        self._tx_changes = False  # whether the current transaction changes state (see transaction())
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._audit_head: tuple[int, str] | None = None  # (seq, hash) of the newest entry, once read
        #: Bumped after every committed transaction that changes state (not audit-only ones):
        #: the service's read caches are valid for one value of it.
        self.state_version = 0
        migrate(path)

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

    def snapshot(self) -> BinaryIO:
        """See `Records.snapshot` (agent/storage/backup.py)."""
        return snapshot_database(self._path)

    @contextmanager
    def transaction(self, *, changes_state: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error).

        A transaction that does not commit leaves nothing behind: neither rows nor the
        in-memory head of the audit chain (it is read again from the database).

        Nesting: a `transaction()` opened on the thread that already holds one is a SAVEPOINT
        inside it. When the inner block raises, what it wrote is rolled back (ROLLBACK TO) and
        the exception goes on; the outer transaction keeps what it wrote before and may catch
        the exception and go on to commit. When the inner block ends normally its changes
        become part of the outer transaction: nothing is durable until the outermost commits.

        Args:
            changes_state: False for transactions that only append audit entries; the others
                invalidate the service's read caches when they commit (a nested one counts
                when the outermost commits).

        Raises:
            Unavailable: the database cannot be written now (disk full, I/O error, locked,
                read-only); nothing of the transaction was kept.
        """
        with self._lock:
            if self._tx_owner == threading.get_ident():
                with self._savepoint(changes_state) as conn:
                    yield conn
                return
            self._tx_owner = threading.get_ident()
            self._tx_changes = changes_state
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
                self._last_write_error = str(exc)
                raise Unavailable(f"the agent's database cannot be written ({exc}); nothing was changed, "
                                  "try again") from exc
            finally:
                self._tx_owner = None
            self._last_write_error = None
            if self._tx_changes:
                self.state_version += 1

    def health_problem(self) -> str | None:
        """What stops the database from serving now, or None; cheap enough to ask every second.

        The file must still be the one opened, a read must work, and once a write has failed
        (audit entries included) an empty write transaction must succeed with free space left
        on the file system; the next real write that succeeds clears that failure for good.
        """
        try:
            st = os.stat(self._path)
        except OSError as exc:
            return f"the database file {self._path} is gone ({exc.strerror})"
        if st.st_ino != self._inode:
            return f"the database file {self._path} was replaced while the agent had it open"
        try:
            self._one("SELECT count(*) FROM sqlite_master")
        except sqlite3.Error as exc:
            return f"the database cannot be read ({exc})"
        failure = self._last_write_error
        if failure is None:
            return None
        free = os.statvfs(self._path)
        if free.f_bavail * free.f_frsize < _MIN_FREE_BYTES:
            return f"the database cannot be written ({failure}): its file system is full"
        try:
            with self.transaction(changes_state=False):
                pass
        except Unavailable:
            return f"the database cannot be written ({self._last_write_error or failure})"
        return None

    @contextmanager
    def _savepoint(self, changes_state: bool) -> Iterator[sqlite3.Connection]:
        self._tx_depth += 1
        name = f"nested_{self._tx_depth}"
        try:
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield self._conn
            except BaseException:
                self._audit_head = None  # the inner block's entries are gone; read the head again
                try:
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                except sqlite3.Error:
                    pass  # SQLite rolled the whole transaction back; the outer commit will say so
                raise
            self._conn.execute(f"RELEASE {name}")
            self._tx_changes = self._tx_changes or changes_state
        finally:
            self._tx_depth -= 1

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
            (business.abn, business.name, ts(business.registered_at)),
        )
        return cursor.rowcount == 1

    def get_business(self, abn: str) -> Business | None:
        """The business with this ABN, or None."""
        row = self._one("SELECT * FROM business WHERE abn = ?", (abn,))
        return None if row is None else rows.business(row)

    def list_businesses(self) -> list[Business]:
        """Every business, by ABN."""
        return [rows.business(r) for r in self._all("SELECT * FROM business ORDER BY abn")]

    # -- principals and roles -------------------------------------------------------------

    def insert_principal(self, principal: Principal, token_hash: str, created_by: str) -> None:
        """Insert a principal with the hash of its bearer token."""
        self._conn.execute(
            "INSERT INTO principal (id, name, uid, certificate_subject, token_hash, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (principal.id, principal.name, principal.uid, principal.certificate_subject, token_hash,
             ts(principal.created_at), created_by),
        )

    def principal_where(self, column: str, value: Any) -> Principal | None:
        """The principal whose `column` (name, uid, certificate_subject, token_hash, id) is `value`."""
        if column not in ("id", "name", "uid", "certificate_subject", "token_hash"):
            raise ValueError(column)
        row = self._one(f"SELECT * FROM principal WHERE {column} = ?", (value,))
        return None if row is None else rows.principal(row)

    def list_principals(self) -> list[Principal]:
        """Every principal, by name."""
        return [rows.principal(r) for r in self._all("SELECT * FROM principal ORDER BY name")]

    def grant_role(self, abn: str, principal_id: str, role: Role, at: dt.datetime, by: str) -> bool:
        """Grant a role; False if it was held already."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO role_grant (abn, principal_id, role, granted_at, granted_by) VALUES (?, ?, ?, ?, ?)",
            (abn, principal_id, role.value, ts(at), by),
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
        found = self._all("SELECT role FROM role_grant WHERE abn = ? AND principal_id = ?", (abn, principal_id))
        return {Role(r["role"]) for r in found}

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
        return [rows.role_grant(r) for r in self._all(query + " ORDER BY g.abn, g.role, p.name", params)]

    # -- credentials --------------------------------------------------------------------

    def insert_credential(self, credential: Credential) -> None:
        """Insert a credential record and the terms acceptance it was created under."""
        values = rows.credential_columns(credential, _CREDENTIAL_INSERTED)
        self._conn.execute(f"INSERT INTO credential ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                           tuple(values.values()))
        self._conn.execute(
            "INSERT INTO terms_acceptance (accepted_by, version, accepted_at, credential_id) VALUES (?, ?, ?, ?)",
            (credential.created_by, credential.terms_version, ts(credential.created_at), credential.id),
        )

    def update_credential(self, credential_id: str, expected_status: CredentialStatus, **fields: Any) -> None:
        """Change fields of a credential that is still in `expected_status`.

        Raises:
            Aborted: the credential is not (or no longer) in that status: a concurrent change
                got there first; the caller's transaction should be rolled back and retried.
        """
        encoded = {name: rows.credential_column(name, value) for name, value in fields.items()}
        assignments = ", ".join(f"{name} = ?" for name in encoded)
        cursor = self._conn.execute(
            f"UPDATE credential SET {assignments} WHERE id = ? AND status = ?",
            (*encoded.values(), credential_id, expected_status.value),
        )
        if cursor.rowcount != 1:
            raise Aborted(f"credential {credential_id} changed while being updated (it is no longer "
                          f"{expected_status.value}); nothing was changed, look at it again and retry")

    def delete_credential(self, credential_id: str) -> None:
        """Remove a credential record (only used to undo a create that failed)."""
        self._conn.execute("DELETE FROM terms_acceptance WHERE credential_id = ?", (credential_id,))
        self._conn.execute("DELETE FROM credential WHERE id = ?", (credential_id,))

    def get_credential(self, credential_id: str) -> Credential | None:
        """The credential with this id, or None."""
        row = self._one(_CREDENTIAL_SELECT + " WHERE c.id = ?", (credential_id,))
        return None if row is None else rows.credential(row)

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
        return [rows.credential(row) for row in self._all(query + " ORDER BY c.created_at, c.id" + suffix, params)]

    def insert_reminder(self, reminder: Reminder) -> bool:
        """Record a reminder once; False if that day's reminder was already recorded."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO reminder (credential_id, day, recorded_at, recipients) VALUES (?, ?, ?, ?)",
            rows.reminder_values(reminder),
        )
        return cursor.rowcount == 1

    def reminders(self, credential_id: str) -> list[Reminder]:
        """Reminders recorded for a credential, by day."""
        return [rows.reminder(r)
                for r in self._all("SELECT * FROM reminder WHERE credential_id = ? ORDER BY day", (credential_id,))]

    def delete_reminders(self, credential_id: str) -> None:
        """Forget reminders (a claimed credential starts afresh if unassigned again)."""
        self._conn.execute("DELETE FROM reminder WHERE credential_id = ?", (credential_id,))

    # -- credentials' revocation ---------------------------------------------------------

    def revoked_among(self, credential_ids: set[str]) -> set[str]:
        """Which of these credentials are revoked (read in the caller's transaction, if any)."""
        if not credential_ids:
            return set()
        ids = sorted(credential_ids)
        found = self._all(f"SELECT id FROM credential WHERE status = 'revoked' AND id IN ({', '.join('?' * len(ids))})",
                          ids)
        return {row["id"] for row in found}
