"""The audit appender: audit-only entries written in group commits, by the callers themselves."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from mcagent.agent.domain.audit import AuditEntry
from mcagent.agent.domain.ports import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from mcagent.agent.storage.engine import SqlRecords


# A batch smaller than the one before waits up to this long for as many callers before it
# commits, when the batch before held several (signs arriving close together): they then share
# one fsync. A lone caller (one client) never waits. docs/decisions.md has the figures.
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

    Leader and followers, no thread of its own: a caller that finds no batch being written
    writes the queue itself (it *leads*); callers arriving meanwhile queue and wait. When the
    leader is done it releases the callers it wrote for and hands the lead to the oldest caller
    still waiting, whose batch is everything queued by then. A lone caller thus writes its own
    entry with no hand-off between threads; under load each batch costs one wake-up per caller.
    """

    def __init__(self, storage: SqlRecords, max_batch: int = 1000, observer: Observer | None = None) -> None:
        self._storage = storage
        self._observer = observer or NO_OBSERVER  # told each commit's size and time, and the queue's depth
        self._max_batch = max_batch
        self._lock = threading.Lock()  # guards the fields below; never held while writing
        self._idle = threading.Condition(self._lock)  # notified when the last leader steps down
        self._arrived = threading.Condition(self._lock)  # notified when a lingering leader's batch is full
        self._lingering = False
        self._queue: list[_PendingEntry] = []  # not empty only while someone leads
        self._leading = False
        self._closed = False
        self._callers_before = 1  # callers in the previous batch (for the linger)
        self._waiters = threading.local()

    def append(self, **fields: Any) -> AuditEntry:
        """Append one entry (the keyword arguments of `Storage.append_audit`); waits for the commit."""
        return self.append_many([fields])[0]

    def append_many(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """Append several entries, in order, in the same commit; waits for it.

        An entry may carry ``unless_revoked=<credential id>`` and ``if_revoked=<function
        returning the other entry>``: the other entry is written instead when that credential
        is revoked at commit time.

        Raises:
            RuntimeError: the appender was closed.
            Exception: whatever made the commit fail (nothing of the batch was written).
        """
        if self._storage._in_transaction():  # a leader would write the batch into it, a follower wait forever
            raise RuntimeError("audit-only entries are appended outside a transaction")
        waiter = getattr(self._waiters, "lock", None)
        if waiter is None:  # one per thread, reused: held while idle, released by the leader when done
            waiter = self._waiters.lock = threading.Lock()
            waiter.acquire()
        pending = _PendingEntry(entries, waiter)
        with self._lock:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            self._queue.append(pending)
            if self._lingering and len(self._queue) >= self._callers_before:
                self._arrived.notify()
            pending.lead = not self._leading
            self._leading = True
        if not pending.lead:
            try:
                waiter.acquire()  # until a leader has written this batch, or handed us the lead
            except BaseException:  # interrupted (a signal): a leader still releases it, so never reuse it
                self._waiters.lock = None
                with self._lock:
                    pending.abandoned = True  # a leader writes it but hands the lead to someone else
                    led = pending.lead
                if led:  # handed to us before we noticed: pass it on first
                    self._lead(pending)
                raise
        if pending.lead and not pending.done_writing:
            self._lead(pending)
        if pending.error is not None:
            raise pending.error
        return pending.entries

    def _lead(self, mine: _PendingEntry) -> None:
        """Write batches until the one holding `mine` is written, then hand the lead on."""
        while True:
            with self._lock:
                if len(self._queue) < self._callers_before:
                    # signs came close together: as many as last time may be a moment away
                    self._lingering = True
                    self._arrived.wait_for(lambda: len(self._queue) >= self._callers_before, LINGER_SECONDS)
                    self._lingering = False
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
                queued = len(self._queue)
            self._callers_before = len(batch)
            self._write(batch, queued)
            with self._lock:  # what comes next is decided here: a caller arriving later leads by itself
                successor = next((p for p in self._queue if not p.abandoned), None)
                if successor is mine:  # more than a batch was queued before it: write on
                    successor = None
                elif successor is not None:
                    successor.lead = True
                finished = successor is not None or not self._queue  # else `mine` or abandoned entries are left
                if not self._queue:
                    self._leading = False
                    self._idle.notify_all()
            for pending in batch:
                pending.done_writing = True
                if pending is not mine:
                    pending.done.release()
            if successor is not None:
                successor.done.release()
            if finished:
                return

    def _write(self, batch: list[_PendingEntry], queued: int) -> None:
        self._observer.audit_queue_depth(len(batch) + queued)
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
        except BaseException as exc:  # every waiter learns its entries were not written
            error = exc if isinstance(exc, Exception) else RuntimeError(f"the audit commit was interrupted ({exc!r})")
            for pending in batch:
                pending.entries, pending.error = [], error
        self._observer.audit_committed(sum(len(p.entries) for p in batch), time.perf_counter() - started)
        self._observer.audit_queue_depth(queued)

    def close(self) -> None:
        """Refuse new entries, and return once what is queued is written."""
        with self._lock:
            self._closed = True
            self._idle.wait_for(lambda: not self._leading)


class _PendingEntry:
    """Entries one caller waits for, written together."""

    __slots__ = ("fields", "done", "entries", "error", "lead", "done_writing", "abandoned")

    def __init__(self, fields: list[dict[str, Any]], done: threading.Lock) -> None:
        self.fields = fields
        self.done = done  # the caller's waiter: released once written (or failed), or to hand it the lead
        self.entries: list[AuditEntry] = []
        self.error: Exception | None = None
        self.lead = False  # this caller writes the next batch (set under the appender's lock)
        self.done_writing = False  # its batch was written (or failed)
        self.abandoned = False  # its caller was interrupted while waiting: never handed the lead
