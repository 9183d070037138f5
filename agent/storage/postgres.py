"""The agent's records in PostgreSQL (psycopg 3 and its connection pool): the connections of
`SqlRecords`, shared by every instance and worker that names the same database.

The queries are engine.py's and its mixins' (``?`` turned into psycopg's ``%s`` here). Reads
outside a transaction take a pooled connection in autocommit mode, so each sees everything
committed; a transaction holds one pooled connection from BEGIN to COMMIT. Named locks are
transaction-scoped advisory locks, so a crashed holder never leaves one behind. The schema is
migrated on open (postgres_migrate.py). Backups are PostgreSQL's own (pg_dump), not `snapshot`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, BinaryIO

import psycopg
from mcagent.agent.domain.errors import FailedPrecondition, Unavailable
from mcagent.agent.storage.engine import SqlRecords
from mcagent.agent.storage.postgres_migrate import migrate_postgresql, redacted
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10  # seconds to wait for a connection (at start, and from the pool)


@functools.lru_cache(maxsize=1024)
def _placeholders(query: str) -> str:
    """A query written with ``?`` placeholders in psycopg's style (no query has ``?`` or ``%``
    in a literal)."""
    return query.replace("%", "%%").replace("?", "%s")


class PostgresStorage(SqlRecords):
    """The agent's records in one PostgreSQL database, shared with other instances."""

    engine = "postgresql"
    _unavailable_errors = (psycopg.OperationalError,)  # connection lost, pool timeout, lock timeout...

    def __init__(self, url: str, *, max_connections: int = 16) -> None:
        """Connect to `url` (``postgresql://USER@HOST/DB``; the password from ~/.pgpass or the
        environment's PGPASSWORD, never the command line) and migrate the database.

        Raises:
            Unavailable: the database cannot be reached.
            SchemaTooNew: the database knows migrations this mcagent does not.
        """
        super().__init__()
        self.url = redacted(url)
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, timeout=CONNECT_TIMEOUT,
                                    kwargs={"autocommit": True, "row_factory": dict_row}, open=False,
                                    name="mcagent")
        try:
            migrate_postgresql(url)
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)  # PoolTimeout is an OperationalError
        except psycopg.OperationalError as exc:
            self._pool.close()
            raise Unavailable(f"cannot reach the PostgreSQL database {self.url}: {str(exc).strip()}") from None
        log.info("records in the PostgreSQL database %s", self.url)

    def _sql(self, query: str) -> str:
        return _placeholders(query)

    def _begin(self) -> psycopg.Connection:
        for attempt in (1, 2):
            conn = self._pool.getconn()
            try:
                conn.execute("BEGIN")
                return conn
            except psycopg.OperationalError:
                self._pool.putconn(conn)  # discarded if broken
                if attempt == 2:
                    raise
                # e.g. pooled connections the server dropped (restart, fail-over): nothing was done yet;
                # once more, after the pool replaced every dead one
                self._pool.check()
            except BaseException:
                self._pool.putconn(conn)
                raise
        raise AssertionError("unreachable")

    def _end(self, conn: psycopg.Connection, commit: bool) -> None:
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except psycopg.Error:
            if commit:
                raise
            # a rollback that failed: the connection is gone, and the transaction with it
        finally:
            self._pool.putconn(conn)  # the pool discards a broken connection

    def _read(self, query: str, params: tuple | list) -> list[Any]:
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    return conn.execute(query, params).fetchall()
            except psycopg.OperationalError as exc:
                if attempt == 2:  # a read is safe to run again, e.g. on a fresh connection after a fail-over
                    raise Unavailable(f"the agent's database cannot be read ({str(exc).strip()}); try again") from exc
                self._pool.check()  # replaces every pooled connection that no longer works
        raise AssertionError("unreachable")

    def _executemany(self, query: str, params: list[tuple]) -> None:
        if not self._in_transaction():
            raise RuntimeError("a change outside transaction()")
        with self._tx_conn.cursor() as cursor:
            cursor.executemany(self._sql(query), params)

    def lock(self, name: str) -> None:
        """See `Records.lock`: an advisory lock for the rest of the transaction."""
        self._execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    def snapshot(self) -> BinaryIO:
        """Not on PostgreSQL: its own tools back it up (pg_dump; docs/operations.md)."""
        raise FailedPrecondition("records in PostgreSQL are backed up with pg_dump, not copied by the agent")

    def health_problem(self) -> str | None:
        """What stops the database from serving now, or None (a read; and after a failed write,
        an empty write transaction)."""
        try:
            self._read("SELECT 1", ())
        except Unavailable as exc:
            return str(exc)
        failure = self._last_write_error
        if failure is None:
            return None
        try:
            with self.transaction(changes_state=False):
                pass
        except Unavailable:
            return f"the database cannot be written ({self._last_write_error or failure})"
        return None

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()
