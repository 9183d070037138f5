"""Several processes on one database: one audit chain, one state version, start-up steps once.

Real processes (spawned) on a real SQLite file and a real PostgreSQL database (the `database`
fixture of tests/conftest.py runs each test on both).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading

from mcagent.agent.domain.audit import verify_chain
from mcagent.agent.domain.cache import CachedRecords
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.model import Backend, Business, Credential
from mcagent.agent.storage import SqlAuditLog, open_storage
from mcagent.hsm.base import KeyType

from tests.pkcs11_tool import objects_by_label, pkcs11_tool

AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
ABN = "51824753556"
THREADS, SIGNS, CHANGES = 4, 60, 15


def _credential(credential_id: str) -> Credential:
    return Credential(id=credential_id, abn=ABN, name=credential_id, status=CredentialStatus.ACTIVE,
                      key_type=KeyType.EC_P256, backend=Backend.PKCS11, key_uri=f"pkcs11:object={credential_id}",
                      created_at=AT, created_by="test", terms_version="1")


def _work(database: str, name: str, barrier) -> None:
    """Appends audit-only entries from several threads (group commits) while changing state."""
    storage = open_storage(database)
    audit = SqlAuditLog(storage)
    barrier.wait()

    def sign(thread: int) -> None:
        for i in range(SIGNS):
            audit.append_many([dict(at=AT, actor=name, action="credential.sign", outcome="allowed",
                                    detail={"n": i, "thread": thread}, unless_revoked=f"{name}-c",
                                    if_revoked=lambda: dict(at=AT, actor=name, action="credential.sign",
                                                            outcome="withheld"))])

    threads = [threading.Thread(target=sign, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for i in range(CHANGES):
        with storage.transaction():
            storage.insert_credential(_credential(f"{name}-{i}"))
            storage.append_audit(at=AT, actor=name, action="credential.create", outcome="allowed",
                                 target=f"{name}-{i}")
    for thread in threads:
        thread.join()
    audit.close()
    storage.close()


def test_two_processes_append_to_one_chain_and_share_the_state_version(database):
    storage = open_storage(database)
    with storage.transaction():
        storage.insert_business(Business(ABN, "Acme", AT))
        storage.append_audit(at=AT, actor="test", action="business.register", outcome="allowed", abn=ABN)
    version = storage.state_version
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=_work, args=(database, name, barrier)) for name in ("a", "b")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0, 0]

    entries = list(storage.audit_entries())
    assert [e.seq for e in entries] == list(range(1, 2 + 2 * (THREADS * SIGNS + CHANGES)))  # no gap, no duplicate
    assert verify_chain(entries).ok  # no fork: each entry follows the one before
    assert {e.actor for e in entries if e.action == "credential.create"} == {"a", "b"}
    assert storage.state_version == version + 2 * CHANGES  # every process's changes counted
    assert len(storage.list_credentials(abn=ABN)) == 2 * CHANGES
    storage.close()


def test_a_change_by_another_process_reaches_the_cache_at_once(database):
    """A revoke committed through another connection (as by another process) is seen by the
    next read through the cache: the version is read from the database, not kept in memory."""
    mine, theirs = open_storage(database), open_storage(database)
    with theirs.transaction():
        theirs.insert_business(Business(ABN, "Acme", AT))
        theirs.insert_credential(_credential("c-1"))
    cached = CachedRecords(mine)
    assert cached.get_credential("c-1").status is CredentialStatus.ACTIVE
    assert cached.get_credential("c-1").status is CredentialStatus.ACTIVE  # from the cache now
    with theirs.transaction():
        theirs.update_credential("c-1", CredentialStatus.ACTIVE, status=CredentialStatus.REVOKED, revoked_at=AT)
    assert cached.get_credential("c-1").status is CredentialStatus.REVOKED
    mine.close()
    theirs.close()


def test_a_request_reads_the_version_once_and_the_next_request_sees_another_process_change(database):
    """Inside one request (`one_version`) the lookups use the version read when it began, with
    one read of the shared row; a revoke committed by another process meanwhile is enforced
    from the next request on, and a request that began before it never puts its older view
    back into the cache."""
    mine, theirs = open_storage(database), open_storage(database)
    with theirs.transaction():
        theirs.insert_business(Business(ABN, "Acme", AT))
        theirs.insert_credential(_credential("c-1"))
    cached = CachedRecords(mine)
    reads = []
    real = type(mine).state_version

    class Counting(type(mine)):
        @property
        def state_version(self) -> int:
            reads.append(1)
            return real.fget(self)

    mine.__class__ = Counting
    with cached.one_version():
        for _ in range(3):
            assert cached.get_credential("c-1").status is CredentialStatus.ACTIVE
    assert len(reads) == 1  # one read for the whole request, not one per lookup
    with cached.one_version() as before:  # a request still running while the revoke commits
        assert cached.get_credential("c-1").status is CredentialStatus.ACTIVE
        with theirs.transaction():
            theirs.update_credential("c-1", CredentialStatus.ACTIVE, status=CredentialStatus.REVOKED, revoked_at=AT)
        with cached.one_version() as next_request_elsewhere:  # nested: keeps the outer's version
            assert next_request_elsewhere == before
    with cached.one_version() as after:  # the next request
        assert after > before
        assert cached.get_credential("c-1").status is CredentialStatus.REVOKED
    import contextvars

    from mcagent.agent.domain import cache as cache_module

    def old_request() -> CredentialStatus:  # a late request pinned to the old version (another thread) ...
        cache_module._request_version.set((before, mine.commits_here))
        return cached.get_credential("c-1").status

    # ... reads current rows, not the cache's newer entry nor an older one, and keeps nothing
    assert contextvars.copy_context().run(old_request) is CredentialStatus.REVOKED
    assert cached.get_credential("c-1").status is CredentialStatus.REVOKED
    with theirs.transaction():
        theirs.insert_credential(_credential("c-2"))
    with cached.one_version():  # a request that changes state itself then sees its change
        assert cached.get_credential("c-2").status is CredentialStatus.ACTIVE
        with mine.transaction():
            mine.update_credential("c-2", CredentialStatus.ACTIVE, status=CredentialStatus.REVOKED, revoked_at=AT)
        assert cached.get_credential("c-2").status is CredentialStatus.REVOKED
    mine.close()
    theirs.close()


def _start_up(database: str, store_uri: str, pin: str, barrier) -> None:
    """The daemon's start-up steps (agent/server/server.py), in a process of its own."""
    from mcagent.agent.app import build_service
    from mcagent.agent.keys import KeyStores
    from mcagent.hsm import open_keystore

    storage = open_storage(database)
    keys = KeyStores(default_backend=Backend.PKCS11, keystore_files={}, keystore_password=None,
                     pkcs11=open_keystore(store_uri, pin))
    service = build_service(storage, keys)
    barrier.wait()
    assert service.check_audit_anchor() == ""
    service.checkpoint_audit()
    service.finish_interrupted_work()
    service.ensure_ca()
    service.record_due_reminders()
    service.close()
    storage.close()


def test_two_processes_starting_at_once_create_the_ca_and_audit_key_once(database, fresh_token):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=_start_up, args=(database, fresh_token.store_uri, fresh_token.pin, barrier))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0, 0]

    storage = open_storage(database)
    entries = list(storage.audit_entries())
    actions = [e.action for e in entries]
    assert actions.count("ca.init") == 1 and "audit.tampering-detected" not in actions
    assert actions.count("audit.checkpoint") >= 2 and verify_chain(entries).ok
    assert set(storage.ca()) == {"root", "issuing"}
    listing = pkcs11_tool(fresh_token, "--list-objects", "--type", "privkey")  # another process: a fresh view
    assert listing.returncode == 0, listing.stderr
    for label in ("mcagent-audit", "mcagent-ca-issuing", "mcagent-ca-root"):
        assert len(objects_by_label(listing.stdout, label)) == 1, listing.stdout  # each made once
    storage.close()
