"""The `AuditLog` port over the records (either engine): reads from them, appends through the
group-commit appender."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mcagent.agent.domain.audit import AuditEntry
from mcagent.agent.domain.ports import Observer
from mcagent.agent.storage.appender import AuditAppender
from mcagent.agent.storage.engine import SqlRecords


class SqlAuditLog:
    """`AuditLog` over `SqlRecords`: appends go through the group-commit appender."""

    def __init__(self, storage: SqlRecords, observer: Observer | None = None) -> None:
        self._storage = storage
        self._appender = AuditAppender(storage, observer=observer)

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
