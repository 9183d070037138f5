"""`mcagent backup` while clients sign, then a restore into a new data directory that works."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import threading

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

from tests.conftest import KEYSTORE_PASSWORD
from tests.e2e.test_certificates_e2e import ABN

pytestmark = pytest.mark.e2e
ENV = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
CLIENTS = 4


def test_backup_while_signing_restores_to_a_working_agent(start_daemon, tmp_path):
    daemon = start_daemon(env=ENV, secrets=[KEYSTORE_PASSWORD])
    pa = daemon.new_business(ABN, "alice")
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "server-1", "--accept-terms").strip()
    public_key = load_pem_public_key(pa.ok("credential", "public-key", credential).encode())

    stop, signed, errors = threading.Event(), [0] * CLIENTS, []
    started = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            started.wait()
            while not stop.is_set():
                try:
                    stub.Sign(pb.SignRequest(credential_id=credential, data=b"%d" % index),
                              metadata=(("authorization", f"Bearer {pa.token}"),), timeout=30)
                    signed[index] += 1
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                    return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    started.wait()
    backup = tmp_path / "mcagent-backup.db"
    try:
        while sum(signed) < 20:  # signs are committing while the copy is taken
            stop.wait(0.05)
        before = sum(signed)
        reply = json.loads(daemon.as_principal(None).ok("backup", "--out", str(backup), "--json"))
        during = sum(signed)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sum(signed) > during > 0, "the clients went on signing during the backup"
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert int(reply["size"]) == backup.stat().st_size and reply["last"]
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (backup_entry,) = copy.execute("SELECT seq FROM audit WHERE action = 'backup'").fetchall()
        copied_signs = copy.execute("SELECT count(*) FROM audit WHERE action = 'credential.sign'").fetchone()[0]
    assert backup_entry[0] == int(reply["audit_seq"])
    # A snapshot of one commit: the signs answered before the backup began (less any whose
    # answer was still on its way), none answered after it ended.
    assert before - CLIENTS <= copied_signs <= during

    # The key store file is copied after the backup, so every key a copied record names is in it.
    keystore_copy = tmp_path / "keystore-backup.mcks"
    shutil.copy(daemon.data_dir / "keystore.mcks", keystore_copy)
    assert daemon.stop() == 0  # its later checkpoints (written at stop) are not in the copy

    # The machine is lost; restore into a new data folder elsewhere: `mcagent restore` points the
    # records' key URIs at the new folder's key store file, and the copy of the file goes there.
    restored = tmp_path / "elsewhere" / "data"
    result = json.loads(daemon.ok("restore", str(backup), "--data-dir", str(restored), "--json"))
    assert result["key_stores"] == {str(daemon.data_dir / "keystore.mcks"): str(restored / "keystore.mcks")}
    assert result["key_references_moved"] >= 3  # the credential and the two CA keys
    assert stat.S_IMODE(os.stat(restored / "mcagent.db").st_mode) == 0o600
    shutil.copy(keystore_copy, restored / "keystore.mcks")
    os.chmod(restored / "keystore.mcks", 0o600)
    refused = daemon.cli("restore", str(backup), "--data-dir", str(restored))
    assert refused.returncode == 1 and "a restore goes into a new data folder" in refused.stderr.decode()
    again = start_daemon(env=ENV, data_dir=restored)
    verdict = json.loads(again.ok("audit", "verify", "--json"))
    assert verdict["ok"] is True, verdict
    restored_pa = again.as_principal(pa.token)  # the principals and their tokens came back too
    message = tmp_path / "message"
    message.write_bytes(b"signed by the restored agent")
    signature = tmp_path / "message.sig"
    restored_pa.ok("credential", "sign", credential, "--in", str(message), "--out", str(signature))
    public_key.verify(signature.read_bytes(), message.read_bytes(), padding.PKCS1v15(), hashes.SHA256())
    actions = [e["action"] for e in again.audit()]
    assert "backup" in actions and "restore.move-key-stores" in actions


def test_backup_is_for_the_local_administrator_only_and_audited(file_daemon, tmp_path):
    pa = file_daemon.new_business(ABN, "alice")
    result = pa.cli("backup", "--out", str(tmp_path / "stolen.db"))
    assert result.returncode == 1 and b"PERMISSION_DENIED" in result.stderr
    assert not (tmp_path / "stolen.db").exists() and not list(tmp_path.glob(".stolen.db.*"))
    entries = json.loads(file_daemon.ok("audit", "list", "--json"))["entries"]
    assert [(e["actor"], e["outcome"]) for e in entries if e["action"] == "backup"] == [("alice", "refused")]
    assert not list(file_daemon.data_dir.glob(".backup-*")), "no copy left in the data directory"


def test_backup_refuses_undecodable_requests(file_daemon):
    with grpc.insecure_channel(f"unix:{file_daemon.socket}") as channel:
        call = channel.unary_stream("/mcagent.v1.AdminService/Backup")
        with pytest.raises(grpc.RpcError) as refused:
            list(call(b"\xff\xff\xff", timeout=30))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "mcagent.v1.BackupRequest" in refused.value.details()
