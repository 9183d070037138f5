"""The composition root: builds the service from its adapters.

The domain knows only its ports (agent.domain.ports); this is the one place that picks the
adapters — SQLite or PostgreSQL records with its group-committing audit appender, and the key backends —
and wires them into `AgentService`.
"""

from __future__ import annotations

from mcagent.agent.clock import Clock, system_clock
from mcagent.agent.domain import certificates
from mcagent.agent.domain.notification import DEFAULT_TIMEZONE
from mcagent.agent.domain.ports import Observer
from mcagent.agent.domain.service import AgentService
from mcagent.agent.keys import KeyStores
from mcagent.agent.storage import SqlAuditLog, SqlRecords


def build_service(storage: SqlRecords, keys: KeyStores, *, clock: Clock = system_clock,
                  timezone: str = DEFAULT_TIMEZONE,
                  publication: certificates.Publication | None = None,
                  observer: Observer | None = None) -> AgentService:
    """The service over `storage` (SQLite or PostgreSQL) and the key backends `keys`; `observer` (metrics) is
    told of signs by the service and of audit commits by the appender."""
    return AgentService(storage, SqlAuditLog(storage, observer=observer), keys, clock=clock, timezone=timezone,
                        publication=publication, observer=observer)
