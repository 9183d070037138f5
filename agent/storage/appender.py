"""The audit appender: audit-only entries written in group commits by one thread."""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from mcagent.agent.domain.audit import AuditEntry
from mcagent.agent.domain.ports import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from mcagent.agent.storage.engine import SqlRecords


# A batch of one waits up to this long for more entries before it commits, when the batch
# before held several callers (signs arriving close together): they then share one fsync. A
# lone caller (one client) never waits. docs/decisions.md has the figures.
LINGER_SECONDS = 200e-6


def _choose(fields: dict[str, Any], revoked: set[str]) -> dict[str, Any]:
    """An entry marked ``unless_revoked=ID`` with its ``if_revoked`` alternative (a function that
    builds it, called only when needed): the one that applies."""
    if "unless_revoked" not in fields:
        return fields
    if fields["unless_revoked"] in revoked:
        return fields["if_revoked"]()
    return {k: v for k, v in fields.items() if k not in ("unless_revoked", "if_revoked")}


class AuditAppender:
    """Appends audit-only entries (signs, refusals) in batches: every entry queued while the
    previous batch was being written goes into the next transaction, so concurrent signs share
    one commit. `append` returns once its entry is durable, and raises if it could not be written.
    """

    def __init__(self, storage: SqlRecords, max_batch: int = 1000, observer: Observer | None = None) -> None:
        self._storage = storage
        self._observer = observer or NO_OBSERVER  # told each commit's size and time, and the queue's depth
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_PendingEntry | None] = queue.SimpleQueue()
        self._waiters = threading.local()
        self._thread = threading.Thread(target=self._run, name="audit-appender", daemon=True)
        self._thread.start()

    def append(self, **fields: Any) -> AuditEntry:
        """Append one entry (the keyword arguments of `Storage.append_audit`); waits for the commit."""
        return self.append_many([fields])[0]

    def append_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """Append several entries, in order, in the same commit; waits for it.

        An entry may carry ``unless_revoked=<credential id>`` and ``if_revoked=<function
        returning the other entry>``: the other entry is written instead when that credential
        is revoked at commit time.
        """
        waiter = getattr(self._waiters, "lock", None)
        if waiter is None:  # one per thread, reused: held while idle, released by the appender when done
            waiter = self._waiters.lock = threading.Lock()
            waiter.acquire()
        pending = _PendingEntry(entries, waiter)
        self._queue.put(pending)
        try:
            waiter.acquire()  # until the appender has written (or failed to write) this batch
        except BaseException:  # interrupted (a signal): the appender will still release it, so never reuse it
            self._waiters.lock = None
            raise
        if pending.error is not None:
            raise pending.error
        return pending.entries

    def _run(self) -> None:
        callers_before = 1  # callers in the previous batch
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            linger = callers_before > 1  # signs came close together: one more may be a moment away
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get(timeout=LINGER_SECONDS) if linger and len(batch) == 1 \
                        else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            callers_before = len(batch)
            self._observer.audit_queue_depth(len(batch) + self._queue.qsize())
            started = time.perf_counter()
            try:
                with self._storage.transaction(changes_state=False):
                    # Read in the same transaction as the append, holding the chain's head (which
                    # a revoke's own entry needs too): a revoke, by any process, commits either
                    # before (the entry is swapped) or after (the entry precedes the revoke's).
                    self._storage.lock_audit_head()
                    revoked = self._storage.revoked_among(
                        {f["unless_revoked"] for p in batch for f in p.fields if "unless_revoked" in f})
                    for pending in batch:
                        pending.entries = self._storage.append_audit_many(
                            [_choose(fields, revoked) for fields in pending.fields])
            except Exception as exc:  # every waiter learns its entries were not written
                for pending in batch:
                    pending.entries, pending.error = [], exc
            self._observer.audit_committed(sum(len(p.entries) for p in batch), time.perf_counter() - started)
            self._observer.audit_queue_depth(self._queue.qsize())
            for pending in batch:
                pending.done.release()

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()


class _PendingEntry:
    """Entries one caller waits for, written together."""

    __slots__ = ("fields", "done", "entries", "error")

    def __init__(self, fields: list[dict[str, Any]], done: threading.Lock) -> None:
        self.fields = fields
        self.done = done  # the caller's waiter: released once the entries are written or failed
        self.entries: list[AuditEntry] = []
        self.error: Exception | None = None
