"""The attacks of issue 9, each performed against a real daemon, asserting the safe outcome."""

from __future__ import annotations

import json
import os

import grpc
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

from tests.e2e.conftest import Daemon

ABN = "51824753556"
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def _stub(daemon: Daemon, service=pb_grpc.CredentialServiceStub):
    channel = grpc.insecure_channel(f"unix:{daemon.socket}")
    metadata = (("authorization", f"Bearer {daemon.token}"),) if daemon.token else ()
    return channel, service(channel), metadata


@pytest.fixture
def pa(file_daemon):
    return file_daemon.new_business(ABN, "pa")


# -- a client never chooses a server path -------------------------------------------------------


@pytest.mark.parametrize("chosen", ["{tmp}/planted.mcks", "{data}/mcagent.db", "/etc/shadow", "../escape", "x" * 300])
def test_create_with_a_client_chosen_path_is_refused_and_opens_nothing(pa, tmp_path, chosen):
    chosen = chosen.format(tmp=tmp_path, data=pa.data_dir)
    before = (sorted(os.listdir(pa.data_dir)), (pa.data_dir / "keystore.mcks").read_bytes())
    channel, stub, metadata = _stub(pa)
    with channel, pytest.raises(grpc.RpcError) as refused:
        stub.CreateCredential(pb.CreateCredentialRequest(
            abn=ABN, name="evil", backend=pb.BACKEND_FILE, store=chosen,
            accepted_terms_version=stub.GetMachineTerms(pb.GetMachineTermsRequest(), metadata=metadata).version,
        ), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "--store NAME=PATH" in refused.value.details()
    assert chosen not in refused.value.details()
    assert not (tmp_path / "planted.mcks").exists()
    assert (sorted(os.listdir(pa.data_dir)), (pa.data_dir / "keystore.mcks").read_bytes()) == before
    assert json.loads(pa.ok("credential", "list", "--json"))["credentials"] == []


def test_import_with_a_client_chosen_path_is_refused(pa, tmp_path):
    xml = open(os.path.join(FIXTURES, "two-abns.keystore.xml"), "rb").read()
    channel, stub, metadata = _stub(pa)
    with channel, pytest.raises(grpc.RpcError) as refused:
        stub.ImportCredential(pb.ImportCredentialRequest(
            keystore_xml=xml, alias="whatever", password="x", backend=pb.BACKEND_FILE,
            store=str(tmp_path / "planted.mcks")), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not (tmp_path / "planted.mcks").exists()


def test_the_cli_chooses_a_configured_store_by_name_only(pa):
    result = pa.cli("credential", "create", "--abn", ABN, "--name", "x", "--store", "/tmp", "--accept-terms")
    assert result.returncode != 0
    assert "no key store file is configured under that name (configured: default)" in result.stderr.decode()


def test_the_daemon_refuses_a_planted_database_link_and_a_shared_data_dir(tmp_path):
    import subprocess

    from tests.conftest import KEYSTORE_PASSWORD
    from tests.e2e.conftest import MCAGENT

    env = {**os.environ, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    linked = tmp_path / "linked"
    linked.mkdir(mode=0o700)
    (tmp_path / "victim").write_text("not a database")
    os.symlink(tmp_path / "victim", linked / "mcagent.db")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for data_dir, expected in ((linked, "is not a regular file"), (shared, "writable by nobody else")):
        result = subprocess.run([MCAGENT, "serve", "--data-dir", str(data_dir)], env=env, capture_output=True,
                                timeout=60)
        assert result.returncode != 0
        assert expected in result.stderr.decode()
    assert (tmp_path / "victim").read_text() == "not a database"


# -- the audit log cannot be flooded or amplified ------------------------------------------------


def test_a_principal_with_no_role_cannot_amplify_the_audit_log(file_daemon):
    nobody = file_daemon.new_principal("nobody")
    database = file_daemon.data_dir / "mcagent.db"
    before = len(file_daemon.audit())
    huge = "n" * 1_500_000  # twice in one message: under the 4 MB limit
    channel, stub, metadata = _stub(nobody)
    with channel:
        for _ in range(10):
            with pytest.raises(grpc.RpcError) as refused:
                stub.CreateCredential(pb.CreateCredentialRequest(abn=ABN, name=huge, store=huge), metadata=metadata)
            assert refused.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                             grpc.StatusCode.PERMISSION_DENIED)
    entries = file_daemon.audit()[before:]
    assert len(entries) == 10
    for entry in entries:  # every part bounded, the marker says what was cut
        assert len(json.dumps(entry)) < 4096
        assert "more characters]" in entry["target"] + json.dumps(entry["detail"])
    wal = database.with_name("mcagent.db-wal")
    assert database.stat().st_size + (wal.stat().st_size if wal.exists() else 0) < 2_000_000
    assert "audit log intact" in file_daemon.as_principal(None).ok("audit", "verify")


def test_a_flood_of_unknown_tokens_is_summarised_not_written_row_by_row(start_daemon):
    from tests.conftest import KEYSTORE_PASSWORD

    env = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    daemon = start_daemon(env=env)
    before = len(daemon.audit())
    bogus = dataclasses_replace(daemon, token="mcat_not-a-token")
    channel, stub, metadata = _stub(bogus, pb_grpc.PrincipalServiceStub)
    with channel:
        for _ in range(300):
            with pytest.raises(grpc.RpcError) as refused:
                stub.WhoAmI(pb.WhoAmIRequest(), metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    written = [e for e in daemon.audit()[before:] if e["action"].startswith("auth.token")]
    assert 1 <= len(written) <= 20
    assert daemon.stop() == 0  # the summary of the window is written at shutdown at the latest
    daemon = start_daemon(env=env, data_dir=daemon.data_dir)
    summaries = [e["detail"] for e in daemon.audit() if e["action"] == "auth.token.summary"]
    assert sum(s["refusals_not_written"] for s in summaries) == 300 - len(written)
    assert "audit log intact" in daemon.as_principal(None).ok("audit", "verify")


def dataclasses_replace(daemon: Daemon, **changes) -> Daemon:
    import dataclasses

    return dataclasses.replace(daemon, **changes)


def test_a_newline_in_a_client_string_cannot_forge_a_log_line(pa):
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    forged = "x\n2026-11-28 08:00:00,000 INFO agent.server: forged line"
    channel, stub, metadata = _stub(pa)
    with channel, pytest.raises(grpc.RpcError):
        stub.Sign(pb.SignRequest(credential_id=credential, data=b"d", permission=forged), metadata=metadata)
    lines = pa.log().splitlines()
    assert not [line for line in lines if line.startswith("2026-11-28 08:00:00,000 INFO agent.server: forged")]
    assert [line for line in lines if "forged line" in line and "\\n2026-11-28" in line]


# -- a failed write leaves the chain exact; revocation and signing do not race -------------------


def _signers(daemon: Daemon, credential: str, clients: int, stop, results: list, lock) -> list:
    """Threads signing with `credential` until `stop` is set; results get (sent, received, digest, outcome)."""
    import hashlib
    import threading
    import time

    def run(index: int) -> None:
        channel, stub, metadata = _stub(daemon)
        with channel:
            n = 0
            while not stop.is_set():
                digest = hashlib.sha256(f"{index}-{n}".encode()).digest()
                n += 1
                sent = time.monotonic()
                try:
                    reply = stub.Sign(pb.SignRequest(credential_id=credential, digest=digest), metadata=metadata,
                                      timeout=30)
                    outcome = reply.signature
                except grpc.RpcError as exc:
                    outcome = exc.code()
                with lock:
                    results.append((sent, time.monotonic(), digest, outcome))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def test_a_database_that_cannot_be_written_for_a_moment_fails_closed_and_the_chain_stays_exact(pa):
    import hashlib
    import resource
    import threading
    import time

    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    stop, lock, results = threading.Event(), threading.Lock(), []
    threads = _signers(pa, credential, 4, stop, results, lock)
    pid = pa.process.pid
    time.sleep(0.5)
    # Every write past the first byte of any file now fails with EFBIG, as on a full disk.
    limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, limits[1]))
    try:
        time.sleep(0.5)
        create = pa.cli("credential", "create", "--abn", ABN, "--name", "during", "--accept-terms")
        revoke = pa.cli("credential", "revoke", credential, "--yes")
        time.sleep(0.5)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert create.returncode != 0 and "UNAVAILABLE" in create.stderr.decode(), create.stderr
    assert revoke.returncode != 0 and "UNAVAILABLE" in revoke.stderr.decode(), revoke.stderr
    outcomes = [r[3] for r in results]
    assert grpc.StatusCode.UNAVAILABLE in outcomes  # failed closed during the fault
    assert isinstance(outcomes[-1], bytes)  # and signs again after it
    assert not [o for o in outcomes if isinstance(o, grpc.StatusCode) and o != grpc.StatusCode.UNAVAILABLE]
    assert "audit log intact" in pa.as_principal(None).ok("audit", "verify")
    audited = {e["detail"]["digest_sha256"] for e in pa.audit()
               if e["action"] == "credential.sign" and e["outcome"] == "allowed"}
    returned = [hashlib.sha256(r[2]).hexdigest() for r in results if isinstance(r[3], bytes)]
    assert set(returned) <= audited and len(returned) == len(audited)
    names = [c["name"] for c in json.loads(pa.ok("credential", "list", "--json"))["credentials"]]
    assert names == ["ec"]  # nothing half-written: no credential from the create that failed
    assert json.loads(pa.ok("credential", "show", credential, "--json"))["status"] == "active"


def _revoke_while(pa: Daemon, credential: str, threads: list, stop) -> float:
    """Revoke `credential` while `threads` use it; when the revoke's answer arrived (monotonic)."""
    import time

    time.sleep(1.0)
    channel, stub, metadata = _stub(pa)
    with channel:
        stub.RevokeCredential(pb.RevokeCredentialRequest(id=credential, confirm=True), metadata=metadata)
    answered = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    return answered


def _allowed_before_revoke(pa: Daemon, credential: str, action: str) -> list[int]:
    """Every allowed `action` entry for the credential precedes its revoke entry (and there is one)."""
    entries = [e for e in pa.audit() if e.get("target") == credential]
    revoke_seq = next(int(e["seq"]) for e in entries if e["action"] == "credential.revoke")
    allowed = [int(e["seq"]) for e in entries if e["action"] == action and e["outcome"] == "allowed"]
    assert allowed and max(allowed) < revoke_seq, f"{action} was recorded as allowed after the revoke"
    return allowed


def test_once_revoke_has_answered_no_signature_made_with_the_key_reaches_anyone(pa):
    import threading

    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    stop, lock, results = threading.Event(), threading.Lock(), []
    threads = _signers(pa, credential, 6, stop, results, lock)
    answered = _revoke_while(pa, credential, threads, stop)
    signed = [r for r in results if isinstance(r[3], bytes)]
    assert signed, "the signers never signed"
    assert not [r for r in signed if r[0] > answered], "a sign sent after the revoke's answer returned a signature"
    assert [r for r in results if r[0] > answered], "no sign was attempted after the revoke"
    allowed = _allowed_before_revoke(pa, credential, "credential.sign")
    assert len(allowed) == len(signed)  # every returned signature, and only those, recorded as allowed


# -- whoever holds the database file cannot rewrite or cut the log unnoticed -----------------------


def _tamper(daemon: Daemon, *statements: str, rehash_from: int | None = None) -> None:
    """Change the audit table behind the agent's back, as someone holding the file could."""
    import dataclasses
    import datetime as dt
    import sqlite3

    from mcagent.agent.domain.audit import AuditEntry, entry_hash

    with sqlite3.connect(daemon.data_dir / "mcagent.db") as conn:
        conn.execute("DROP TRIGGER audit_append_only_update")
        conn.execute("DROP TRIGGER audit_append_only_delete")
        for statement in statements:
            conn.execute(statement)
        if rehash_from is not None:  # recompute every hash from there on, so the plain chain is valid again
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM audit WHERE seq >= ? ORDER BY seq", (rehash_from,)).fetchall()
            prev = conn.execute("SELECT hash FROM audit WHERE seq = ?", (rehash_from - 1,)).fetchone()[0]
            for row in rows:
                entry = AuditEntry(seq=row["seq"], at=dt.datetime.fromisoformat(row["at"]), actor=row["actor"],
                                   action=row["action"], outcome=row["outcome"], abn=row["abn"], target=row["target"],
                                   detail=json.loads(row["detail"]), prev_hash=prev)
                entry = dataclasses.replace(entry, hash=entry_hash(entry))
                conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, entry.hash, entry.seq))
                prev = entry.hash


def _verify(daemon: Daemon, *args: str):
    return daemon.as_principal(None).cli("audit", "verify", *args)


@pytest.fixture
def busy(start_daemon):
    """A daemon with some history, stopped (its shutdown checkpoint written); start it again with `.restart()`."""
    from tests.conftest import KEYSTORE_PASSWORD

    env = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    daemon = start_daemon(env=env)
    pa = daemon.new_business(ABN, "pa")
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    for _ in range(3):
        pa.ok("credential", "show", credential)
    (pa.data_dir / "message").write_bytes(b"m")
    pa.ok("credential", "sign", credential, "--in", str(pa.data_dir / "message"), "--out", "/dev/null")
    assert daemon.stop() == 0
    daemon.restart = lambda: start_daemon(env=env, data_dir=daemon.data_dir)
    return daemon


def test_rewriting_entries_and_recomputing_every_hash_is_caught_by_the_signed_checkpoints(busy):
    _tamper(busy, "UPDATE audit SET actor = 'someone-else' WHERE action = 'credential.create'", rehash_from=3)
    daemon = busy.restart()
    result = _verify(daemon)
    assert result.returncode != 0
    assert "does not carry a valid signature" in result.stderr.decode()
    assert "audit log tampered with" in daemon.log()


def test_deleting_every_entry_is_caught(busy):
    _tamper(busy, "DELETE FROM audit")
    result = _verify(busy.restart())
    assert result.returncode != 0
    assert "holds no checkpoint although the agent's audit key exists" in result.stderr.decode()


def test_cutting_off_the_newest_entries_while_the_agent_runs_is_caught(busy):
    daemon = busy.restart()
    assert _verify(daemon).returncode == 0
    _tamper(daemon, "DELETE FROM audit WHERE seq >= (SELECT max(seq) - 2 FROM audit)")
    result = _verify(daemon)
    assert result.returncode != 0
    assert "the newest entries were removed" in result.stderr.decode()


def test_a_head_kept_elsewhere_catches_a_cut_back_to_an_older_checkpoint(busy):
    daemon = busy.restart()
    kept = _verify(daemon).stdout.decode().split("head ")[1].split()[0]  # SEQ:HASH, as an operator keeps it
    assert daemon.stop() == 0
    # Cut back to the checkpoint written when this start began: the log is valid and anchored, only shorter.
    _tamper(daemon, "DELETE FROM audit WHERE seq > (SELECT max(seq) FROM audit WHERE action = 'audit.checkpoint'"
                    " AND seq < (SELECT max(seq) FROM audit))")
    daemon = busy.restart()
    assert _verify(daemon).returncode == 0  # the documented limit of what the database alone can show
    result = _verify(daemon, "--expect-head", kept)
    assert result.returncode != 0 and "not the one expected" in result.stderr.decode()


# -- low: self-granted roles, uids, chains, core dumps --------------------------------------------


def test_nobody_grants_a_role_to_itself(pa):
    aa = pa.new_principal("aa")
    pa.ok("role", "grant", "--abn", ABN, "--principal", "aa", "--role", "authorisation-administrator")
    result = aa.cli("role", "grant", "--abn", ABN, "--principal", "aa", "--role", "machine-credential-administrator")
    assert result.returncode != 0 and "PERMISSION_DENIED" in result.stderr.decode()
    assert "may not grant a role to itself" in result.stderr.decode()
    pa.new_principal("mca")
    aa.ok("role", "grant", "--abn", ABN, "--principal", "mca", "--role", "machine-credential-administrator")
    roles = pa.ok("role", "list", "--abn", ABN)
    assert "aa" in roles and roles.count("machine-credential-administrator") == 1


@pytest.mark.parametrize("uid", ["0", str(2**40), str(2**32 - 1)])
def test_a_principal_cannot_take_uid_0_or_one_outside_the_uid_range(file_daemon, uid):
    result = file_daemon.cli("principal", "create", "evil", "--uid", uid)
    assert result.returncode != 0 and "INVALID_ARGUMENT" in result.stderr.decode()
    assert "evil" not in file_daemon.ok("principal", "list")


def test_an_oversized_certificate_bundle_is_refused(pa, tmp_path):
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "rsa", "--accept-terms").strip()
    chain = pa.ok("credential", "certificate", credential)
    leaf = chain[:chain.index("-----END CERTIFICATE-----") + 26]
    issuers = chain[len(leaf):]
    for copies, expected in ((5, "holds 11 certificates"), (1000, "a certificate chain is at most")):
        bundle = tmp_path / f"bundle{copies}.pem"
        bundle.write_text(leaf + issuers * copies)
        result = pa.cli("credential", "install", credential, "--certificate", str(bundle))
        assert result.returncode != 0 and "INVALID_ARGUMENT" in result.stderr.decode(), result.stderr
        assert expected in result.stderr.decode()
    assert pa.ok("credential", "certificate", credential) == chain


def test_a_long_multibyte_credential_name_is_bad_input_not_an_outage(pa):
    result = pa.cli("credential", "create", "--abn", ABN, "--name", "é" * 40, "--accept-terms")
    assert result.returncode != 0 and "INVALID_ARGUMENT" in result.stderr.decode()
    assert "80 bytes long in UTF-8" in result.stderr.decode()
    assert json.loads(pa.ok("credential", "list", "--json"))["credentials"] == []


def test_the_daemon_cannot_dump_core(tmp_path):
    """A core file would hold the PIN and decrypted keys. The daemon is killed by SIGABRT with
    core dumps allowed by its limits: no core file may appear."""
    import resource
    import signal
    import subprocess

    from tests.conftest import KEYSTORE_PASSWORD
    from tests.e2e.conftest import MCAGENT, wait_until_serving

    data_dir, log_path = tmp_path / "data", tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([MCAGENT, "serve", "--data-dir", str(data_dir)], cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   env={**os.environ, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD})
    try:
        wait_until_serving(process, str(data_dir / "mcagent.sock"), log_path)
        resource.prlimit(process.pid, resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        process.send_signal(signal.SIGABRT)
        assert process.wait(timeout=30) == -signal.SIGABRT
    finally:
        if process.poll() is None:
            process.kill()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("core")]
    probe = subprocess.run([os.sys.executable, "-c", (
        "import ctypes; from mcagent.agent.server.startup import forbid_core_dumps; forbid_core_dumps(); "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "0"  # PR_GET_DUMPABLE after the call the daemon makes at start


def test_an_export_racing_a_revoke_never_hands_out_the_key_afterwards(pa):
    import threading
    import time

    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    stop, lock, results = threading.Event(), threading.Lock(), []

    def export() -> None:
        channel, stub, metadata = _stub(pa)
        with channel:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    stub.ExportCredential(pb.ExportCredentialRequest(id=credential, format="pkcs12",
                                                                     password="Export-Pw-2026!"), metadata=metadata)
                    outcome = "exported"
                except grpc.RpcError as exc:
                    outcome = exc.code()
                with lock:
                    results.append((sent, outcome))

    threads = [threading.Thread(target=export) for _ in range(4)]
    for thread in threads:
        thread.start()
    answered = _revoke_while(pa, credential, threads, stop)
    assert [r for r in results if r[1] == "exported"], "no export succeeded before the revoke"
    assert not [r for r in results if r[1] == "exported" and r[0] > answered]
    _allowed_before_revoke(pa, credential, "credential.export")


def test_slow_clients_cannot_keep_the_crl_from_others(start_daemon):
    import http.client
    import socket
    import time
    import urllib.request

    from tests.conftest import KEYSTORE_PASSWORD

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = start_daemon("--crl-listen", f"127.0.0.1:{port}", env={"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD})
    slow = []
    for _ in range(20):  # more than the listener's slots, from one address, each sending one byte and then nothing
        sock = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
        sock.sendall(b"G")
        slow.append(sock)
    try:
        time.sleep(0.5)  # the slow clients hold what they can: at most a few slots for their one address
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/crl", timeout=5) as reply:
            assert reply.status == 200 and reply.read()  # another address is served at once
        started = time.monotonic()
        while True:  # the slow address itself gets 503 at once while it holds its share, then the CRL
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0))
            connection.request("GET", "/crl")
            reply = connection.getresponse()
            body = reply.read()
            connection.close()
            if reply.status == 200:
                assert body
                break
            assert reply.status == 503
            assert time.monotonic() - started < 30, "the CRL stayed out of reach behind slow clients"
            time.sleep(0.5)
    finally:
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 20, "slow clients held up the shutdown"
        for sock in slow:
            sock.close()


def _edit_keystore(daemon: Daemon, change) -> None:
    path = daemon.data_dir / "keystore.mcks"
    contents = json.loads(path.read_text())
    change(contents["keys"])
    path.write_text(json.dumps(contents))


def test_removing_the_audit_key_while_its_checkpoints_remain_is_caught(busy):
    _edit_keystore(busy, lambda keys: keys.pop("mcagent-audit"))
    daemon = busy.restart()
    assert _verify(daemon).returncode != 0
    assert "the agent's audit key is gone although checkpoint entry" in daemon.log()


def test_swapping_the_audit_keys_public_half_is_caught(busy):
    def swap(keys):
        other = next(label for label in keys if label != "mcagent-audit" and keys[label]["key_type"] == "ec-p256")
        keys["mcagent-audit"]["public_key"] = keys[other]["public_key"]

    _edit_keystore(busy, swap)
    daemon = busy.restart()
    assert _verify(daemon).returncode != 0
    assert "public half does not match its private key" in daemon.log()
