"""The composition root: builds the service from its adapters.

The domain knows only its ports (agent.domain.ports); this is the one place that picks the
adapters — SQLite records with its group-committing audit appender, and the key backends —
and wires them into `AgentService`.
"""

from __future__ import annotations

from agent.clock import Clock, system_clock
from agent.domain import certificates
from agent.domain.notification import DEFAULT_TIMEZONE
from agent.domain.service import AgentService
from agent.keys import KeyStores
from agent.storage import SqliteAuditLog, Storage


def build_service(storage: Storage, keys: KeyStores, *, clock: Clock = system_clock,
                  timezone: str = DEFAULT_TIMEZONE,
                  publication: certificates.Publication | None = None) -> AgentService:
    """The service over SQLite `storage` and the key backends `keys`."""
    return AgentService(storage, SqliteAuditLog(storage), keys, clock=clock, timezone=timezone,
                        publication=publication)
