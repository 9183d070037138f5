"""What the two storage engines share: the unit of work, the shared state version, the SQL.

`SqlRecords` implements the `Records` port once, over an engine's connections: the SQLite
adapter (sqlite.py) and the PostgreSQL one (postgres.py) only open connections, begin a
transaction their way and translate placeholders. Queries are written once, in the dialect
both engines accept (``?`` placeholders, ``ON CONFLICT``, ``RETURNING``); the query mixins
(record_queries.py, audit_queries.py, pki_queries.py, notification_queries.py,
sbr_queries.py) call only `_execute`, `_executemany`, `_one` and `_all`.

Several processes may share one database: every value that must agree across them lives in
it. The audit chain's head is read inside the appending transaction, after `lock_audit_head`
(SQLite: BEGIN IMMEDIATE already serialises writers; PostgreSQL: an advisory transaction
lock); the state version the read caches key on is the row of ``state_version``, bumped by
every committed transaction that changes state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcagent.agent.domain.errors import Unavailable
from mcagent.agent.storage.audit_queries import AuditQueries
from mcagent.agent.storage.notification_queries import NotificationQueries
from mcagent.agent.storage.pki_queries import PkiQueries
from mcagent.agent.storage.record_queries import RecordQueries
from mcagent.agent.storage.sbr_queries import SbrQueries


class SqlRecords(RecordQueries, AuditQueries, PkiQueries, NotificationQueries, SbrQueries):
    """The `Records` port over a SQL engine. One transaction at a time per process (a lock);
    reads outside it use other connections and never wait for it."""

    #: "sqlite" or "postgresql".
    engine: str
    #: What the engine raises when the database cannot be reached or written now (-> Unavailable).
    _unavailable_errors: tuple[type[BaseException], ...]

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tx_owner: int | None = None
        self._tx_conn: Any = None  # the connection of the open transaction
        self._tx_depth = 0  # savepoints open inside the current transaction
        self._tx_changes = False  # whether the current transaction changes state (see transaction())
        self._tx_head: tuple[int, str] | None = None  # the audit head as this transaction left it
        self._last_write_error: str | None = None  # why the last write failed, until one succeeds
        self.commits_here = 0  # state-changing commits by this process (see Records.commits_here)

    # -- what an engine provides --------------------------------------------------------------

    def _begin(self) -> Any:
        """Open a write transaction on a connection and return the connection."""
        raise NotImplementedError

    def _end(self, conn: Any, commit: bool) -> None:
        """Commit (or roll back) the transaction on `conn` and release the connection."""
        raise NotImplementedError

    def _read(self, query: str, params: tuple | list) -> list[Any]:
        """Run a read outside any transaction of this thread; every row."""
        raise NotImplementedError

    def _sql(self, query: str) -> str:
        """The query in the engine's placeholder style (written with ``?``)."""
        return query

    def lock(self, name: str) -> None:
        """Serialise with every process on the database until the current transaction ends:
        start-up steps that create something take one and check again inside it. SQLite's
        write transaction already excludes every other writer."""

    def lock_audit_head(self) -> None:
        """Hold the audit chain's head until the current transaction ends (see the module doc)."""
        self.lock("audit-head")

    # -- the unit of work ---------------------------------------------------------------------

    @property
    def state_version(self) -> int:
        """The committed state version (one row read: every process sees every change)."""
        row = self._one("SELECT version FROM state_version WHERE id = 1")
        return row["version"] if row else 0

    @contextmanager
    def transaction(self, *, changes_state: bool = True) -> Iterator[Any]:
        """A write transaction: commits on leaving, rolls back on an exception.

        Nesting: a `transaction()` opened on the thread that already holds one is a SAVEPOINT
        inside it. When the inner block raises, what it wrote is rolled back (ROLLBACK TO) and
        the exception goes on; the outer transaction keeps what it wrote before and may catch
        the exception and go on to commit. When the inner block ends normally its changes
        become part of the outer transaction: nothing is durable until the outermost commits.

        Args:
            changes_state: False for transactions that only append audit entries; the others
                bump the shared state version as they commit (a nested one counts when the
                outermost commits), which invalidates every process's read caches.

        Raises:
            Unavailable: the database cannot be reached or written now (disk full, I/O error,
                locked, connection lost); nothing of the transaction was kept.
        """
        with self._lock:
            if self._tx_owner == threading.get_ident():
                with self._savepoint(changes_state) as conn:
                    yield conn
                return
            self._tx_changes, self._tx_head = changes_state, None
            try:
                conn = self._begin()
                self._tx_conn, self._tx_owner = conn, threading.get_ident()
                try:
                    yield conn
                    if self._tx_changes:
                        self._execute("UPDATE state_version SET version = version + 1 WHERE id = 1")
                except BaseException:
                    self._end(conn, commit=False)
                    raise
                self._end(conn, commit=True)
                if self._tx_changes:
                    self.commits_here += 1  # under the lock: one transaction at a time
            except self._unavailable_errors as exc:
                self._last_write_error = str(exc).strip()
                raise Unavailable(f"the agent's database cannot be written ({self._last_write_error}); "
                                  "nothing was changed, try again") from exc
            finally:
                self._tx_owner = self._tx_conn = self._tx_head = None
            self._last_write_error = None

    @contextmanager
    def _savepoint(self, changes_state: bool) -> Iterator[Any]:
        self._tx_depth += 1
        name = f"nested_{self._tx_depth}"
        try:
            self._execute(f"SAVEPOINT {name}")
            try:
                yield self._tx_conn
            except BaseException:
                self._tx_head = None  # the inner block's entries are gone; read the head again
                try:
                    self._execute(f"ROLLBACK TO SAVEPOINT {name}")
                    self._execute(f"RELEASE SAVEPOINT {name}")
                except self._unavailable_errors:
                    pass  # the whole transaction is lost; the outer commit will say so
                raise
            self._execute(f"RELEASE SAVEPOINT {name}")
            self._tx_changes = self._tx_changes or changes_state
        finally:
            self._tx_depth -= 1

    # -- the execute API the query mixins use --------------------------------------------------

    def _in_transaction(self) -> bool:
        return self._tx_owner == threading.get_ident()

    def _execute(self, query: str, params: tuple | list = ()) -> Any:
        """Run a statement in this thread's transaction; the cursor (``rowcount``, ``fetchone``)."""
        if not self._in_transaction():
            raise RuntimeError("a change outside transaction()")
        return self._tx_conn.execute(self._sql(query), params)

    def _executemany(self, query: str, params: list[tuple]) -> None:
        """Run a statement once per parameter tuple in this thread's transaction."""
        if not self._in_transaction():
            raise RuntimeError("a change outside transaction()")
        self._tx_conn.cursor().executemany(self._sql(query), params)

    def _all(self, query: str, params: tuple | list = ()) -> list[Any]:
        """Every row: inside this thread's transaction (seeing its changes), else committed data."""
        if self._in_transaction():
            return self._tx_conn.execute(self._sql(query), params).fetchall()
        return self._read(self._sql(query), params)

    def _one(self, query: str, params: tuple | list = ()) -> Any:
        found = self._all(query, params)
        return found[0] if found else None
