"""The RAM rules against a real daemon: for each, an allowed case and a refused one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Daemon, restart
from tests.pkcs11_tool import list_objects, objects_by_label

ACME = "51824753556"
OTHER = "53004085616"
MCA_ROLE = "machine-credential-administrator"


def refused(result: subprocess.CompletedProcess, code: str, *texts: str) -> str:
    """Assert a one-line refusal with this status code and these words; return the line."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"error: {code}:" in lines[0], lines[0]
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


def role_pairs(by: Daemon, abn: str) -> set[tuple[str, str]]:
    """The (principal, role) pairs `role list --json` shows for a business, roles spelt as on the command line."""
    grants = json.loads(by.ok("role", "list", "--abn", abn, "--json"))["roles"]
    pairs = {(g["principal"], g["role"]) for g in grants}
    assert len(pairs) == len(grants), grants  # no grant listed twice
    return pairs


@dataclass
class Acme:
    admin: Daemon
    pa: Daemon
    aa: Daemon
    mca: Daemon
    mca2: Daemon
    software: Daemon
    other_pa: Daemon
    message: str

    def create(self, by: Daemon | None = None, name: str = "server-1", *extra: str) -> str:
        return (by or self.mca).ok("credential", "create", "--abn", ACME, "--name", name, "--key-type", "ec-p256",
                                   "--accept-terms", *extra).strip()

    def sign(self, by: Daemon, credential_id: str, *extra: str) -> subprocess.CompletedProcess:
        return by.cli("credential", "sign", credential_id, "--in", self.message, "--out", os.devnull, *extra)

    def show(self, credential_id: str, by: Daemon | None = None) -> dict:
        return json.loads((by or self.pa).ok("credential", "show", credential_id, "--json"))


def build_acme(daemon: Daemon, tmp_path) -> Acme:
    pa = daemon.new_business(ACME, "alice")
    other_pa = daemon.new_business(OTHER, "olga", "Other Pty Ltd")
    team = {name: daemon.new_principal(name) for name in ("aaron", "bob", "carol", "sw")}
    pa.ok("role", "grant", "--abn", ACME, "--principal", "aaron", "--role", "authorisation-administrator")
    pa.ok("role", "grant", "--abn", ACME, "--principal", "bob", "--role", MCA_ROLE)
    team["aaron"].ok("role", "grant", "--abn", ACME, "--principal", "carol", "--role", MCA_ROLE)
    team["aaron"].ok("role", "grant", "--abn", ACME, "--principal", "sw", "--role", "software")
    message = tmp_path / "request.xml"
    message.write_bytes(b"<RequestSecurityToken/>")
    return Acme(daemon, pa, team["aaron"], team["bob"], team["carol"], team["sw"], other_pa, str(message))


@pytest.fixture
def acme(file_daemon, tmp_path) -> Acme:
    return build_acme(file_daemon, tmp_path)


# -- callers and administration ---------------------------------------------------------------


def test_only_the_local_administrator_registers_businesses_and_creates_principals(acme):
    assert "local administrator" in acme.admin.ok("whoami")
    assert acme.pa.ok("whoami").strip() == "alice"
    refused(acme.pa.cli("principal", "create", "mallory"), "PERMISSION_DENIED",
            "only the local administrator may create principals")
    refused(acme.pa.cli("business", "register", "--abn", "83 914 571 673", "--name", "X", "--principal-authority",
                        "alice"), "PERMISSION_DENIED", "only the local administrator may register businesses")
    acme.admin.ok("business", "register", "--abn", "83 914 571 673", "--name", "X", "--principal-authority", "alice")
    refused(acme.admin.cli("principal", "create", "alice"), "ALREADY_EXISTS", "name 'alice' already exists")
    refused(acme.admin.cli("business", "register", "--abn", ACME, "--name", "X", "--principal-authority", "nobody"),
            "NOT_FOUND", "no principal named 'nobody'")


def test_unknown_token_is_unauthenticated(acme):
    refused(acme.admin.as_principal("mcat_not-a-real-token").cli("whoami"), "UNAUTHENTICATED",
            "bearer token is not known")


def test_token_is_stored_only_as_a_hash(acme):
    database = acme.admin.data_dir / "mcagent.db"
    content = database.read_bytes() + (acme.admin.data_dir / "mcagent.db-wal").read_bytes()
    assert acme.pa.token.encode() not in content
    assert acme.pa.token not in acme.admin.log()


def test_terms_must_be_accepted_and_are_recorded(acme):
    terms = acme.mca.ok("terms", "show")
    assert "Machine terms of use, version 2026-11-01" in terms
    refused(acme.mca.cli("credential", "create", "--abn", ACME, "--name", "x"), "FAILED_PRECONDITION",
            "terms of use (version 2026-11-01) must be accepted", "--accept-terms")
    credential = acme.show(acme.create())
    assert credential["terms_version"] == "2026-11-01" and credential["created_by"] == "bob"


# -- roles ------------------------------------------------------------------------------------


def test_who_grants_and_removes_which_roles(acme):
    acme.aa.ok("role", "grant", "--abn", ACME, "--principal", "olga", "--role", "software")
    acme.aa.ok("role", "remove", "--abn", ACME, "--principal", "olga", "--role", "software")
    refused(acme.aa.cli("role", "grant", "--abn", ACME, "--principal", "olga", "--role", "authorisation-administrator"),
            "PERMISSION_DENIED", "aaron may not grant the authorisation administrator role", "the principal authority")
    refused(acme.mca.cli("role", "grant", "--abn", ACME, "--principal", "olga", "--role", "software"),
            "PERMISSION_DENIED", "bob may not grant the software role")
    refused(acme.other_pa.cli("role", "grant", "--abn", ACME, "--principal", "olga", "--role", MCA_ROLE),
            "PERMISSION_DENIED", "olga may not grant", "holds no role there")
    acme.pa.ok("role", "grant", "--abn", ACME, "--principal", "olga", "--role", "authorisation-administrator")
    assert role_pairs(acme.pa, ACME) == {
        ("alice", "principal-authority"), ("aaron", "authorisation-administrator"), ("bob", MCA_ROLE),
        ("carol", MCA_ROLE), ("sw", "software"), ("olga", "authorisation-administrator"),
    }  # olga's software role is gone; she is no PA here
    grants = json.loads(acme.aa.ok("role", "list", "--abn", ACME, "--json"))["roles"]
    assert {g["principal"]: g["granted_by"] for g in grants if g["principal"] in ("olga", "carol")} == {
        "olga": "alice", "carol": "aaron"}
    assert {g["abn"] for g in grants} == {ACME}
    assert role_pairs(acme.other_pa, OTHER) == {("olga", "principal-authority")}


# -- create, sign, revoke ---------------------------------------------------------------------


def test_create_by_pa_or_mca_not_by_aa_or_software(acme):
    acme.create(acme.pa, "by-pa")
    acme.create(acme.mca, "by-mca")
    refused(acme.aa.cli("credential", "create", "--abn", ACME, "--name", "x", "--accept-terms"),
            "PERMISSION_DENIED", "aaron may not create a machine credential for business 51824753556",
            "the principal authority or a machine credential administrator",
            "aaron holds an authorisation administrator")
    refused(acme.software.cli("credential", "create", "--abn", ACME, "--name", "x", "--accept-terms"),
            "PERMISSION_DENIED", "sw may not create a machine credential")


def test_sign_by_business_roles_not_by_another_business(acme):
    credential = acme.create()
    for signer in (acme.pa, acme.aa, acme.mca, acme.software):
        assert acme.sign(signer, credential).returncode == 0
    refused(acme.sign(acme.other_pa, credential), "PERMISSION_DENIED",
            "olga may not sign with a machine credential for business 51824753556", "holds no role there")
    refused(acme.other_pa.cli("credential", "show", credential), "PERMISSION_DENIED")
    assert credential not in acme.other_pa.ok("credential", "list")


def test_revoke_destroys_the_key_and_nothing_reinstates_it(acme):
    credential = acme.create()
    keystore = acme.admin.data_dir / "keystore.mcks"
    assert credential in keystore.read_text()
    refused(acme.software.cli("credential", "revoke", credential, "--yes"), "PERMISSION_DENIED",
            "sw may not revoke a machine credential")
    refused(acme.mca.cli("credential", "revoke", credential), "FAILED_PRECONDITION", "cannot be undone",
            "confirm with --yes")
    acme.aa.ok("credential", "revoke", credential, "--yes")
    shown = acme.show(credential)
    assert shown["status"] == "revoked" and shown["revoked_by"] == "aaron"
    assert credential not in keystore.read_text()  # the key is gone from its backend
    refused(acme.sign(acme.pa, credential), "FAILED_PRECONDITION", f"credential {credential} is revoked",
            "cannot be used or reinstated")
    refused(acme.pa.cli("credential", "revoke", credential, "--yes"), "FAILED_PRECONDITION", "is revoked")
    refused(acme.mca2.cli("credential", "claim", credential), "FAILED_PRECONDITION", "is revoked")


def test_revoke_in_a_token_removes_the_key_objects(pkcs11_daemon, tmp_path, fresh_token):
    acme = build_acme(pkcs11_daemon, tmp_path)
    credential = acme.create()
    assert objects_by_label(list_objects(fresh_token), credential)
    acme.mca.ok("credential", "revoke", credential, "--yes")
    assert objects_by_label(list_objects(fresh_token), credential) == []
    refused(acme.sign(acme.software, credential), "FAILED_PRECONDITION", "is revoked")


# -- permissions and renewal --------------------------------------------------------------------


def test_first_use_then_amended_permissions(acme):
    credential = acme.create()
    shown = acme.show(credential)
    assert shown["first_used_at"] is None and shown["permissions"] is None  # full permissions, not yet visible
    refused(acme.pa.cli("credential", "permissions", credential, "--set", "osir.usi"), "FAILED_PRECONDITION",
            "has not been used yet")
    assert acme.sign(acme.software, credential, "--permission", "ato.income-tax").returncode == 0
    shown = acme.show(credential)
    assert shown["first_used_at"].endswith("Z") and "osir.usi" in shown["permissions"]
    refused(acme.software.cli("credential", "permissions", credential, "--set", "osir.usi"), "PERMISSION_DENIED",
            "sw may not amend a machine credential's permissions")
    # Not even the MCA who created and holds it: RAM gives that to the PA and the AAs only.
    refused(acme.mca.cli("credential", "permissions", credential, "--set", "osir.usi"), "PERMISSION_DENIED",
            "bob may not amend a machine credential's permissions for business 51824753556",
            "the principal authority or an authorisation administrator", "bob holds a machine credential administrator")
    assert acme.show(credential)["permissions"] == shown["permissions"]  # unchanged: still all of them
    refused(acme.pa.cli("credential", "permissions", credential, "--set", "ato.payroll"), "INVALID_ARGUMENT",
            "unknown permission(s) ato.payroll")
    acme.aa.ok("credential", "permissions", credential, "--set", "osir.usi,ato.single-touch-payroll")
    assert acme.sign(acme.software, credential, "--permission", "osir.usi").returncode == 0
    refused(acme.sign(acme.software, credential, "--permission", "ato.income-tax"), "PERMISSION_DENIED",
            f"credential {credential} is not granted permission ato.income-tax",
            "granted: ato.single-touch-payroll, osir.usi")


def test_renewal_takes_over_permissions_and_says_to_revoke_the_old_one(acme):
    old = acme.create(acme.mca, "server-1")
    assert acme.sign(acme.software, old).returncode == 0
    acme.pa.ok("credential", "permissions", old, "--set", "osir.usi")
    renewed = json.loads(acme.mca.ok("credential", "create", "--abn", ACME, "--name", "server-1", "--key-type",
                                     "ec-p256", "--accept-terms", "--json"))
    assert renewed["replaces_id"] == old
    assert f"revoke {old}" in renewed["notice"] and "if it has not expired" in renewed["notice"]
    assert renewed["permissions"] == ["osir.usi"]
    other = json.loads(acme.mca.ok("credential", "create", "--abn", ACME, "--name", "server-2", "--key-type",
                                   "ec-p256", "--accept-terms", "--json"))
    assert other["notice"] is None and other["replaces_id"] is None and other["permissions"] is None


# -- unassigned credentials and the 60-day window -----------------------------------------------


def test_removing_the_holders_mca_role_unassigns_and_another_mca_claims(acme):
    credential = acme.create(acme.mca)
    refused(acme.mca2.cli("credential", "claim", credential), "FAILED_PRECONDITION", "is not unassigned",
            "held by bob")
    removed = acme.aa.ok("role", "remove", "--abn", ACME, "--principal", "bob", "--role", MCA_ROLE)
    assert f"credential {credential} is now unassigned" in removed
    shown = acme.show(credential)
    assert shown["status"] == "unassigned" and shown["display_status"].startswith("suspended")
    assert acme.sign(acme.software, credential).returncode == 0  # still works within the window
    refused(acme.aa.cli("credential", "claim", credential), "PERMISSION_DENIED",
            "aaron may not claim an unassigned machine credential")
    refused(acme.mca.cli("credential", "claim", credential), "PERMISSION_DENIED", "bob may not claim")
    acme.mca2.ok("credential", "claim", credential)
    shown = acme.show(credential)
    assert shown["status"] == "active" and shown["holder"] == "carol" and shown["unassigned_at"] is None


def test_reminders_at_30_and_53_days_and_the_end_of_the_window(acme, start_daemon, faketime):
    credential = acme.create(acme.mca)
    acme.pa.ok("role", "remove", "--abn", ACME, "--principal", "bob", "--role", MCA_ROLE)
    unassigned_at = acme.show(credential)["unassigned_at"][:10]

    later = restart(acme.admin, start_daemon, "+29d", faketime)
    pa = later.as_principal(acme.pa.token)
    assert json.loads(pa.ok("credential", "show", credential, "--json"))["reminders"] == []

    later = restart(later, start_daemon, "+31d", faketime)
    pa = later.as_principal(acme.pa.token)
    reminders = json.loads(pa.ok("credential", "show", credential, "--json"))["reminders"]
    assert [(r["day"], r["recipients"]) for r in reminders] == [(30, ["carol"])]  # the other MCA
    assert "day 30 reminder" in pa.ok("credential", "list", "--abn", ACME)

    later = restart(later, start_daemon, "+54d", faketime)
    pa = later.as_principal(acme.pa.token)
    reminders = json.loads(pa.ok("credential", "show", credential, "--json"))["reminders"]
    assert [r["day"] for r in reminders] == [30, 53]
    assert later.as_principal(acme.software.token).cli(
        "credential", "sign", credential, "--in", acme.message, "--out", os.devnull).returncode == 0

    later = restart(later, start_daemon, "+61d", faketime)
    import datetime as dt

    stopped = (dt.date.fromisoformat(unassigned_at) + dt.timedelta(days=60)).isoformat()
    refused(later.as_principal(acme.software.token).cli("credential", "sign", credential, "--in", acme.message),
            "FAILED_PRECONDITION", f"unassigned on {unassigned_at}", f"stopped working on {stopped}")
    refused(later.as_principal(acme.mca2.token).cli("credential", "claim", credential), "FAILED_PRECONDITION",
            f"claim window for credential {credential} ended on {stopped}")
    assert "unclaimed; stopped working" in later.as_principal(acme.pa.token).ok("credential", "list")


def test_no_reminder_to_the_pa_when_an_mca_remains_but_to_the_pa_when_none(acme, start_daemon, faketime):
    credential = acme.create(acme.mca)
    acme.pa.ok("role", "remove", "--abn", ACME, "--principal", "carol", "--role", MCA_ROLE)
    acme.pa.ok("role", "remove", "--abn", ACME, "--principal", "bob", "--role", MCA_ROLE)
    later = restart(acme.admin, start_daemon, "+31d", faketime)
    reminders = json.loads(later.as_principal(acme.pa.token).ok("credential", "show", credential, "--json"))
    assert [(r["day"], r["recipients"]) for r in reminders["reminders"]] == [(30, ["alice"])]


# -- audit ------------------------------------------------------------------------------------


def test_every_change_sign_and_refusal_is_audited_and_paged(acme):
    credential = acme.create()
    acme.sign(acme.software, credential)
    acme.sign(acme.other_pa, credential)
    entries = json.loads(acme.admin.ok("audit", "list", "--limit", "1000", "--json"))["entries"]
    actions = [(e["actor"], e["action"], e["outcome"]) for e in entries]
    assert ("bob", "credential.create", "allowed") in actions
    assert ("sw", "credential.sign", "allowed") in actions
    assert ("olga", "credential.sign", "refused") in actions
    assert ("aaron", "role.grant", "allowed") in actions
    refusal = next(e for e in entries if e["actor"] == "olga" and e["action"] == "credential.sign")
    assert "holds no role there" in refusal["detail"]["reason"]
    # Paging: two at a time, following the cursor, gives the same entries.
    paged, after = [], 0
    while True:
        page = json.loads(acme.pa.ok("audit", "list", "--abn", ACME, "--limit", "2", "--after", str(after), "--json"))
        paged += page["entries"]
        after = page["next_after"]
        assert type(after) is int  # int64 as a JSON number
        if not after:
            break
    assert [e["seq"] for e in paged] == [e["seq"] for e in entries if e.get("abn") == ACME]
    refused(acme.admin.cli("audit", "list", "--limit", "1001"), "INVALID_ARGUMENT", "at most 1,000 records")
    refused(acme.software.cli("audit", "list", "--abn", ACME), "PERMISSION_DENIED")
    refused(acme.pa.cli("audit", "list"), "PERMISSION_DENIED", "give --abn")


def _tamper(database, statement: str, params: tuple) -> None:
    with sqlite3.connect(database) as conn:  # an attacker with the file also drops the guards
        conn.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_append_only_delete")
        conn.execute(statement, params)


def test_audit_verify_names_an_edited_entry(acme):
    acme.create()
    assert "audit log intact" in acme.admin.ok("audit", "verify")
    refused(acme.pa.cli("audit", "verify"), "PERMISSION_DENIED")
    _tamper(acme.admin.data_dir / "mcagent.db", "UPDATE audit SET actor = ? WHERE seq = ?", ("mallory", 7))
    result = acme.admin.cli("audit", "verify")
    assert result.returncode == 1
    assert "audit log broken at entry 7: entry 7 was changed" in result.stderr.decode()


def test_audit_verify_names_a_removed_entry(acme):
    acme.create()
    _tamper(acme.admin.data_dir / "mcagent.db", "DELETE FROM audit WHERE seq = ?", (5,))
    result = acme.admin.cli("audit", "verify")
    assert result.returncode == 1 and "entry 5 is missing (removed)" in result.stderr.decode()


def test_audit_log_is_append_only_in_the_database(acme):
    with sqlite3.connect(acme.admin.data_dir / "mcagent.db") as conn, pytest.raises(sqlite3.IntegrityError,
                                                                                      match="append-only"):
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 1")


def test_when_the_audit_log_cannot_be_written_the_operation_is_refused(acme):
    credential = acme.create()
    with sqlite3.connect(acme.admin.data_dir / "mcagent.db") as conn:  # the log's storage fails
        conn.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk'); END")
    refused(acme.sign(acme.software, credential), "UNAVAILABLE", "audit")
    refused(acme.mca.cli("credential", "create", "--abn", ACME, "--name", "new", "--accept-terms"), "UNAVAILABLE")
    assert [c["name"] for c in json.loads(acme.pa.ok("credential", "list", "--json"))["credentials"]] == ["server-1"]
