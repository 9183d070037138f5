"""Audit log queries (both engines): the hash chain's append, its head, pages of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from mcagent.agent.domain.audit import GENESIS, AuditEntry, bounded, hash_of, timestamp
from mcagent.agent.storage import rows
from mcagent.agent.storage.queries import Queries

_INSERT = f"INSERT INTO audit ({', '.join(rows.AUDIT_COLUMNS)}) VALUES ({', '.join('?' * len(rows.AUDIT_COLUMNS))})"


class AuditQueries(Queries):
    """The audit half of `SqlRecords` (a mixin: it uses the engine's transaction and execute API)."""

    _tx_head: tuple[int, str] | None  # (seq, hash) of the head as the open transaction left it

    def transaction(self, *, changes_state: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def lock_audit_head(self) -> None:
        raise NotImplementedError

    def append_audit(self, *, at: dt.datetime, actor: str, action: str, outcome: str, abn: str = "",
                     target: str = "", detail: dict[str, Any] | None = None) -> AuditEntry:
        """Append an entry chained to the newest one (inside the caller's transaction)."""
        return self.append_audit_many([dict(at=at, actor=actor, action=action, outcome=outcome, abn=abn,
                                            target=target, detail=detail)])[0]

    def append_audit_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """Append entries in order, each chained to the one before (inside the caller's transaction).

        The head is read in the transaction, under `lock_audit_head`, never kept between
        transactions: other processes append to the same chain.
        """
        if self._tx_head is None:
            self.lock_audit_head()
            last = self._one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            self._tx_head = (last["seq"], last["hash"]) if last else (0, GENESIS)
        seq, prev_hash = self._tx_head
        written, values = [], []
        for fields in entries:
            seq += 1
            f, detail_json = bounded(fields)  # the detail encoded once: for the bound, the hash and the row
            when = timestamp(f["at"])  # and the time formatted once, for the hash and the row
            digest = hash_of(seq, when, f["actor"], f["action"], f["outcome"], f["abn"], f["target"],
                             detail_json, prev_hash)
            entry = AuditEntry(seq=seq, prev_hash=prev_hash, hash=digest, **f)
            written.append(entry)
            values.append(rows.audit_values(entry, detail_json, when))
            prev_hash = digest
        self._executemany(_INSERT, values)
        self._tx_head = (seq, prev_hash)
        return written

    def audit_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed entry; (0, GENESIS) when the log is empty."""
        row = self._one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (row["seq"], row["hash"]) if row else (0, GENESIS)

    def newest_audit_entry(self, action: str) -> AuditEntry | None:
        """The newest entry with this action, or None."""
        row = self._one("SELECT * FROM audit WHERE action = ? ORDER BY seq DESC LIMIT 1", (action,))
        return None if row is None else rows.audit(row)

    def append_signed(self, make: Callable[[int, str], dict[str, Any]]) -> AuditEntry:
        """Append the entry `make(seq, hash)` builds from the head it follows, in one transaction,
        so that nothing can come between the head it signs and the entry itself."""
        with self.transaction(changes_state=False):
            self.lock_audit_head()
            seq, head = self.audit_head()
            return self.append_audit_many([make(seq, head)])[0]

    def audit_page(self, *, abn: str | None, after: int, limit: int) -> list[AuditEntry]:
        """Entries after sequence number `after`, oldest first, at most `limit`."""
        if abn is None:
            found = self._all("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        else:
            found = self._all("SELECT * FROM audit WHERE abn = ? AND seq > ? ORDER BY seq LIMIT ?",
                              (abn, after, limit))
        return [rows.audit(r) for r in found]

    def audit_entries(self) -> Iterator[AuditEntry]:
        """Every entry in sequence order, read in batches."""
        after = 0
        while True:
            batch = self.audit_page(abn=None, after=after, limit=5000)
            yield from batch
            if len(batch) < 5000:
                return
            after = batch[-1].seq
