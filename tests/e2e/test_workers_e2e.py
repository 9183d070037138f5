"""`mcagent serve --workers N`: a supervisor and N worker processes on one SQLite file and one token."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mcagent.hsm.base import SignatureAlgorithm

from tests.conftest import REPO
from tests.e2e.test_metrics_e2e import _scrape
from tests.verify import verify

pytestmark = pytest.mark.e2e

ABN = "51824753556"
CLIENTS = 4
SIGN_SECONDS = 10.0  # issue #11: 4 clients sign for 10 s
ALGORITHMS = {"rsa-2048": SignatureAlgorithm.RSA_PKCS1_SHA256, "ec-p256": SignatureAlgorithm.ECDSA_SHA256}


def _free_ports(count: int) -> int:
    """A port P with P .. P+count-1 all free now (worker k serves its metrics on P+k-1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free ports")


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return {int(p) for p in fh.read().split()}


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def token(fresh_token) -> str:
    """The label of a token of its own (the session's token holds other daemons' CA and audit keys)."""
    return fresh_token.token


def _start(start_daemon, softhsm, token: str, metrics_port: int, *extra: str):
    daemon = start_daemon("--workers", "2", "--keystore-backend", "pkcs11", "--pkcs11-module", softhsm.module,
                          "--pkcs11-token", token, "--metrics-listen", f"127.0.0.1:{metrics_port}", *extra,
                          env={"MCAGENT_PKCS11_PIN": softhsm.pin}, secrets=[softhsm.pin])
    _wait_for(lambda: "with 2 workers" in daemon.log(), "both workers to serve")
    return daemon


def _signer(daemon):
    pa = daemon.new_business(ABN, "alice")
    credentials = {key_type: pa.ok("credential", "create", "--abn", ABN, "--name", key_type, "--key-type",
                                   key_type, "--accept-terms").strip() for key_type in ALGORITHMS}
    return pa, credentials


def _sign_clients(daemon, token: str, credentials: list[str], seconds: float) -> list[subprocess.Popen]:
    env = {**os.environ, "MCAGENT_TOKEN": token}
    return [subprocess.Popen([sys.executable, "-m", "tests.e2e.sign_client", daemon.socket, str(seconds),
                              *credentials], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(CLIENTS)]


def _results(clients: list[subprocess.Popen]) -> list[dict]:
    lines = []
    for client in clients:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err.decode()
        lines += [json.loads(line) for line in out.decode().splitlines()]
    return lines


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_two_workers_share_the_signing_every_signature_verifies_and_the_chain_holds(start_daemon, softhsm, token,
                                                                                     engine, request):
    metrics_port, tcp_port, crl_port = _free_ports(2), _free_ports(1), _free_ports(1)
    database = ["--database", request.getfixturevalue("postgres_url")] if engine == "postgresql" else []
    daemon = _start(start_daemon, softhsm, token, metrics_port, "--insecure-listen", f"127.0.0.1:{tcp_port}",
                    "--crl-listen", f"127.0.0.1:{crl_port}", *database)
    assert (engine == "sqlite") == (daemon.data_dir / "mcagent.lock").exists()  # one daemon per SQLite file
    workers = _children(daemon.process.pid)
    assert len(workers) == 2
    pa, credentials = _signer(daemon)
    by_id = {credential_id: key_type for key_type, credential_id in credentials.items()}

    results = _results(_sign_clients(daemon, pa.token, list(by_id), SIGN_SECONDS))
    assert [r for r in results if "error" in r] == []
    assert len(results) >= 4 * CLIENTS
    keys = {cid: load_pem_public_key(pa.ok("credential", "public-key", cid).encode()) for cid in by_id}
    for result in results:
        verify(keys[result["credential"]], ALGORITHMS[by_id[result["credential"]]],
               bytes.fromhex(result["data"]), bytes.fromhex(result["signature"]))

    # Each worker counts the signs it made, on its own metrics port, labelled with its pid.
    per_worker = {}
    for port in (metrics_port, metrics_port + 1):
        samples = _scrape(port)
        (pid,) = [int(dict(labels)["pid"]) for (name, labels) in samples if name == "mcagent_worker"]
        per_worker[pid] = sum(value for (name, labels), value in samples.items()
                              if name == "mcagent_signs_total" and dict(labels)["outcome"] == "allowed")
    assert set(per_worker) == workers
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == len(results)

    signs = [e for e in daemon.audit() if e["action"] == "credential.sign" and e["outcome"] == "allowed"]
    assert len(signs) == len(results)
    assert "audit log intact" in daemon.as_principal(None).ok("audit", "verify")

    assert "SERVING" in daemon.as_principal(None).ok("status")
    # One CRL listener, in worker 1 (a second bind of the port would have stopped worker 2).
    with urllib.request.urlopen(f"http://127.0.0.1:{crl_port}/crl", timeout=10) as reply:
        assert reply.status == 200 and reply.headers["Content-Type"] == "application/pkix-crl"
    assert daemon.log().count("CRL published over HTTP") == 1
    # Every worker bound the TCP port too (SO_REUSEPORT) and answers health on it.
    with grpc.insecure_channel(f"127.0.0.1:{tcp_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    assert daemon.stop() == 0
    assert all(not os.path.exists(f"/proc/{pid}") for pid in workers), "a worker outlived SIGTERM"
    log = daemon.log()
    assert "mcagent stopped (all workers)" in log
    assert "worker 1: serving on unix:" in log and "worker 2: serving on unix:" in log  # lines say whose
    assert all(f"(pid {pid})" in log for pid in workers)


def test_a_worker_killed_with_sigkill_is_replaced_and_the_daemon_keeps_serving(start_daemon, softhsm, token):
    daemon = _start(start_daemon, softhsm, token, _free_ports(2))
    pa, credentials = _signer(daemon)
    workers = _children(daemon.process.pid)
    victim = max(workers)
    os.kill(victim, signal.SIGKILL)
    # Meanwhile the other worker serves every new connection.
    for n in range(5):
        result = pa.cli("credential", "sign", credentials["ec-p256"], "--in", "-", input=b"while one is down %d" % n)
        assert result.returncode == 0 and result.stdout, result.stderr.decode()
    _wait_for(lambda: len(_children(daemon.process.pid) - workers) == 1 and "serves again" in daemon.log(),
              "a replacement worker")
    assert f"(pid {victim}) was killed by SIGKILL" in daemon.log()
    replaced = _children(daemon.process.pid)
    assert len(replaced) == 2 and victim not in replaced
    results = _results(_sign_clients(daemon, pa.token, list(credentials.values()), 2.0))
    assert [r for r in results if "error" in r] == []
    assert "audit log intact" in daemon.as_principal(None).ok("audit", "verify")
    assert daemon.stop() == 0
    assert all(not os.path.exists(f"/proc/{pid}") for pid in replaced)


def test_sigint_drains_every_worker_and_exits_zero(start_daemon, softhsm, token):
    daemon = _start(start_daemon, softhsm, token, _free_ports(2))
    workers = _children(daemon.process.pid)
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.wait(timeout=60) == 0, daemon.log()
    assert all(not os.path.exists(f"/proc/{pid}") for pid in workers)
    assert not os.path.exists(daemon.socket)


def test_workers_do_not_outlive_a_supervisor_killed_with_sigkill(start_daemon, softhsm, token):
    daemon = _start(start_daemon, softhsm, token, _free_ports(2))
    workers = _children(daemon.process.pid)
    daemon.process.kill()
    daemon.process.wait(timeout=10)
    _wait_for(lambda: all(not os.path.exists(f"/proc/{pid}") for pid in workers), "the workers to drain and exit",
              timeout=30)
    # The data folder lock went with them: a new daemon starts there (and clears the stale socket).
    again = start_daemon(
        "--workers", "2", "--keystore-backend", "pkcs11", "--pkcs11-module", softhsm.module, "--pkcs11-token", token,
        env={"MCAGENT_PKCS11_PIN": softhsm.pin}, secrets=[softhsm.pin], data_dir=daemon.data_dir)
    assert (daemon.data_dir / "mcagent.lock").read_text().strip() == str(again.process.pid)
