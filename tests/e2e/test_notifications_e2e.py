"""Cloud software notifications through the command line against the real daemon."""

from __future__ import annotations

import datetime as dt
import json
import os
import zoneinfo

import pytest

from tests.e2e.conftest import Daemon, restart
from tests.e2e.test_rules_e2e import refused

CLIENT = "51824753556"
DSP = "53004085616"
STRANGER = "83914571673"
SOFTWARE_ID = "1234567890"


def _today() -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo("Australia/Sydney")).date()


def _day(offset: int) -> str:
    return (_today() + dt.timedelta(days=offset)).isoformat()


class World:
    def __init__(self, daemon: Daemon) -> None:
        self.admin = daemon
        self.client_pa = daemon.new_business(CLIENT, "carla", "Client Pty Ltd")
        self.dsp_pa = daemon.new_business(DSP, "dora", "Cloud Payroll Pty Ltd")
        self.stranger_pa = daemon.new_business(STRANGER, "stan", "Stranger Pty Ltd")
        self.client_aa = daemon.new_principal("aaron")
        self.client_pa.ok("role", "grant", "--abn", CLIENT, "--principal", "aaron", "--role",
                          "authorisation-administrator")
        self.client_mca = daemon.new_principal("mia")
        self.client_pa.ok("role", "grant", "--abn", CLIENT, "--principal", "mia", "--role",
                          "machine-credential-administrator")

    def add(self, by: Daemon, *overrides: str, start: str | None = None, declaration: bool = True):
        args = ["notification", "add", "--abn", CLIENT, "--dsp-abn", DSP, "--software-id", SOFTWARE_ID,
                "--start", start or _day(0), "--agency", "osir", *overrides]
        if declaration:
            args.append("--accept-declaration")
        return by.cli(*args, "--json")

    def request(self, by: Daemon, *extra: str):
        return by.cli("notification", "request", "--dsp-abn", DSP, "--abn", CLIENT, "--software-id", SOFTWARE_ID,
                      "--start", _day(1), "--agency", "osir", *extra, "--json")


@pytest.fixture
def world(file_daemon) -> World:
    return World(file_daemon)


def _json(result) -> dict:
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_add_by_pa_or_aa_is_active_with_the_provider_named(world):
    added = _json(world.add(world.client_pa))
    assert added["status"] == "active" and added["dsp_name"] == "Cloud Payroll Pty Ltd"
    assert added["end_date"] == ""  # no end date by default
    assert added["declaration_by"] == "carla"
    by_aa = _json(world.add(world.client_aa, "--software-id", "0987654321", "--end", _day(30)))
    assert by_aa["software_ids"] == [SOFTWARE_ID, "0987654321"] and by_aa["end_date"] == _day(30)
    refused(world.add(world.client_mca), "PERMISSION_DENIED", "mia may not manage the business's cloud software "
            "notifications", "the principal authority or an authorisation administrator")
    refused(world.add(world.stranger_pa), "PERMISSION_DENIED", "stan may not manage", "holds no role there")


@pytest.mark.parametrize(("overrides", "start", "code", "texts"), [
    ([], _day(-1), "INVALID_ARGUMENT", [f"start date {_day(-1)} is in the past; it cannot be back-dated"]),
    (["--end", _day(2)], _day(3), "INVALID_ARGUMENT", [f"end date {_day(2)} is before the start date {_day(3)}"]),
    (["--software-id", "123456789"], None, "INVALID_ARGUMENT", ["software ID '123456789' must be exactly 10 digits"]),
    (["--software-id", "12345678901"], None, "INVALID_ARGUMENT", ["'12345678901' must be exactly 10 digits"]),
    (["--software-id", SOFTWARE_ID], None, "INVALID_ARGUMENT", [f"software ID {SOFTWARE_ID} is given more than once"]),
    (["--agency", "ato"], None, "INVALID_ARGUMENT",
     ["unknown agency 'ato'", "osir (Office of the Student Identifiers Registrar)"]),
    (["--dsp-abn", "12345678901"], None, "INVALID_ARGUMENT", ["ABN '12345678901' is not valid"]),
    (["--dsp-abn", "33102417032"], None, "NOT_FOUND", ["business 33102417032 is not registered"]),
    ([], "27/11/2026", "INVALID_ARGUMENT", ["'27/11/2026' is not a date in the form YYYY-MM-DD"]),
])
def test_refused_adds_say_why_and_create_nothing(world, overrides, start, code, texts):
    refused(world.add(world.client_pa, *overrides, start=start), code, *texts)
    assert _json(world.client_pa.cli("notification", "list", "--json")) == {"notifications": []}


def test_declaration_is_required(world):
    refused(world.add(world.client_pa, declaration=False), "FAILED_PRECONDITION",
            "the declaration must be accepted (--accept-declaration)")


def test_lookup_then_request_then_accept(world):
    assert world.dsp_pa.ok("business", "lookup", "--abn", "51 824 753 556").strip().endswith("Client Pty Ltd")
    requested = _json(world.request(world.dsp_pa))
    assert requested["status"] == "pending" and requested["requested_by"] == "dora"
    notification_id = requested["id"]
    # The client checks the details first; the provider cannot accept its own request.
    shown = _json(world.client_aa.cli("notification", "show", notification_id, "--json"))
    assert shown["dsp_name"] == "Cloud Payroll Pty Ltd" and shown["software_ids"] == [SOFTWARE_ID]
    refused(world.dsp_pa.cli("notification", "accept", notification_id, "--accept-declaration"),
            "PERMISSION_DENIED", "dora may not manage the business's cloud software notifications for business "
            f"{CLIENT}")
    refused(world.client_aa.cli("notification", "accept", notification_id), "FAILED_PRECONDITION",
            "declaration must be accepted")
    refused(world.request(world.stranger_pa), "PERMISSION_DENIED", "stan may not request a cloud software "
            f"notification as the provider for business {DSP}")
    accepted = _json(world.client_aa.cli("notification", "accept", notification_id, "--accept-declaration", "--json"))
    assert accepted["status"] == "active" and accepted["declaration_by"] == "aaron"
    refused(world.client_pa.cli("notification", "accept", notification_id, "--accept-declaration"),
            "FAILED_PRECONDITION", "only a pending request can be accepted")
    # The provider sees its request in its own list.
    assert [n["id"] for n in _json(world.dsp_pa.cli("notification", "list", "--json"))["notifications"]] == [
        notification_id]


def test_edit_software_ids_and_dates_with_the_declaration_again(world):
    notification_id = _json(world.add(world.client_pa))["id"]
    edited = _json(world.client_aa.cli("notification", "edit", notification_id, "--software-id", "5555555555",
                                       "--software-id", "6666666666", "--end", _day(10), "--accept-declaration",
                                       "--json"))
    assert edited["software_ids"] == ["5555555555", "6666666666"] and edited["end_date"] == _day(10)
    assert edited["start_date"] == _day(0) and edited["declaration_by"] == "aaron"
    no_end = _json(world.client_pa.cli("notification", "edit", notification_id, "--no-end", "--accept-declaration",
                                       "--json"))
    assert no_end["end_date"] == ""
    refused(world.client_pa.cli("notification", "edit", notification_id, "--end", _day(5)), "FAILED_PRECONDITION",
            "declaration must be accepted")
    refused(world.client_pa.cli("notification", "edit", notification_id, "--start", _day(-3), "--accept-declaration"),
            "INVALID_ARGUMENT", "cannot be back-dated")
    refused(world.client_pa.cli("notification", "edit", notification_id, "--software-id", "12", "--accept-declaration"),
            "INVALID_ARGUMENT", "must be exactly 10 digits")
    refused(world.dsp_pa.cli("notification", "edit", notification_id, "--end", _day(5), "--accept-declaration"),
            "PERMISSION_DENIED", "dora may not manage")


def test_remove_keeps_it_in_the_history_and_list_by_status(world, start_daemon, faketime):
    keep = _json(world.add(world.client_pa))["id"]
    gone = _json(world.add(world.client_pa, "--software-id", "2222222222"))["id"]
    ending = _json(world.add(world.client_pa, "--software-id", "3333333333", "--end", _day(1)))["id"]
    pending = _json(world.request(world.dsp_pa))["id"]
    refused(world.client_pa.cli("notification", "remove", gone), "FAILED_PRECONDITION", "--yes")
    world.client_aa.ok("notification", "remove", gone, "--yes")
    removed = _json(world.client_pa.cli("notification", "show", gone, "--json"))
    assert removed["status"] == "removed" and removed["removed_by"] == "aaron"

    def ids(daemon, status):
        listed = _json(daemon.cli("notification", "list", "--abn", CLIENT, "--status", status, "--json"))
        return sorted(n["id"] for n in listed["notifications"])

    assert ids(world.client_pa, "removed") == [gone]
    assert ids(world.client_pa, "pending") == [pending]
    assert ids(world.client_pa, "active") == sorted([keep, ending])
    assert ids(world.client_pa, "ended") == []
    refused(world.client_pa.cli("notification", "list", "--status", "gone"), "INVALID_ARGUMENT", "unknown status")
    # Three days on, the one that ended yesterday shows as ended.
    later = restart(world.admin, start_daemon, "+3d", faketime)
    pa = later.as_principal(world.client_pa.token)
    assert ids(pa, "ended") == [ending]
    assert ids(pa, "active") == [keep]


def test_a_notification_grants_no_authority_to_act(world, tmp_path):
    _json(world.add(world.client_pa))
    credential = world.client_mca.ok("credential", "create", "--abn", CLIENT, "--name", "desk", "--key-type",
                                     "ec-p256", "--accept-terms").strip()
    message = tmp_path / "m"
    message.write_bytes(b"x")
    refused(world.dsp_pa.cli("credential", "sign", credential, "--in", str(message), "--out", os.devnull),
            "PERMISSION_DENIED", "dora may not sign", "holds no role there")


def test_every_change_is_audited_with_who_did_it(world):
    notification_id = _json(world.request(world.dsp_pa))["id"]
    world.client_pa.ok("notification", "accept", notification_id, "--accept-declaration")
    world.client_pa.ok("notification", "edit", notification_id, "--end", _day(9), "--accept-declaration")
    world.client_aa.ok("notification", "remove", notification_id, "--yes")
    world.add(world.client_pa, start=_day(-1))
    entries = _json(world.client_pa.cli("audit", "list", "--abn", CLIENT, "--json"))["entries"]
    trail = [(e["actor"], e["action"], e["outcome"]) for e in entries if e["action"].startswith("notification.")]
    assert trail == [("dora", "notification.request", "allowed"), ("carla", "notification.accept", "allowed"),
                     ("carla", "notification.edit", "allowed"), ("aaron", "notification.remove", "allowed"),
                     ("carla", "notification.add", "refused")]
