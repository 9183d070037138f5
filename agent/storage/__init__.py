"""The agent's records: the SQLite adapter, its schema migrations and the audit appender.

``Storage`` (sqlite.py) is what the domain uses; ``AuditAppender`` (appender.py) writes
audit-only entries in group commits; ``MIGRATIONS`` (migrate.py) is the schema's SQL, in order.
"""

from agent.storage.appender import AuditAppender
from agent.storage.migrate import MIGRATIONS, SchemaTooNew
from agent.storage.sqlite import Storage

__all__ = ["MIGRATIONS", "AuditAppender", "SchemaTooNew", "Storage"]
