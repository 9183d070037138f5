"""The schema: numbered SQL files in ``migrations/``, applied in order by yoyo-migrations.

yoyo keeps its bookkeeping in the database itself (``_yoyo_migration``, ``_yoyo_log``,
``_yoyo_version``) and serialises migrating processes with a row in ``yoyo_lock``; the same
files and history serve PostgreSQL (postgres_migrate.py), with a file of
``migrations/postgresql/`` in place of one of the same name where the dialects differ.

On SQLite, ``PRAGMA user_version`` stays the number of applied migrations, as every release
before yoyo wrote it, so that an older mcagent still refuses a database that is newer than it.
It is also the version of record: inside the lock, yoyo's table is made to list exactly the
first ``user_version`` migrations (a database from before yoyo gets them marked applied; any
marked beyond it are unmarked and run again), then the rest run, each migration together with
its mark and the new ``user_version`` in one transaction, so that a crash leaves a migration
either wholly applied and recorded or not at all.

Statement splitting: yoyo splits a file into statements with sqlparse; sqlparse (0.6.1 checked) keeps a
trigger body ``CREATE TRIGGER … BEGIN …; …; END;`` whole, also with ``CASE … END`` inside it
or ``;`` inside a string (tests/agent/test_storage.py checks the triggers of 0002 work). Do not
write ``BEGIN``/``COMMIT`` in a file: yoyo runs each file in a transaction of its own.
"""

from __future__ import annotations

import datetime as dt
import functools
import glob
import logging
import pathlib
import sqlite3

from yoyo import read_migrations
from yoyo.backends.core.sqlite3 import SQLiteBackend
from yoyo.connections import DatabaseURI
from yoyo.exceptions import LockTimeout
from yoyo.migrations import MigrationList

log = logging.getLogger(__name__)
logging.getLogger("yoyo").setLevel(logging.WARNING)  # it logs every step; one line per migration is ours

MIGRATIONS_DIR = pathlib.Path(__file__).with_name("migrations")
MIGRATION_TABLE = "_yoyo_migration"


@functools.cache
def migrations(engine: str = "sqlite") -> MigrationList:
    """The migrations, in the order of their numbers, loaded (statements split) once.

    One history for both engines: the same ids in the same order. A file in
    ``migrations/<engine>/`` replaces the one of the same name for that engine only, where
    the dialects must differ (see migrations/README.md).
    """
    found = {m.id: m for m in read_migrations(glob.escape(str(MIGRATIONS_DIR)))}
    variants = MIGRATIONS_DIR / engine
    if variants.is_dir():
        for migration in read_migrations(glob.escape(str(variants))):
            if migration.id not in found:
                raise RuntimeError(f"{variants}/{migration.id}.sql replaces no migration of that name")
            found[migration.id] = migration
    ordered = MigrationList(sorted(found.values(), key=lambda m: m.id))
    for migration in ordered:
        migration.load()
    return ordered


#: The SQL of each migration, in order (what ``PRAGMA user_version`` counts).
MIGRATIONS: list[str] = [path.read_text(encoding="utf-8") for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.sql"))]


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer mcagent."""


class _Backend(SQLiteBackend):
    """yoyo's SQLite backend on a connection configured like the agent's own.

    yoyo's connects with a shared cache and a 5 s busy timeout, and begins transactions
    deferred (a second process then can fail at once, instead of waiting, when a read turns
    into a write); here: a private cache, a 10 s busy timeout and BEGIN IMMEDIATE.
    """

    def connect(self, dburi: DatabaseURI) -> sqlite3.Connection:
        conn = sqlite3.connect(dburi.database, isolation_level=None, timeout=10)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def begin(self) -> None:
        assert not self._in_transaction
        self._in_transaction = True
        self.execute("BEGIN IMMEDIATE")

    def execute(self, sql: str, params: dict | None = None) -> sqlite3.Cursor:
        # yoyo passes datetimes for its bookkeeping and registers a process-wide sqlite3 adapter
        # for them when used as a context manager; convert here instead, as that adapter would.
        if params:
            params = {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in params.items()}
        return super().execute(sql, params)


def migrate(path: str, *, lock_timeout: float = 60) -> list[str]:
    """Bring the database at `path` to the newest schema (see the module docstring); the ids
    of the migrations applied now.

    Safe to run from several processes at once: one migrates, the others wait for its lock and
    then find nothing left to do.

    Raises:
        SchemaTooNew: the database knows migrations this mcagent does not.
        RuntimeError: another process held the migration lock for `lock_timeout` seconds.
    """
    known = migrations()
    backend = _Backend(DatabaseURI("sqlite", None, None, None, None, path, {}), MIGRATION_TABLE)
    try:
        if _up_to_date(backend.connection, known):
            return []
        backend.init_database()
        try:
            with backend.lock(timeout=lock_timeout):
                return _migrate_locked(backend, known)
        except LockTimeout as exc:
            raise RuntimeError(
                f"the database {path} is being migrated by another process ({exc}); if no mcagent is running, "
                "delete the row of the table yoyo_lock and start again") from exc
    finally:
        backend.connection.close()


def _version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return version


def _applied_ids(conn: sqlite3.Connection) -> list[str] | None:
    """Ids yoyo recorded as applied, or None before yoyo's tables exist."""
    try:
        return [row[0] for row in conn.execute(f"SELECT migration_id FROM {MIGRATION_TABLE}")]
    except sqlite3.OperationalError:
        return None


def _up_to_date(conn: sqlite3.Connection, known: MigrationList) -> bool:
    """Whether nothing is to be done (read-only, no lock: the common case of every start)."""
    applied = _applied_ids(conn)
    return applied is not None and sorted(applied) == [m.id for m in known] and _version(conn) == len(known)


def _migrate_locked(backend: _Backend, known: MigrationList) -> list[str]:
    conn = backend.connection
    version = _version(conn)
    backend.ensure_internal_schema_updated()
    applied = set(_applied_ids(conn) or ())
    unknown = sorted(applied - {m.id for m in known})
    if version > len(known) or unknown:
        raise SchemaTooNew(
            f"database schema version {max(version, len(applied))} is newer than this mcagent ({len(known)})"
            + (f": it has migrations {', '.join(unknown)}" if unknown else "") + "; use a newer mcagent")
    with backend.transaction():
        for number, migration in enumerate(known, start=1):
            if number <= version and migration.id not in applied:
                backend.mark_one(migration)  # applied by a release that counted in user_version only
            elif number > version and migration.id in applied:
                backend.unmark_one(migration)  # user_version says it is not there: run it again
    for number, migration in enumerate(known[version:], start=version + 1):
        log.info("database %s: applying migration %s", backend.uri.database, migration.id)
        with backend.transaction():
            migration.process_steps(backend, "apply")
            backend.log_migration(migration, "apply")
            backend.mark_one(migration, log=False)
            backend.execute(f"PRAGMA user_version = {number}")
    return [m.id for m in known[version:]]
