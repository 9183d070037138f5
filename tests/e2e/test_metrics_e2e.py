"""`serve --metrics-listen`: the Prometheus endpoint counts exactly the signs made, by outcome."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import grpc
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_certificates_e2e import ABN
from tests.e2e.test_crl_e2e import _free_port

pytestmark = pytest.mark.e2e


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_sign_counters_latency_token_and_connection_gauges(start_daemon, softhsm):
    port = _free_port()
    daemon = start_daemon("--keystore-backend", "pkcs11", "--pkcs11-module", softhsm.module,
                          "--pkcs11-token", softhsm.token, "--metrics-listen", f"127.0.0.1:{port}",
                          env={"MCAGENT_PKCS11_PIN": softhsm.pin}, secrets=[softhsm.pin])
    pa = daemon.new_business(ABN, "alice")
    stranger = daemon.new_principal("mallory")
    rsa = pa.ok("credential", "create", "--abn", ABN, "--name", "rsa", "--accept-terms").strip()
    ec = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
               "--accept-terms").strip()
    gone = pa.ok("credential", "create", "--abn", ABN, "--name", "gone", "--accept-terms").strip()
    pa.ok("credential", "revoke", gone, "--yes")

    before = _scrape(port)
    assert _value(before, "mcagent_signs_total", key_type="rsa-2048", algorithm="rsa-pkcs1-sha256",
                  outcome="allowed") is None
    assert _value(before, "mcagent_token_up") == 1.0
    assert _value(before, "mcagent_token_recoveries_total") == 0.0
    assert _value(before, "mcagent_unix_connections") is not None
    assert _value(before, "mcagent_audit_queue_depth") is not None

    refused = 0
    with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
        stub = pb_grpc.CredentialServiceStub(channel)
        as_pa = (("authorization", f"Bearer {pa.token}"),)
        for n in range(5):
            stub.Sign(pb.SignRequest(credential_id=rsa, data=b"rsa %d" % n), metadata=as_pa, timeout=30)
        for n in range(3):
            stub.Sign(pb.SignRequest(credential_id=ec, data=b"ec %d" % n), metadata=as_pa, timeout=30)
        mid = _scrape(port)  # during the run
        assert _value(mid, "mcagent_signs_total", key_type="rsa-2048", algorithm="rsa-pkcs1-sha256",
                      outcome="allowed") == 5
        refusals = [(stranger.token, rsa), (pa.token, gone), (pa.token, "no-such-credential")]
        for token, credential in refusals:
            with pytest.raises(grpc.RpcError):
                stub.Sign(pb.SignRequest(credential_id=credential, data=b"x"),
                          metadata=(("authorization", f"Bearer {token}"),), timeout=30)
            refused += 1
        digest = hashlib.sha256(b"batch").digest()
        reply = stub.SignBatch(pb.SignBatchRequest(items=[
            pb.SignBatchItem(credential_id=rsa, digest=digest), pb.SignBatchItem(credential_id=ec, digest=digest),
            pb.SignBatchItem(credential_id="missing", digest=digest)]), metadata=as_pa, timeout=30)
        assert [r.code for r in reply.results] == [0, 0, grpc.StatusCode.NOT_FOUND.value[0]]
        refused += 1
        during = _scrape(port)
        assert _value(during, "mcagent_unix_connections") >= 1  # this channel, relayed now

    after = _scrape(port)
    assert _value(after, "mcagent_signs_total", key_type="rsa-2048", algorithm="rsa-pkcs1-sha256",
                  outcome="allowed") == 6
    assert _value(after, "mcagent_signs_total", key_type="ec-p256", algorithm="ecdsa-sha256", outcome="allowed") == 4
    assert _value(after, "mcagent_signs_total", key_type="unknown", algorithm="unknown", outcome="refused") == refused
    assert not [k for k in after if k[0] == "mcagent_signs_total" and ("outcome", "withheld") in k[1]]
    assert _value(after, "mcagent_sign_duration_seconds_count", key_type="rsa-2048") == 6
    assert _value(after, "mcagent_sign_duration_seconds_count", key_type="ec-p256") == 4
    assert _value(after, "mcagent_sign_duration_seconds_bucket", key_type="ec-p256", le="+Inf") == 4
    assert _value(after, "mcagent_audit_commit_duration_seconds_count") >= 1
    assert _value(after, "mcagent_audit_entries_committed_total") >= 6 + 4 + refused
    assert _value(after, "mcagent_token_up") == 1.0
    assert _value(after, "mcagent_token_sessions_open") >= 1

    for path in ("/", "/metrics/x", "/crl"):
        with pytest.raises(urllib.error.HTTPError) as refused_path:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert refused_path.value.code == 404
    assert daemon.stop() == 0
    assert "metrics served over HTTP" in daemon.log()


def test_no_metrics_listener_unless_asked(file_daemon):
    assert "/metrics" not in file_daemon.log()


def test_metrics_listen_must_be_host_port(tmp_path):
    import subprocess

    from tests.e2e.conftest import MCAGENT

    result = subprocess.run([MCAGENT, "serve", "--data-dir", str(tmp_path / "d"), "--metrics-listen", "nonsense"],
                            capture_output=True, env={"MCAGENT_KEYSTORE_PASSWORD": "Pass-word-123!", "PATH": ""},
                            timeout=30)
    assert result.returncode != 0 and b"--metrics-listen" in result.stderr
