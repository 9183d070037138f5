"""Health tells the truth: NOT_SERVING while the token is away, SERVING once it is back."""

from __future__ import annotations

import json
import os
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import SO_PIN, USER_PIN, require_tool

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(socket: str, service: str = "") -> int:
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=5).status


def _wait_for(socket: str, wanted: int, within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if _status(socket) == wanted:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"health did not become {health_pb2.HealthCheckResponse.ServingStatus.Name(wanted)} "
                         f"within {within:g} s")


def test_token_directory_gone_is_not_serving_within_5s_and_serving_once_back(start_daemon, softhsm, tmp_path):
    # A token of its own (its own SOFTHSM2_CONF): the session's shared token stays where it is.
    util = require_tool("softhsm2-util", "softhsm2")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "MCAGENT_PKCS11_PIN": USER_PIN}
    subprocess.run([util, "--init-token", "--free", "--label", "goes-away", "--pin", USER_PIN, "--so-pin", SO_PIN],
                   check=True, capture_output=True, env={**os.environ, **env})
    (token_dir,) = tokens.iterdir()
    daemon = start_daemon("--keystore-backend", "pkcs11", "--pkcs11-module", softhsm.module,
                          "--pkcs11-token", "goes-away", env=env, secrets=[USER_PIN])
    pa = daemon.new_business("51824753556", "alice")
    credential = pa.ok("credential", "create", "--abn", "51824753556", "--name", "n", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    message = tmp_path / "m"
    message.write_bytes(b"health")
    assert daemon.ok("status").strip() == "SERVING"
    assert json.loads(daemon.ok("status", "--json")) == {"service": "", "status": "SERVING",
                                                         "expiring_within_30_days": []}

    away = tmp_path / "token-away"
    os.rename(token_dir, away)
    took = _wait_for(daemon.socket, NOT_SERVING, within=5.0)
    assert _status(daemon.socket, "mcagent.v1.CredentialService") == NOT_SERVING
    result = daemon.cli("status")
    assert result.returncode == 1 and result.stdout.decode().strip() == "NOT_SERVING"
    assert "NOT_SERVING: token:" in daemon.log()
    refused = pa.cli("credential", "sign", credential, "--in", str(message))
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr.decode()

    os.rename(away, token_dir)
    _wait_for(daemon.socket, SERVING, within=15.0)
    assert _status(daemon.socket, "mcagent.v1.CredentialService") == SERVING
    assert daemon.ok("status").strip() == "SERVING"
    pa.ok("credential", "sign", credential, "--in", str(message), "--out", str(tmp_path / "sig"))
    assert "SERVING again" in daemon.log()
    assert took < 5.0
