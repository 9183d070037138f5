"""The `Records` and `AuditLog` ports' contract, run on both engines (the `database` fixture:
a SQLite file, then a fresh PostgreSQL database). SQLite-only matters (pragmas, user_version,
backups) are in test_storage.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

import pytest
from mcagent.agent.domain.audit import GENESIS, entry_hash, verify_chain
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import Aborted, FailedPrecondition, Unavailable
from mcagent.agent.domain.model import Backend, Business, Credential, Principal, Reminder
from mcagent.agent.domain.notification import Notification, NotificationStatus
from mcagent.agent.domain.policy import MCA, PA
from mcagent.agent.storage import SqlAuditLog, open_storage
from mcagent.hsm.base import KeyType

AT = dt.datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
ABN, DSP = "51824753556", "53004085616"


@pytest.fixture
def records(database):
    storage = open_storage(database)
    with storage.transaction():
        storage.insert_business(Business(ABN, "Acme", AT))
        storage.insert_business(Business(DSP, "Cloud DSP", AT))
        storage.insert_principal(Principal("p-1", "alice", 4_000_000_000, "CN=alice", AT), "hash-1", "admin")
    yield storage
    storage.close()


def _credential(credential_id: str, **fields) -> Credential:
    values = dict(id=credential_id, abn=ABN, name=credential_id, status=CredentialStatus.ACTIVE,
                  key_type=KeyType.EC_P256, backend=Backend.PKCS11, key_uri=f"pkcs11:object={credential_id}",
                  created_at=AT, created_by="alice", terms_version="t1")
    return Credential(**{**values, **fields})


def _insert(records, *credentials: Credential) -> None:
    with records.transaction():
        for credential in credentials:
            records.insert_credential(credential)


# -- the unit of work -------------------------------------------------------------------------------


def test_a_failed_inner_transaction_rolls_back_only_itself(records):
    version = records.state_version
    with records.transaction():
        first = records.append_audit(at=AT, actor="a", action="outer", outcome="allowed")
        with pytest.raises(ValueError), records.transaction():
            records.insert_business(Business("83914571673", "Gone", AT))
            records.append_audit(at=AT, actor="a", action="inner", outcome="allowed")
            raise ValueError("inner fails")
        with records.transaction(changes_state=False):
            second = records.append_audit(at=AT, actor="a", action="outer-again", outcome="allowed")
    assert records.get_business("83914571673") is None
    assert [e.action for e in records.audit_entries()] == ["outer", "outer-again"]
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.hash)  # no gap where the inner was
    assert records.state_version == version + 1  # counted once, at the outer commit


def test_a_failed_transaction_keeps_nothing_and_audit_only_ones_keep_the_version(records):
    version = records.state_version
    with pytest.raises(ValueError), records.transaction():
        records.insert_business(Business("83914571673", "Gone", AT))
        records.append_audit(at=AT, actor="a", action="x", outcome="allowed")
        raise ValueError("fails")
    assert records.get_business("83914571673") is None and records.audit_head() == (0, GENESIS)
    with records.transaction(changes_state=False):
        records.append_audit(at=AT, actor="a", action="x", outcome="allowed")
    assert records.state_version == version and records.audit_head()[0] == 1


def test_a_lock_is_held_until_the_transaction_ends(records, database):
    other = open_storage(database)
    events: list[str] = []

    def contend() -> None:
        with other.transaction():
            other.lock("ca")
            events.append("other has it")

    with records.transaction():
        records.lock("ca")
        thread = threading.Thread(target=contend)
        thread.start()
        time.sleep(0.5)
        events.append("first commits")
    thread.join(15)
    assert events == ["first commits", "other has it"]
    other.close()


# -- businesses, principals, roles ------------------------------------------------------------------


def test_businesses_principals_and_roles(records):
    with records.transaction():
        assert not records.insert_business(Business(ABN, "Again", AT))  # registered once
        assert records.grant_role(ABN, "p-1", MCA, AT, "admin")
        assert not records.grant_role(ABN, "p-1", MCA, AT, "admin")
        assert records.grant_role(DSP, "p-1", PA, AT, "admin")
    assert [b.name for b in records.list_businesses()] == ["Acme", "Cloud DSP"]
    assert records.get_business(ABN).registered_at == AT
    for column, value in (("name", "alice"), ("uid", 4_000_000_000), ("certificate_subject", "CN=alice"),
                          ("token_hash", "hash-1"), ("id", "p-1")):
        assert records.principal_where(column, value).id == "p-1"
    assert records.principal_where("name", "bob") is None
    assert records.roles_of(ABN, "p-1") == {MCA}
    assert sorted((g.abn, g.principal_name, g.role.value) for g in records.role_grants(principal_id="p-1")) == [
        (ABN, "alice", MCA.value), (DSP, "alice", PA.value)]
    with records.transaction():
        assert records.remove_role(ABN, "p-1", MCA)
        assert not records.remove_role(ABN, "p-1", MCA)
    assert records.roles_of(ABN, "p-1") == set()


# -- credentials --------------------------------------------------------------------------------------


def test_a_credential_with_every_field_round_trips(records):
    full = _credential("c-1", status=CredentialStatus.UNASSIGNED, holder_id="p-1", holder_name="alice",
                       unassigned_at=AT, revoked_at=AT, revoked_by="bob", key_destroyed=True, first_used_at=AT,
                       permissions=("sign",), certificate_chain=(b"\x30\x82\x00leaf", b"ca"), issued_by_agent=True)
    _insert(records, _credential("c-1", holder_id="p-1"))
    changed = {f.name: getattr(full, f.name) for f in dataclasses.fields(full)
               if f.name not in ("id", "holder_name", "status", "abn", "created_at")}
    with records.transaction():
        records.update_credential("c-1", CredentialStatus.ACTIVE, status=CredentialStatus.UNASSIGNED, **changed)
    assert records.get_credential("c-1") == full
    with pytest.raises(Aborted, match="changed while being updated"), records.transaction():
        records.update_credential("c-1", CredentialStatus.ACTIVE, status=CredentialStatus.REVOKED)


def test_credentials_are_listed_filtered_and_paged(records):
    later = AT + dt.timedelta(seconds=1)
    _insert(records, _credential("c-1"), _credential("c-2", created_at=later, holder_id="p-1"),
            _credential("c-3", abn=DSP, created_at=later), _credential("c-4", status=CredentialStatus.CREATING))
    assert [c.id for c in records.list_credentials()] == ["c-1", "c-4", "c-2", "c-3"]
    assert [c.id for c in records.list_credentials(abn=ABN, holder_id="p-1")] == ["c-2"]
    assert [c.id for c in records.list_credentials(abns=[DSP])] == ["c-3"]
    assert [c.id for c in records.list_credentials(status=CredentialStatus.CREATING)] == ["c-4"]
    assert [c.id for c in records.list_credentials(key_destroyed=False, name="c-1")] == ["c-1"]
    first = records.list_credentials(page=(None, 2))
    assert [c.id for c in first] == ["c-1", "c-2"]  # never one being created
    after = (first[-1].created_at.isoformat(timespec="microseconds"), first[-1].id)
    assert [c.id for c in records.list_credentials(page=(after, 2))] == ["c-3"]
    with records.transaction():
        assert records.revoked_among({"c-1", "c-2"}) == set()
        records.update_credential("c-2", CredentialStatus.ACTIVE, status=CredentialStatus.REVOKED)
        records.delete_credential("c-4")
    assert records.revoked_among({"c-1", "c-2", "nope"}) == {"c-2"}
    assert records.get_credential("c-4") is None


def test_a_reminder_is_recorded_once(records):
    _insert(records, _credential("c-1"))
    with records.transaction():
        assert records.insert_reminder(Reminder("c-1", 30, AT, ("alice",)))
        assert not records.insert_reminder(Reminder("c-1", 30, AT, ("bob",)))
        assert records.insert_reminder(Reminder("c-1", 53, AT, ()))
    assert [(r.day, r.recipients) for r in records.reminders("c-1")] == [(30, ("alice",)), (53, ())]
    with records.transaction():
        records.delete_reminders("c-1")
    assert records.reminders("c-1") == []


# -- the CA and notifications ---------------------------------------------------------------------------


def test_the_ca_and_its_crl(records):
    with records.transaction():
        records.insert_ca("root", "pkcs11:object=r", "rsa-2048", b"\x30\x82root\x00", AT)
        records.insert_ca("issuing", "pkcs11:object=i", "rsa-2048", b"\x30\x82issuing", AT)
        assert [records.next_crl_number() for _ in range(2)] == [1, 2]
    assert records.ca()["root"]["certificate"] == b"\x30\x82root\x00"
    _insert(records, _credential("c-1", status=CredentialStatus.REVOKED))
    with records.transaction():
        records.update_credential("c-1", CredentialStatus.REVOKED, certificate_chain=(b"leaf",), revoked_at=AT,
                                  certificate_serial="12345", issued_by_agent=2)
    assert records.undecided_crl_membership() == [("c-1", b"leaf")]
    with records.transaction():
        records.set_issued_by_agent("c-1", True)
    assert records.undecided_crl_membership() == []
    assert records.revoked_agent_certificates() == [(12345, AT)]


def test_notifications_are_saved_again_in_place(records):
    notification = Notification(
        id="n-1", abn=ABN, dsp_abn=DSP, software_ids=("1234567890",), start_date=dt.date(2026, 12, 1),
        end_date=None, agencies=("OSIR",), status=NotificationStatus.ACTIVE, created_at=AT, created_by="alice")
    with records.transaction():
        records.save_notification(notification)
        records.save_notification(dataclasses.replace(notification, end_date=dt.date(2027, 1, 1)))
    assert records.get_notification("n-1").end_date == dt.date(2027, 1, 1)
    assert [n.id for n in records.list_notifications([DSP])] == ["n-1"]
    assert records.list_notifications(["83914571673"]) == []


# -- the audit log --------------------------------------------------------------------------------------


def test_the_audit_log_is_one_append_only_chain(records):
    audit = SqlAuditLog(records)
    with records.transaction(changes_state=False):
        records.append_audit(at=AT, actor="a", action="business.register", outcome="allowed", abn=ABN)
    _insert(records, _credential("c-1"), _credential("c-2", status=CredentialStatus.REVOKED))
    sign = dict(at=AT, actor="a", action="credential.sign", outcome="allowed", abn=DSP)
    built = []  # the alternative is built only for the revoked credential

    def withheld() -> dict:
        built.append(1)
        return {**sign, "outcome": "withheld"}

    written = audit.append_many([{**sign, "unless_revoked": "c-1", "if_revoked": withheld},
                                 {**sign, "unless_revoked": "c-2", "if_revoked": withheld}])
    assert len(built) == 1
    assert [e.outcome for e in written] == ["allowed", "withheld"]
    checkpoint = audit.append_signed(lambda seq, head: dict(at=AT, actor="a", action="audit.checkpoint",
                                                            outcome="allowed", detail={"signed": [seq, head]}))
    assert checkpoint.detail["signed"] == [3, written[-1].hash]
    entries = list(audit.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4] and verify_chain(entries).ok
    assert all(entry_hash(e) == e.hash for e in entries)
    assert audit.head() == (4, checkpoint.hash)
    assert audit.newest("credential.sign").seq == 3
    assert [e.seq for e in audit.page(abn=DSP, after=2, limit=5)] == [3]
    assert [e.seq for e in audit.page(abn=None, after=1, limit=2)] == [2, 3]
    audit.close()
    for statement in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"), records.transaction():
            records._execute(statement)
    assert len(list(records.audit_entries())) == 4


def test_group_commits_hand_back_every_entry_and_every_failure(records):
    """Many threads appending at once share commits (the appender may wait a moment before a
    lone one); each caller gets its own entries back, on a waiter its thread reuses, and a
    failed commit reaches every caller of its batch without leaving a waiter behind."""
    audit = SqlAuditLog(records)
    got: dict[int, list[int]] = {}

    def append(thread: int) -> None:
        got[thread] = [audit.append_many([dict(at=AT, actor=f"t{thread}", action="credential.sign",
                                               outcome="allowed", detail={"n": n})])[0].seq for n in range(25)]

    threads = [threading.Thread(target=append, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(seq for seqs in got.values() for seq in seqs) == list(range(1, 151))
    assert all(seqs == sorted(seqs) for seqs in got.values())  # a thread's own appends stay in order
    entries = list(audit.entries())
    assert verify_chain(entries).ok
    assert all(e.detail["n"] == got[int(e.actor[1:])].index(e.seq) for e in entries)
    with pytest.raises(TypeError):  # a field the entry does not have: the commit fails, nothing is kept
        audit.append_many([dict(at=AT, actor="a", action="x", outcome="allowed", colour="red")])
    assert audit.append_many([dict(at=AT, actor="a", action="x", outcome="allowed")])[0].seq == 151
    audit.close()


# -- engine specifics behind the same port ----------------------------------------------------------------


def test_backups_are_sqlite_only(records):
    if records.engine == "sqlite":
        records.snapshot().close()
    else:
        with pytest.raises(FailedPrecondition, match="pg_dump"):
            records.snapshot()


def test_an_unreachable_postgresql_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="cannot reach the PostgreSQL database"):
        open_storage(f"postgresql://nobody@/nothing?host={tmp_path}&connect_timeout=2")


def test_connections_the_server_dropped_are_replaced(postgres_url):
    """PostgreSQL only: a fail-over or restart drops pooled connections; reads and new
    transactions go on, on new ones."""
    import psycopg

    records = open_storage(postgres_url)
    with records.transaction():
        records.insert_business(Business(ABN, "Acme", AT))
        records.append_audit(at=AT, actor="a", action="x", outcome="allowed")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert dropped >= 1
    assert records.get_business(ABN).name == "Acme"
    admin = psycopg.connect(postgres_url, autocommit=True)
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    admin.close()
    with records.transaction():
        records.append_audit(at=AT, actor="a", action="after", outcome="allowed")
    assert records.audit_head()[0] == 2 and records.health_problem() is None
    records.close()


def test_an_alias_moves_only_from_the_credential_it_names_and_local_flags_toggle(records):
    alias = f"ABRD:{ABN}_server"
    _insert(records, _credential("c-1"), _credential("c-2"), _credential("c-3"))
    with records.transaction():
        assert records.point_alias(alias, "c-1", None, AT)
        assert not records.point_alias(alias, "c-2", None, AT)  # a row exists: only a move may change it
    with records.transaction():
        assert not records.point_alias(alias, "c-3", "c-2", AT)  # someone else moved it first
        assert records.point_alias(alias, "c-2", "c-1", AT)
    assert records.alias_target(alias) == "c-2" and records.alias_target(f"ABRD:{DSP}_x") is None
    assert records.aliases_of(["c-1", "c-2", "c-3"]) == {"c-2": alias} and records.aliases_of([]) == {}
    with records.transaction():
        records.set_local("c-3", True, AT, "alice")
        records.set_local("c-3", True, AT, "alice")  # again: still one flag
    assert records.is_local("c-3") and not records.is_local("c-2")
    with records.transaction():
        records.set_local("c-3", False, AT, "alice")
    assert not records.is_local("c-3")
