"""Two daemons (separate sockets and data folders) on one PostgreSQL database and one SoftHSM2
token: state, revocations and the audit chain are shared; one dying leaves the other serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import grpc
import psycopg
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.hsm.base import SignatureAlgorithm

from tests.e2e.conftest import MCAGENT, wait_until_serving
from tests.verify import openssl_verify, verify

ABN = "51824753556"


@pytest.fixture
def two_daemons(start_daemon, fresh_token, postgres_url):
    """Daemons A and B started at the same moment on one empty database and one token."""
    args = ("--database", postgres_url, "--keystore-backend", "pkcs11", "--pkcs11-module", fresh_token.module,
            "--pkcs11-token", fresh_token.token)
    daemons = [start_daemon(*args, env={"MCAGENT_PKCS11_PIN": fresh_token.pin}, secrets=[fresh_token.pin],
                            wait=False)
               for _ in range(2)]
    for daemon in daemons:
        wait_until_serving(daemon.process, daemon.socket, daemon.log_path)
    return daemons


def _public_key(pa, credential_id):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pa.ok("credential", "public-key", credential_id).encode())


def test_two_daemons_share_records_revocations_and_one_audit_chain(two_daemons, postgres_url, tmp_path):
    a, b = two_daemons
    with psycopg.connect(postgres_url) as conn:  # started at once on an empty database: everything made once
        applied = [row[0] for row in conn.execute("SELECT migration_id FROM _yoyo_log WHERE operation = 'apply'")]
        assert sorted(applied) == sorted(set(applied)) and len(applied) >= 6
    actions = [e["action"] for e in a.audit()]
    assert actions.count("ca.init") == 1 and "audit.tampering-detected" not in actions
    assert a.ok("ca", "certificate") == b.ok("ca", "certificate")

    pa_on_a = a.new_business(ABN, "alice")
    pa_on_b = b.as_principal(pa_on_a.token)  # the principal, its token and its roles are shared
    credential = pa_on_a.ok("credential", "create", "--abn", ABN, "--name", "server-1", "--key-type", "ec-p256",
                            "--accept-terms").strip()
    message, signature = tmp_path / "message", tmp_path / "signature"
    message.write_bytes(b"lodgement 1")
    pa_on_b.ok("credential", "sign", credential, "--in", str(message), "--out", str(signature))
    (tmp_path / "public.pem").write_text(pa_on_b.ok("credential", "public-key", credential))
    verified = openssl_verify(tmp_path / "public.pem", SignatureAlgorithm.ECDSA_SHA256, message, signature)
    assert verified.returncode == 0, verified.stderr

    pa_on_a.ok("credential", "sign", credential, "--in", str(message), "--out", str(signature))  # cached on A now
    pa_on_b.ok("credential", "revoke", credential, "--yes")
    refused = pa_on_a.cli("credential", "sign", credential, "--in", str(message), "--out", str(signature))
    assert refused.returncode != 0 and b"revoked" in refused.stderr, refused.stderr  # the very next sign on A

    entries = b.audit()
    signs = [(e["outcome"], e["target"]) for e in entries if e["action"] == "credential.sign"]
    assert signs == [("allowed", credential), ("allowed", credential), ("refused", credential)]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert "audit log intact" in a.as_principal(None).ok("audit", "verify")
    assert "audit log intact" in b.as_principal(None).ok("audit", "verify")
    backup = a.as_principal(None).cli("backup", "--out", str(tmp_path / "backup.db"))
    assert backup.returncode != 0 and b"pg_dump" in backup.stderr, backup.stderr
    assert not (tmp_path / "backup.db").exists()


def test_db_upgrade_migrates_an_empty_database_once(postgres_url):
    upgrade = [MCAGENT, "--json", "db", "upgrade", "--database", postgres_url]
    first = subprocess.run(upgrade, capture_output=True, timeout=60)
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["applied"][0] == "0001_businesses_credentials_terms"
    assert len(document["applied"]) == document["migrations"] >= 6
    again = json.loads(subprocess.run(upgrade, capture_output=True, timeout=60, check=True).stdout)
    assert again["applied"] == []
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM state_version").fetchone() == (0,)


def test_a_daemon_killed_while_both_serve_leaves_the_other_serving(two_daemons):
    a, b = two_daemons
    pa = a.new_business(ABN, "alice")
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "server-1", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    software = {daemon.socket: daemon.new_principal(f"sw-{name}") for daemon, name in ((a, "a"), (b, "b"))}
    for name in ("sw-a", "sw-b"):
        pa.ok("role", "grant", "--abn", ABN, "--principal", name, "--role", "software")
    key = _public_key(pa, credential)
    received: dict[str, list[tuple[bytes, bytes]]] = {a.socket: [], b.socket: []}
    failures: dict[str, list[str]] = {a.socket: [], b.socket: []}
    stop = threading.Event()
    lock = threading.Lock()

    def client(daemon, index: int) -> None:  # 2 clients on each daemon, 4 in all
        metadata = (("authorization", f"Bearer {software[daemon.socket].token}"),)
        with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            n = 0
            while not stop.is_set():
                data = f"{daemon.socket} client {index} sign {n}".encode()
                n += 1
                try:
                    reply = stub.Sign(pb.SignRequest(credential_id=credential, data=data), metadata=metadata,
                                      timeout=10)
                except grpc.RpcError as exc:
                    with lock:
                        failures[daemon.socket].append(exc.code().name)
                    if daemon is a:
                        return  # A is gone
                    continue
                with lock:
                    received[daemon.socket].append((data, reply.signature))

    threads = [threading.Thread(target=client, args=(daemon, i)) for daemon in (a, b) for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    os.kill(a.process.pid, signal.SIGKILL)
    a.process.wait(10)
    os.unlink(a.socket)  # what a killed daemon leaves behind (a restart replaces it)
    with lock:
        b_at_kill = len(received[b.socket])
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(30)

    assert failures[b.socket] == []  # B never failed a client
    assert len(received[b.socket]) > b_at_kill > 0  # and kept signing after A died
    assert received[a.socket]
    for daemon in (a, b):
        for data, signature in received[daemon.socket]:
            verify(key, SignatureAlgorithm.ECDSA_SHA256, data, signature)
    entries = b.audit()
    allowed = {name: sum(1 for e in entries if e["action"] == "credential.sign" and e["outcome"] == "allowed"
                         and e["actor"] == name) for name in ("sw-a", "sw-b")}
    assert allowed["sw-b"] == len(received[b.socket])  # every signature B's clients received is audited
    # A's: each one received is audited; a sign A committed as it was killed may have missed its
    # client (at most one in flight per client).
    assert len(received[a.socket]) <= allowed["sw-a"] <= len(received[a.socket]) + 2
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert "audit log intact" in b.as_principal(None).ok("audit", "verify")
