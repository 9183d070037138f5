"""The command line's edges: --version, did-you-mean, completion, --json shapes and errors, the token notice."""

from __future__ import annotations

import importlib.metadata
import io
import json

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import main as cli_main
from mcagent.cli import output


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli_main.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mcagent {importlib.metadata.version('mcagent')}"


@pytest.mark.parametrize(("argv", "expected"), [
    (["credentail", "list"], "mcagent: error: unknown command 'credentail'; did you mean 'credential'?"),
    (["credential", "lsit"], "mcagent credential: error: unknown command 'lsit'; did you mean 'list'?"),
    (["notifcation"], "mcagent: error: unknown command 'notifcation'; did you mean 'notification'?"),
])
def test_a_mistyped_command_gets_a_suggestion(capsys, argv, expected):
    status, out, err = _main(capsys, *argv)
    assert status == 2 and out == "" and err.strip() == expected
    assert "invalid choice" not in err and "argument group" not in err


def test_an_unrecognisable_command_lists_the_commands(capsys):
    status, _, err = _main(capsys, "zzzzzz")
    assert status == 2 and "unknown command 'zzzzzz' (one of: serve, config, business" in err


def test_a_usage_error_under_json_is_a_json_error(capsys):
    status, out, err = _main(capsys, "--json", "credentail")
    assert status == 2
    assert json.loads(out) == {"error": {"code": "USAGE",
                                         "message": "unknown command 'credentail'; did you mean 'credential'?"}}
    assert "did you mean" in err


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete"), ("zsh", "#compdef mcagent")])
def test_completion_prints_a_script_naming_the_commands(capsys, shell, marker):
    status, out, _ = _main(capsys, "completion", shell)
    assert status == 0 and marker in out and len(out) > 1000
    for word in ("credential", "notification", "--keystore-backend", "--log-format"):
        assert word in out


class _Refused(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.PERMISSION_DENIED

    def details(self):
        return "sw may not revoke credential c-1"


def test_a_refusal_under_json_is_a_json_error_with_the_same_exit_status(capsys, monkeypatch):
    def refuse(ctx):
        raise _Refused()

    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    whoami = next(a for a in parser._actions if a.dest == "group").choices["whoami"]
    whoami.set_defaults(func=refuse)  # the daemon's refusal, without a daemon
    status, out, err = _main(capsys, "whoami", "--json")
    assert status == 1
    assert json.loads(out) == {"error": {"code": "PERMISSION_DENIED", "message": "sw may not revoke credential c-1"}}
    assert err.strip() == "mcagent: error: PERMISSION_DENIED: sw may not revoke credential c-1"
    status, out, err = _main(capsys, "whoami")
    assert status == 1 and out == "" and "PERMISSION_DENIED" in err


def _stamp(seconds: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(seconds)
    return stamp


def test_int64_fields_are_numbers_and_detail_is_an_object():
    entry = pb.AuditEntry(seq=2**40, at=_stamp(1_700_000_000), actor="bob", action="credential.sign",
                          outcome="allowed", detail_json='{"digest_sha256": "ab", "n": 3}')
    page = output.document(pb.ListAuditResponse(entries=[entry], next_after=2**40))
    assert page["next_after"] == 2**40 and type(page["next_after"]) is int
    shaped = page["entries"][0]
    assert shaped["seq"] == 2**40 and shaped["at"] == "2023-11-14T22:13:20Z"
    assert shaped["detail"] == {"digest_sha256": "ab", "n": 3} and "detail_json" not in shaped
    assert shaped["abn"] == "" and shaped["target"] == ""  # every field present
    verified = output.document(pb.VerifyAuditResponse(ok=True, entries=12, checkpoint_seq=10))
    assert verified["entries"] == 12 and verified["checkpoint_seq"] == 10 and verified["bad_seq"] == 0


def test_enums_are_spelled_as_the_flags_spell_them():
    credential = output.document(pb.Credential(id="c-1", key_type=pb.KEY_TYPE_RSA_2048, backend=pb.BACKEND_PKCS11))
    assert credential["key_type"] == "rsa-2048" and credential["backend"] == "pkcs11"
    assert output.document(pb.Credential(id="c-2"))["key_type"] is None  # unspecified
    grant = output.document(pb.RoleGrant(abn="51824753556", principal="carol",
                                         role=pb.ROLE_MACHINE_CREDENTIAL_ADMINISTRATOR))
    assert grant["role"] == "machine-credential-administrator" and grant["granted_at"] is None
    signed = output.document(pb.SignResponse(signature=b"\x01", algorithm=pb.SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256))
    assert signed == {"signature": "AQ==", "algorithm": "rsa-pkcs1-sha256", "certificate_chain": []}


def test_a_credentials_permissions_are_a_list_or_null_before_first_use():
    used = pb.Credential(id="c-1", first_used_at=_stamp(1))
    used.permissions.permissions.extend(["osir.usi", "ato.income-tax"])
    assert output.document(used)["permissions"] == ["osir.usi", "ato.income-tax"]
    fresh = output.document(pb.Credential(id="c-2"))
    assert fresh["permissions"] is None and fresh["first_used_at"] is None and fresh["reminders"] == []


def test_a_principal_without_uid_has_null_uid():
    assert output.document(pb.Principal(name="alice", uid=-1))["uid"] is None
    assert output.document(pb.Principal(name="bob", uid=1001))["uid"] == 1001


@pytest.mark.parametrize("message", [pb.Credential(), pb.Notification(), pb.ListAuditResponse(), pb.RoleGrant(),
                                     pb.PermissionsResponse(), pb.KeystoreEntry(), pb.CreatePrincipalResponse()])
def test_keys_are_snake_case_and_always_present(message):
    keys = output.document(message).keys()
    assert keys and all(key == key.lower() and "-" not in key for key in keys)
    assert len(keys) == len(message.DESCRIPTOR.fields)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_the_token_notice_says_where_the_token_went():
    assert "the token above is shown only once" in output.token_notice("alice", _Stream(tty=True))
    redirected = output.token_notice("alice", _Stream(tty=False))
    assert "above" not in redirected
    assert "bearer token was written to standard output" in redirected and "keep it secret" in redirected
