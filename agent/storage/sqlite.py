"""The agent's records in SQLite (WAL, durable commits): the connections of `SqlRecords`.

Mutating methods must run inside `transaction()`, so that a change and its audit entry
commit together or not at all. Reads may run anywhere. The schema is migrated on open
(agent/storage/migrate.py); the queries live in engine.py and its mixins, the row codecs in
rows.py. Several processes may share the file: BEGIN IMMEDIATE makes one writer at a time,
and everything they must agree on is read from the file (engine.py).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any, BinaryIO

from mcagent.agent.domain.errors import Unavailable
from mcagent.agent.storage.backup import snapshot_database
from mcagent.agent.storage.engine import SqlRecords
from mcagent.agent.storage.migrate import migrate

_MIN_FREE_BYTES = 1 << 20  # after a failed write, less free space than this is "full"


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


class Storage(SqlRecords):
    """The agent's records. One writer connection, serialised by a lock (SQLite has one writer);
    each reading thread has its own connection (WAL readers never wait for the writer)."""

    engine = "sqlite"
    _unavailable_errors = (sqlite3.OperationalError,)

    def __init__(self, path: str) -> None:
        """Open (creating if needed) the database at `path` and migrate it.

        Raises:
            agent.storage.migrate.SchemaTooNew: the database is newer than this mcagent.
        """
        super().__init__()
        new = not os.path.exists(path)
        self._path = path
        self._conn = self._connect()
        if new:
            os.chmod(path, 0o600)
        self._inode = os.stat(path).st_ino  # to notice the file being removed or replaced
        _set_wal(self._conn)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        migrate(path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _begin(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")  # the write lock now: one writer at a time, every process
        return self._conn

    def _end(self, conn: sqlite3.Connection, commit: bool) -> None:
        try:
            if commit:
                conn.execute("COMMIT")
        finally:
            if conn.in_transaction:  # not committed (a failed COMMIT leaves the transaction open)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolled back already (or will, when the connection is next used)

    def _read(self, query: str, params: tuple | list) -> list[Any]:
        return self._reader().execute(query, params).fetchall()

    def _reader(self) -> sqlite3.Connection:
        """This thread's own read connection (WAL readers never wait for the writer)."""
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

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._conn.close()

