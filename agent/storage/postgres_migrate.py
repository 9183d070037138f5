"""The schema on PostgreSQL: the migrations of migrate.py (with their ``postgresql/`` variants).

Several instances may start at once on one empty database. They queue on a session advisory
lock (released by PostgreSQL if its holder dies, unlike yoyo's lock row), and the holder then
takes yoyo's own lock, clearing a row a crashed migrator left (nobody else can be migrating:
it holds the advisory lock). Each migration runs with its mark in one transaction
(PostgreSQL's DDL is transactional), so a crash leaves it wholly applied or not at all.
"""

from __future__ import annotations

import logging

import psycopg
from mcagent.agent.storage.migrate import MIGRATION_TABLE, SchemaTooNew, migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import DatabaseURI
from yoyo.migrations import MigrationList

log = logging.getLogger(__name__)

#: The key of the advisory lock migrating instances queue on (any fixed 64-bit number).
MIGRATION_LOCK = 0x6D636167656E74  # "mcagent"


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable PostgreSQL URL)"
    host = info.get("host", "")
    return f"postgresql://{info.get('user', '')}@{host}{':' + str(info['port']) if 'port' in info else ''}" \
           f"/{info.get('dbname', '')}"


class _Backend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend on a connection opened from the agent's URL as given."""

    def __init__(self, url: str) -> None:
        self._url = url
        super().__init__(DatabaseURI("postgresql+psycopg", None, None, None, None, redacted(url), {}),
                         MIGRATION_TABLE)

    def connect(self, dburi: DatabaseURI) -> psycopg.Connection:
        return psycopg.connect(self._url, autocommit=True)


def migrate_postgresql(url: str, *, lock_timeout: float = 60) -> list[str]:
    """Bring the PostgreSQL database at `url` to the newest schema (see the module docstring);
    the ids of the migrations applied now.

    Raises:
        SchemaTooNew: the database knows migrations this mcagent does not.
        RuntimeError: another instance held the migration lock for `lock_timeout` seconds.
        psycopg.OperationalError: the database cannot be reached.
    """
    known = migrations("postgresql")
    backend = _Backend(url)
    conn = backend.connection
    try:
        if _applied_ids(conn) == sorted(m.id for m in known):
            return []  # the common start: nothing to do, no lock
        conn.execute(f"SET lock_timeout = '{int(lock_timeout * 1000)}ms'")
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        except psycopg.errors.LockNotAvailable as exc:
            raise RuntimeError(f"the database {redacted(url)} is being migrated by another instance "
                               f"(waited {lock_timeout:.0f} s for its lock)") from exc
        conn.execute("RESET lock_timeout")
        try:
            backend.init_database()
            backend.break_lock()  # a row left by a crashed migrator: we hold the advisory lock
            with backend.lock():
                return _migrate_locked(backend, known)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    finally:
        conn.close()


def _applied_ids(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute("SELECT to_regclass(%s)", (MIGRATION_TABLE,)).fetchone()[0]
    if exists is None:
        return []
    return sorted(row[0] for row in conn.execute(f"SELECT migration_id FROM {MIGRATION_TABLE}"))


def _migrate_locked(backend: _Backend, known: MigrationList) -> list[str]:
    backend.ensure_internal_schema_updated()
    applied = set(_applied_ids(backend.connection))
    unknown = sorted(applied - {m.id for m in known})
    if unknown:
        raise SchemaTooNew(f"the database has migrations this mcagent does not know ({', '.join(unknown)}); "
                           "use a newer mcagent")
    pending = [m for m in known if m.id not in applied]
    for migration in pending:
        log.info("database %s: applying migration %s", backend.uri.database, migration.id)
        with backend.transaction():
            migration.process_steps(backend, "apply")
            backend.log_migration(migration, "apply")
            backend.mark_one(migration, log=False)
    return [m.id for m in pending]
