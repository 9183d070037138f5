"""The agent's records over SQLite or PostgreSQL: the adapters of the domain's `Records` and `AuditLog` ports.

``SqlRecords`` (engine.py) implements `Records` once for both engines: ``Storage`` (sqlite.py)
over SQLite, ``PostgresStorage`` (postgres.py) over PostgreSQL; ``SqlAuditLog`` (audit_log.py)
implements `AuditLog`, appending through ``AuditAppender`` (appender.py) in group commits;
``MIGRATIONS`` (migrate.py) is the schema's SQL, in order.
"""

from mcagent.agent.storage.appender import AuditAppender
from mcagent.agent.storage.audit_log import SqlAuditLog
from mcagent.agent.storage.engine import SqlRecords
from mcagent.agent.storage.migrate import MIGRATIONS, SchemaTooNew
from mcagent.agent.storage.sqlite import Storage

__all__ = ["MIGRATIONS", "AuditAppender", "SchemaTooNew", "SqlAuditLog", "SqlRecords", "Storage", "is_postgresql",
           "open_storage"]


def is_postgresql(database: str) -> bool:
    """Whether `database` names a PostgreSQL database (a ``postgresql://`` URL) rather than a file."""
    return database.startswith(("postgresql://", "postgres://"))


def open_storage(database: str) -> SqlRecords:
    """The records at `database`: a ``postgresql://`` URL, else the path of a SQLite file.

    Raises:
        SchemaTooNew: the database is newer than this mcagent.
        Unavailable: a PostgreSQL database cannot be reached.
    """
    if is_postgresql(database):
        from mcagent.agent.storage.postgres import PostgresStorage  # psycopg only when used

        return PostgresStorage(database)
    return Storage(database)
