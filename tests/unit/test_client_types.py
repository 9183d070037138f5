"""The client library without a daemon: the error tree, enum names, dataclass conversion."""

import dataclasses
import datetime as dt

import grpc
import mcagent.client as mc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.client import types as t
from mcagent.client.convert import from_pb, to_pb_enum
from mcagent.client.errors import error_for


@pytest.mark.parametrize("code, cls", [
    (grpc.StatusCode.INVALID_ARGUMENT, mc.InvalidArgument), (grpc.StatusCode.NOT_FOUND, mc.NotFound),
    (grpc.StatusCode.PERMISSION_DENIED, mc.PermissionDenied), (grpc.StatusCode.UNAVAILABLE, mc.Unavailable),
    (grpc.StatusCode.FAILED_PRECONDITION, mc.FailedPrecondition),
    (grpc.StatusCode.UNAUTHENTICATED, mc.Unauthenticated), (grpc.StatusCode.ALREADY_EXISTS, mc.AlreadyExists),
    (grpc.StatusCode.ABORTED, mc.McagentError),
])
def test_each_status_code_has_its_class_under_one_root(code, cls):
    error = error_for(code, "what was wrong")
    assert type(error) is cls and isinstance(error, mc.McagentError)
    assert error.code is code and error.details == "what was wrong" and str(error) == f"{code.name}: what was wrong"
    assert type(error_for(code.value[0], "x")) is cls  # SignBatch reports numbers


def test_enums_round_trip_by_name_and_value():
    assert to_pb_enum(t.Algorithm, "rsa-pss-sha256") == pb.SIGNATURE_ALGORITHM_RSA_PSS_SHA256
    assert to_pb_enum(t.KeyType, t.KeyType.EC_P256) == pb.KEY_TYPE_EC_P256
    assert to_pb_enum(t.Role, None) == 0
    with pytest.raises(mc.ClientConfigError, match="rsa-2048"):
        to_pb_enum(t.KeyType, "rsa-1024")


def test_messages_become_frozen_dataclasses():
    at = Timestamp()
    at.FromDatetime(dt.datetime(2026, 11, 28, 1, 2, 3))
    message = pb.Credential(id="c1", abn="51824753556", key_type=pb.KEY_TYPE_EC_P256, created_at=at,
                            reminders=[pb.Reminder(day=30, recipients=["bob"])],
                            permissions=pb.PermissionSet(permissions=["p1"]))
    credential = from_pb(t.Credential, message)
    assert credential.key_type is t.KeyType.EC_P256 and credential.backend is None
    assert credential.created_at == dt.datetime(2026, 11, 28, 1, 2, 3, tzinfo=dt.UTC)
    assert credential.revoked_at is None and credential.permissions == ("p1",)
    assert credential.reminders == (t.Reminder(day=30, recorded_at=None, recipients=("bob",)),)
    assert from_pb(t.Credential, pb.Credential()).permissions is None  # unset: before first use
    with pytest.raises(dataclasses.FrozenInstanceError):
        credential.id = "c2"
    result = from_pb(t.BatchResult, pb.SignBatchResult(code=7, error="no"))
    assert result.code is grpc.StatusCode.PERMISSION_DENIED and not result.ok


def test_from_env_defaults_and_precedence(tmp_path):
    (tmp_path / "token").write_text("tok\n")
    assert mc.Connection.from_env(environ={"MCAGENT_SOCKET": "/s"}).target == "unix:/s"
    assert mc.Connection.from_env(environ={"MCAGENT_TOKEN": "env"}, token_file=str(tmp_path / "token")).token == "tok"
    assert mc.Connection.from_env(environ={}, token="t").metadata == (("authorization", "Bearer t"),)
    # --socket (an explicit socket) wins over MCAGENT_ADDRESS
    assert mc.Connection.from_env(socket="/x", environ={"MCAGENT_ADDRESS": "h:1"}).target == "unix:/x"
    with pytest.raises(mc.ClientConfigError, match="MCAGENT_TLS_CERT"):
        mc.Connection.from_env(environ={"MCAGENT_ADDRESS": "h:1"})
    with pytest.raises(mc.ClientConfigError, match="cannot read"):
        mc.Connection.from_env(environ={"MCAGENT_ADDRESS": "h:1", "MCAGENT_TLS_CERT": "/no", "MCAGENT_TLS_KEY": "/no",
                                        "MCAGENT_TLS_CA": "/no"})
    assert mc.PROTO_PATH.read_text().count("service CredentialService") == 1
