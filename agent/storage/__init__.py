"""The agent's records over SQLite: the adapters of the domain's `Records` and `AuditLog` ports.

``Storage`` (sqlite.py) implements `Records`; ``SqliteAuditLog`` (audit_log.py) implements
`AuditLog`, appending through ``AuditAppender`` (appender.py) in group commits;
``MIGRATIONS`` (migrate.py) is the schema's SQL, in order.
"""

from mcagent.agent.storage.appender import AuditAppender
from mcagent.agent.storage.audit_log import SqliteAuditLog
from mcagent.agent.storage.migrate import MIGRATIONS, SchemaTooNew
from mcagent.agent.storage.sqlite import Storage

__all__ = ["MIGRATIONS", "AuditAppender", "SchemaTooNew", "SqliteAuditLog", "Storage"]
