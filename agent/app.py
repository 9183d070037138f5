"""The composition root: builds the service from its adapters.

The domain knows only its ports (agent.domain.ports); this is the one place that picks the
adapters — SQLite records with its group-committing audit appender, and the key backends —
and wires them into `AgentService`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from agent.clock import Clock, system_clock
from agent.domain import certificates
from agent.domain.audit import AuditEntry
from agent.domain.notification import DEFAULT_TIMEZONE
from agent.domain.service import AgentService
from agent.keys import KeyStores
from agent.storage import AuditAppender, Storage


class SqliteAuditLog:
    """`AuditLog` over the SQLite records: appends go through the group-commit appender."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._appender = AuditAppender(storage)

    def append_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """See `AuditLog.append_many`."""
        return self._appender.append_many(entries)

    def append_signed(self, make: Callable[[int, str], dict[str, Any]]) -> AuditEntry:
        """See `AuditLog.append_signed`."""
        return self._storage.append_signed(make)

    def head(self) -> tuple[int, str]:
        """See `AuditLog.head`."""
        return self._storage.audit_head()

    def newest(self, action: str) -> AuditEntry | None:
        """See `AuditLog.newest`."""
        return self._storage.newest_audit_entry(action)

    def page(self, *, abn: str | None, after: int, limit: int) -> list[AuditEntry]:
        """See `AuditLog.page`."""
        return self._storage.audit_page(abn=abn, after=after, limit=limit)

    def entries(self) -> Iterator[AuditEntry]:
        """See `AuditLog.entries`."""
        return self._storage.audit_entries()

    def close(self) -> None:
        """See `AuditLog.close`."""
        self._appender.close()


def build_service(storage: Storage, keys: KeyStores, *, clock: Clock = system_clock,
                  timezone: str = DEFAULT_TIMEZONE,
                  publication: certificates.Publication | None = None) -> AgentService:
    """The service over SQLite `storage` and the key backends `keys`."""
    return AgentService(storage, SqliteAuditLog(storage), keys, clock=clock, timezone=timezone,
                        publication=publication)
