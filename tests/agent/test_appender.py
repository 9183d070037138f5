"""The audit appender's leader/follower group commit, on both engines: every entry written
exactly once in one valid chain, every waiter released, a failed commit reaching exactly the
callers of its batch, a revoke racing signs, an interrupted waiter."""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time

import pytest
from mcagent.agent.domain.audit import verify_chain
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.model import Backend, Business, Credential
from mcagent.agent.storage import open_storage
from mcagent.agent.storage.appender import AuditAppender
from mcagent.hsm.base import KeyType

AT = dt.datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
ABN = "51824753556"


@pytest.fixture
def records(database):
    storage = open_storage(database)
    with storage.transaction():
        storage.insert_business(Business(ABN, "Acme", AT))
    yield storage
    storage.close()


class _Commits:
    """An observer counting commits."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def audit_committed(self, entries: int, seconds: float) -> None:
        self.sizes.append(entries)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _Gated:
    """The records, with a gate the next leader stops at (inside its transaction, before the head)."""

    def __init__(self, records) -> None:
        self._records = records
        self.gate = threading.Event()
        self.gate.set()
        self.stopped = threading.Event()  # a leader is waiting at the gate

    def __getattr__(self, name):
        return getattr(self._records, name)

    def lock_audit_head(self) -> None:
        self.stopped.set()
        assert self.gate.wait(30)
        self._records.lock_audit_head()


def _entry(actor: str, n: int = 0, **extra) -> dict:
    return dict(at=AT, actor=actor, action="credential.sign", outcome="allowed", detail={"n": n}, **extra)


def _wait_queued(appender: AuditAppender, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(appender._queue) < count:
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.005)


def test_many_threads_each_entry_once_in_one_chain_and_every_waiter_released(records):
    commits = _Commits()
    appender = AuditAppender(records, observer=commits)
    got: dict[int, list[int]] = {}

    def append(thread: int) -> None:
        seqs = []
        for n in range(30):
            if n % 3 == 2:  # several entries from one caller: together, in order
                written = appender.append_many([_entry(f"t{thread}", n), _entry(f"t{thread}", n)])
                assert written[1].seq == written[0].seq + 1
                seqs += [e.seq for e in written]
            else:
                seqs.append(appender.append(**_entry(f"t{thread}", n)).seq)
        got[thread] = seqs

    for _ in range(2):  # twice: the threads' reused waiters must be left held after the first round
        got.clear()
        threads = [threading.Thread(target=append, args=(t,)) for t in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a waiter was never released"
        assert len(got) == 12 and all(seqs == sorted(seqs) for seqs in got.values())
    entries = list(records.audit_entries())
    assert [e.seq for e in entries] == list(range(1, 2 * 12 * 40 + 1))  # each exactly once, no gap
    assert verify_chain(entries).ok
    assert sum(commits.sizes) == len(entries)
    assert len(commits.sizes) < len(entries)  # callers shared commits
    appender.close()
    assert not appender._leading


def test_a_failed_commit_reaches_every_caller_of_its_batch_and_no_other(records):
    gated = _Gated(records)
    appender = AuditAppender(gated)
    results: dict[str, object] = {}

    def append(name: str, **extra) -> None:
        try:
            results[name] = appender.append(**_entry(name, **extra)).seq
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            results[name] = exc

    gated.gate.clear()
    leader = threading.Thread(target=append, args=("leader",))
    leader.start()
    assert gated.stopped.wait(30)  # the leader is inside its commit; the next batch queues behind it
    followers = [threading.Thread(target=append, args=(f"f{n}",)) for n in range(4)]
    followers.append(threading.Thread(target=append, args=("bad",), kwargs={"colour": "red"}))  # not a field
    for thread in followers:
        thread.start()
    _wait_queued(appender, 5)
    gated.gate.set()
    for thread in [leader, *followers]:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in [leader, *followers])
    assert results["leader"] == 1
    for name in ("f0", "f1", "f2", "f3", "bad"):  # one batch: the bad entry fails it for all five
        assert isinstance(results[name], TypeError), results
    after = appender.append(**_entry("after"))
    assert after.seq == 2  # nothing of the failed batch was kept; the next one is unaffected
    assert [e.actor for e in records.audit_entries()] == ["leader", "after"]
    appender.close()


def test_a_revoke_racing_signs_comes_between_allowed_and_withheld(records):
    with records.transaction():
        records.insert_credential(Credential(
            id="c-1", abn=ABN, name="c-1", status=CredentialStatus.ACTIVE, key_type=KeyType.EC_P256,
            backend=Backend.PKCS11, key_uri="pkcs11:object=c-1", created_at=AT, created_by="alice",
            terms_version="t1"))
    appender = AuditAppender(records)
    stop = threading.Event()

    def sign(thread: int) -> None:
        n = 0
        while not stop.is_set() or n < 20:
            n += 1
            appender.append_many([_entry(f"t{thread}", n, unless_revoked="c-1",
                                         if_revoked=lambda n=n: {**_entry(f"t{thread}", n), "outcome": "withheld"})])

    threads = [threading.Thread(target=sign, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    with records.transaction():
        records.update_credential("c-1", CredentialStatus.ACTIVE, status=CredentialStatus.REVOKED, revoked_at=AT,
                                  revoked_by="alice")
        records.append_audit(at=AT, actor="alice", action="credential.revoke", outcome="allowed", target="c-1")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    entries = list(records.audit_entries())
    revoke = next(e.seq for e in entries if e.action == "credential.revoke")
    signs = [e for e in entries if e.action == "credential.sign"]
    assert all(e.outcome == ("allowed" if e.seq < revoke else "withheld") for e in signs)
    assert any(e.outcome == "allowed" for e in signs) and any(e.outcome == "withheld" for e in signs)
    assert verify_chain(entries).ok
    appender.close()


def test_an_interrupted_waiter_s_entry_is_still_written_and_the_lead_goes_on(records):
    """A caller interrupted while it waits (a signal, main thread) is never handed the lead, its
    entry is written by the leader, and its thread appends again afterwards."""
    gated = _Gated(records)
    appender = AuditAppender(gated)
    gated.gate.clear()
    leader = threading.Thread(target=appender.append, kwargs=_entry("leader"))
    leader.start()
    assert gated.stopped.wait(30)

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            appender.append(**_entry("interrupted"))  # queued behind the gated leader
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    gated.gate.set()
    leader.join(timeout=30)
    assert not leader.is_alive()
    assert appender.append(**_entry("again")).seq == 3  # the leader wrote the interrupted entry (seq 2)
    assert [e.actor for e in records.audit_entries()] == ["leader", "interrupted", "again"]
    appender.close()
    with pytest.raises(RuntimeError, match="closed"):
        appender.append(**_entry("late"))


def test_appending_inside_a_transaction_is_refused(records):
    appender = AuditAppender(records)
    with pytest.raises(RuntimeError, match="outside a transaction"), records.transaction():
        appender.append(**_entry("nested"))
    assert list(records.audit_entries()) == []
    appender.close()


class _HookedWaiter:
    """A caller's waiter that runs `after_release` once it was released (by the leader's thread)."""

    def __init__(self, after_release) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._after_release = after_release

    def acquire(self, *args) -> bool:
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()
        hook, self._after_release = self._after_release, None
        if hook is not None:
            hook()


def test_a_caller_arriving_as_the_leader_steps_down_leads_alone(records):
    """The leader releases its batch's callers after it stepped down; a caller arriving then
    leads its own batch, and the old leader must not write it too (nor release its waiter)."""
    gated = _Gated(records)
    commits = _Commits()
    appender = AuditAppender(gated, observer=commits)
    results: dict[str, object] = {}

    def append(name: str, waiter=None) -> None:
        if waiter is not None:
            appender._waiters.lock = waiter
        try:
            results[name] = [appender.append(**_entry(name)).seq, appender.append(**_entry(name)).seq]
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            results[name] = exc

    late = threading.Thread(target=append, args=("late",))

    def start_late() -> None:  # in the leader's thread, between its stepping down and its return
        gated.stopped.clear()
        gated.gate.clear()
        late.start()
        assert gated.stopped.wait(30)  # the late caller leads, and is inside its commit
        threading.Timer(0.3, gated.gate.set).start()

    gated.gate.clear()
    first = threading.Thread(target=append, args=("first",))
    first.start()
    assert gated.stopped.wait(30)
    second = threading.Thread(target=append, args=("second",))  # leads the next batch: itself and third
    third = threading.Thread(target=append, args=("third", _HookedWaiter(start_late)))
    second.start()
    _wait_queued(appender, 1)
    third.start()
    _wait_queued(appender, 2)
    gated.gate.set()
    for thread in (first, second, third, late):
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert all(isinstance(results[name], list) for name in ("first", "second", "third", "late")), results
    entries = list(records.audit_entries())
    assert [e.seq for e in entries] == list(range(1, 9)) and verify_chain(entries).ok
    assert sorted(s for name in results for s in results[name]) == list(range(1, 9))
    assert 0 not in commits.sizes  # no second leader beside the late one, finding nothing to write
    appender.close()
