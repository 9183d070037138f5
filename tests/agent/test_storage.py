"""The storage package: row codecs, schema migrations (yoyo), nested transactions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import pathlib
import sqlite3

import pytest
from mcagent.agent.domain.audit import GENESIS, AuditEntry, entry_hash
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import Aborted
from mcagent.agent.domain.model import Backend, Business, Credential, Principal
from mcagent.agent.domain.notification import Notification, NotificationStatus
from mcagent.agent.storage import MIGRATIONS, SchemaTooNew, Storage, rows
from mcagent.agent.storage.migrate import migrations
from mcagent.hsm.base import KeyType

AT = dt.datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "storage_82876dd.sql"


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "mcagent.db")


def _raw(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


# -- row codecs -------------------------------------------------------------------------------------


def test_credential_with_every_field_set_round_trips():
    credential = Credential(
        id="c-1", abn="51824753556", name="server-1", status=CredentialStatus.UNASSIGNED,
        key_type=list(KeyType)[-1], backend=Backend.PKCS11, key_uri="pkcs11:token=t;id=%01;object=c-1",
        created_at=AT, created_by="alice", terms_version="2024-01-01", holder_id="p-1", holder_name="alice",
        unassigned_at=AT + dt.timedelta(days=1), revoked_at=AT + dt.timedelta(days=2), revoked_by="bob",
        key_destroyed=True, first_used_at=AT + dt.timedelta(hours=1), permissions=("sign", "renew"),
        certificate_chain=(b"\x30\x82leaf", b"\x30\x82ca"), issued_by_agent=True,
    )
    assert all(getattr(credential, f.name) not in (None, (), False) for f in dataclasses.fields(credential))
    row = {**rows.credential_columns(credential), "holder_name": "alice"}
    assert rows.credential(row) == credential


def test_credential_never_used_keeps_full_permissions():
    credential = Credential(id="c", abn="51824753556", name="n", status=CredentialStatus.ACTIVE,
                            key_type=list(KeyType)[0], backend=Backend.FILE, key_uri="file:x", created_at=AT,
                            created_by="a", terms_version="t")
    row = {**rows.credential_columns(credential), "holder_name": None}
    assert row["permissions"] is None and row["certificate_chain"] == "[]"
    assert rows.credential(row) == credential


def test_principal_business_notification_and_audit_round_trip():
    principal = Principal("p-1", "alice", 1000, "CN=alice,O=51824753556", AT)
    assert rows.principal({"id": "p-1", "name": "alice", "uid": 1000, "certificate_subject": "CN=alice,O=51824753556",
                           "created_at": rows.ts(AT)}) == principal
    business = Business("51824753556", "Acme", AT)
    assert rows.business({"abn": "51824753556", "name": "Acme", "registered_at": rows.ts(AT)}) == business

    notification = Notification(
        id="n-1", abn="51824753556", dsp_abn="53004085616", software_ids=("1234567890", "0987654321"),
        start_date=dt.date(2026, 12, 1), end_date=dt.date(2027, 12, 1), agencies=("OSIR",),
        status=NotificationStatus.ACTIVE, created_at=AT, created_by="alice", requested_by="dsp",
        declaration_by="alice", declaration_at=AT, removed_at=AT, removed_by="bob")
    assert all(getattr(notification, f.name) is not None for f in dataclasses.fields(notification))
    row = dict(zip(rows.NOTIFICATION_COLUMNS, rows.notification_values(notification), strict=True))
    assert rows.notification(row) == notification

    entry = AuditEntry(seq=7, at=AT, actor="alice", action="credential.sign", outcome="allowed", abn="51824753556",
                       target="c-1", detail={"b": [1, 2], "a": "x"}, prev_hash=GENESIS, hash="")
    entry = dataclasses.replace(entry, hash=entry_hash(entry))
    row = dict(zip(rows.AUDIT_COLUMNS, rows.audit_values(entry), strict=True))
    assert rows.audit(row) == entry


def test_times_are_stored_in_utc_with_microseconds():
    sydney = dt.timezone(dt.timedelta(hours=10))
    assert rows.ts(AT.astimezone(sydney)) == "2026-11-01T09:30:15.123456+00:00"
    assert rows.parse_ts(rows.ts(AT)) == AT
    assert rows.ts(None) is None and rows.parse_ts(None) is None


# -- migrations -------------------------------------------------------------------------------------


def test_migration_files_are_numbered_in_order():
    ids = [m.id for m in migrations()]
    assert [int(i.split("_")[0]) for i in ids] == list(range(1, len(ids) + 1))
    assert len(MIGRATIONS) == len(ids)


def test_a_fresh_database_gets_every_migration(db):
    Storage(db).close()
    conn = _raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    applied = [r["migration_id"] for r in conn.execute("SELECT migration_id FROM _yoyo_migration")]
    assert sorted(applied) == [m.id for m in migrations()]
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(credential)")}
    assert {"holder_id", "certificate_chain", "issued_by_agent"} <= columns
    # The append-only triggers (BEGIN ... END bodies) came through yoyo's statement splitting whole.
    triggers = {r["name"] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {"audit_append_only_update", "audit_append_only_delete"}
    storage = Storage(db)
    with storage.transaction():
        storage.append_audit(at=AT, actor="a", action="x", outcome="allowed")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'b'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
    storage.close()


def test_opening_again_changes_nothing(db):
    Storage(db).close()
    log = _raw(db).execute("SELECT COUNT(*) FROM _yoyo_log").fetchone()[0]
    Storage(db).close()
    assert _raw(db).execute("SELECT COUNT(*) FROM _yoyo_log").fetchone()[0] == log


def test_a_database_of_the_previous_release_migrates(db):
    old = _raw(db)
    old.executescript(FIXTURE.read_text())
    assert old.execute("PRAGMA user_version").fetchone()[0] == 4
    old.close()

    storage = Storage(db)
    conn = _raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    log = [(r["migration_id"], r["operation"]) for r in conn.execute("SELECT * FROM _yoyo_log ORDER BY created_at_utc")]
    ids = [m.id for m in migrations()]
    assert sorted(i for i, op in log if op == "mark") == ids[:4]  # recorded, not run again
    assert sorted(i for i, op in log if op == "apply") == ids[4:]

    assert [b.name for b in storage.list_businesses()] == ["Acme Pty Ltd", "Cloud DSP"]
    assert storage.principal_where("name", "alice").uid == 1000
    first = storage.get_credential("c-1")
    assert (first.holder_name, first.permissions, first.certificate_chain) == ("alice", ("sign",),
                                                                              (b"leaf-der", b"ca-der"))
    assert first.first_used_at == dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)
    # 0005: an installed certificate's CRL membership is to be decided at start-up; an issued one stays.
    assert storage.undecided_crl_membership() == [("c-1", b"leaf-der")]
    assert storage.get_credential("c-2").issued_by_agent
    assert storage.get_notification("n-1").software_ids == ("1234567890",)
    entries = list(storage.audit_entries())
    assert [e.seq for e in entries] == [1, 2] and entries[1].prev_hash == entries[0].hash
    assert all(entry_hash(e) == e.hash for e in entries)
    with storage.transaction():  # the chain goes on from the old head
        assert storage.append_audit(at=AT, actor="a", action="x", outcome="allowed").prev_hash == entries[1].hash
    storage.close()


def test_a_database_newer_than_this_mcagent_is_refused(db):
    Storage(db).close()
    _raw(db).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew, match=f"newer than this mcagent \\({len(MIGRATIONS)}\\)"):
        Storage(db)


def test_a_database_with_a_migration_this_mcagent_lacks_is_refused(db):
    Storage(db).close()
    _raw(db).execute("INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc)"
                     " VALUES ('x', '9999_from_the_future', '2030-01-01')")
    with pytest.raises(SchemaTooNew, match="9999_from_the_future"):
        Storage(db)


def test_user_version_is_the_version_of_record(db):
    """A lowered user_version runs the migrations above it again (as the CRL e2e test relies on)."""
    storage = Storage(db)
    with storage.transaction():
        storage.insert_business(Business("51824753556", "Acme", AT))
    storage.close()
    conn = _raw(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    Storage(db).close()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    applied = [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_log WHERE operation = 'apply'")]
    assert applied.count(migrations()[-1].id) == 2


def _open(path: str, barrier) -> None:
    barrier.wait()
    Storage(path).close()


def test_two_processes_opening_a_new_database_at_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        path = str(tmp_path / f"mcagent-{attempt}.db")
        barrier = context.Barrier(2)
        processes = [context.Process(target=_open, args=(path, barrier)) for _ in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
        assert [p.exitcode for p in processes] == [0, 0]
        conn = _raw(path)
        applied = [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_log WHERE operation = 'apply'")]
        assert sorted(applied) == [m.id for m in migrations()]  # each ran once
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT COUNT(*) FROM yoyo_lock").fetchone()[0] == 0


# -- transactions -------------------------------------------------------------------------------------


def _abns(storage: Storage) -> list[str]:
    return [b.abn for b in storage.list_businesses()]


def test_a_nested_transaction_joins_the_outer_one(db):
    storage = Storage(db)
    version = storage.state_version
    with storage.transaction(changes_state=False):
        storage.insert_business(Business("51824753556", "Acme", AT))
        with storage.transaction():
            storage.insert_business(Business("53004085616", "DSP", AT))
        assert _raw(db).execute("SELECT COUNT(*) FROM business").fetchone()[0] == 0  # nothing durable yet
    assert _abns(storage) == ["51824753556", "53004085616"]
    assert storage.state_version == version + 1  # the inner one changed state: counted once, at the commit
    storage.close()


def test_a_failed_inner_transaction_rolls_back_only_itself(db):
    storage = Storage(db)
    with storage.transaction():
        storage.insert_business(Business("51824753556", "Acme", AT))
        first = storage.append_audit(at=AT, actor="a", action="outer", outcome="allowed")
        with pytest.raises(ValueError), storage.transaction():
            storage.insert_business(Business("53004085616", "DSP", AT))
            storage.append_audit(at=AT, actor="a", action="inner", outcome="allowed")
            raise ValueError("inner fails")
        second = storage.append_audit(at=AT, actor="a", action="outer-again", outcome="allowed")
    assert _abns(storage) == ["51824753556"]
    entries = list(storage.audit_entries())
    assert [e.action for e in entries] == ["outer", "outer-again"]
    assert (second.seq, second.prev_hash) == (2, first.hash)  # the chain has no gap where the inner was
    storage.close()


def test_a_failed_outer_transaction_rolls_back_its_inner_ones(db):
    storage = Storage(db)
    with pytest.raises(ValueError), storage.transaction():
        with storage.transaction():
            storage.insert_business(Business("53004085616", "DSP", AT))
        raise ValueError("outer fails")
    assert _abns(storage) == []
    with storage.transaction():  # and the storage is usable afterwards
        storage.insert_business(Business("51824753556", "Acme", AT))
    assert _abns(storage) == ["51824753556"]
    storage.close()


def test_an_update_that_lost_a_race_is_aborted(db):
    storage = Storage(db)
    with storage.transaction():
        storage.insert_business(Business("51824753556", "Acme", AT))
        storage.insert_credential(Credential(id="c-1", abn="51824753556", name="n", status=CredentialStatus.ACTIVE,
                                             key_type=list(KeyType)[0], backend=Backend.FILE, key_uri="file:x",
                                             created_at=AT, created_by="a", terms_version="t"))
    with pytest.raises(Aborted, match="changed while being updated.*retry"), storage.transaction():
        storage.update_credential("c-1", CredentialStatus.UNASSIGNED, status=CredentialStatus.REVOKED)
    assert storage.get_credential("c-1").status is CredentialStatus.ACTIVE
    storage.close()
