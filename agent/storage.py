"""Metadata storage in SQLite (WAL, durable commits), schema migrated in order.

Migrations are plain SQL, applied in order and counted in ``PRAGMA user_version``; each
runs in its own transaction. (A migration library comes with the PostgreSQL backend.)
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from agent.domain.model import Backend, Business, Credential, CredentialStatus
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
]


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _credential(row: sqlite3.Row) -> Credential:
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
    )


class Storage:
    """The agent's records. One connection, serialised by a lock (SQLite has one writer)."""

    def __init__(self, path: str) -> None:
        """Open (creating if needed) the database at `path` and migrate it."""
        new = not os.path.exists(path)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if new:
            os.chmod(path, 0o600)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this mcagent ({len(MIGRATIONS)})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as conn:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    # -- businesses ---------------------------------------------------------------------

    def insert_business(self, business: Business) -> bool:
        """Insert a business; False when the ABN is already registered."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO business (abn, name, registered_at) VALUES (?, ?, ?)",
                (business.abn, business.name, _ts(business.registered_at)),
            )
            return cursor.rowcount == 1

    def get_business(self, abn: str) -> Business | None:
        """The business with this ABN, or None."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM business WHERE abn = ?", (abn,)).fetchone()
        if row is None:
            return None
        return Business(row["abn"], row["name"], _dt(row["registered_at"]))

    # -- credentials --------------------------------------------------------------------

    def insert_credential(self, credential: Credential) -> None:
        """Insert a credential record and the terms acceptance it was created under."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO credential (id, abn, name, status, key_type, backend, key_uri,"
                " created_at, created_by, terms_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    credential.id, credential.abn, credential.name, credential.status.value,
                    credential.key_type.value, credential.backend.value, credential.key_uri,
                    _ts(credential.created_at), credential.created_by, credential.terms_version,
                ),
            )
            conn.execute(
                "INSERT INTO terms_acceptance (accepted_by, version, accepted_at, credential_id)"
                " VALUES (?, ?, ?, ?)",
                (credential.created_by, credential.terms_version, _ts(credential.created_at), credential.id),
            )

    def activate_credential(self, credential_id: str, key_uri: str) -> None:
        """Record the key's URI and make a ``creating`` credential ``active``."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE credential SET status = ?, key_uri = ? WHERE id = ? AND status = ?",
                (CredentialStatus.ACTIVE.value, key_uri, credential_id, CredentialStatus.CREATING.value),
            )
            if cursor.rowcount != 1:
                raise RuntimeError(f"credential {credential_id} is not being created")

    def delete_credential(self, credential_id: str) -> None:
        """Remove a credential record (only used to undo a create that failed)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM terms_acceptance WHERE credential_id = ?", (credential_id,))
            conn.execute("DELETE FROM credential WHERE id = ?", (credential_id,))

    def get_credential(self, credential_id: str) -> Credential | None:
        """The credential with this id, or None."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM credential WHERE id = ?", (credential_id,)).fetchone()
        return None if row is None else _credential(row)

    def list_credentials(self, abn: str | None = None, status: CredentialStatus | None = None) -> list[Credential]:
        """Credentials, oldest first, optionally of one business and one status."""
        query, params = "SELECT * FROM credential WHERE 1=1", []
        if abn is not None:
            query += " AND abn = ?"
            params.append(abn)
        if status is not None:
            query += " AND status = ?"
            params.append(status.value)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY created_at, id", params).fetchall()
        return [_credential(row) for row in rows]
