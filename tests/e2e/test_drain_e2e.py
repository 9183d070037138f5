"""SIGTERM drains: calls in flight on every listener finish and reach their clients."""

from __future__ import annotations

import hashlib
import signal
import threading
import time

import grpc
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.hsm.base import SignatureAlgorithm

from tests.e2e import test_transport_e2e as transport
from tests.verify import verify

PASSWORD_ENV = transport.PASSWORD_ENV
pki = transport.pki  # a fixture shared with the transport tests

ABN = "51824753556"
CLIENTS_PER_TRANSPORT = 3
ITEMS = 1000


def _messages(client: int) -> list[bytes]:
    return [f"client {client} item {n}".encode() for n in range(ITEMS)]


def test_sigterm_lets_batches_in_flight_on_both_transports_finish_and_audit_matches(pki, start_daemon):
    address = f"127.0.0.1:{transport._free_port()}"
    # A grace period long enough for a loaded test machine: the point is that calls in flight finish.
    daemon = start_daemon("--listen", address, "--tls-cert", str(pki["server"].cert), "--tls-key",
                          str(pki["server"].key), "--client-ca", str(pki["ca"].ca.cert), "--grace-period", "120",
                          env=PASSWORD_ENV)
    pa = daemon.new_business(ABN, "alice")
    daemon.new_principal("dsp", "--certificate-subject", pki["dsp"].subject)
    pa.ok("role", "grant", "--abn", ABN, "--principal", "dsp", "--role", "software")
    # RSA-3072: each batch takes seconds even on a quiet machine, so it is surely in flight at SIGTERM.
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "bulk", "--key-type", "rsa-3072",
                       "--accept-terms").strip()
    public_key = load_pem_public_key(pa.ok("credential", "public-key", credential).encode())
    tls = grpc.ssl_channel_credentials(root_certificates=pki["ca"].ca.cert.read_bytes(),
                                       private_key=pki["dsp"].key.read_bytes(),
                                       certificate_chain=pki["dsp"].cert.read_bytes())
    channels = [grpc.insecure_channel(f"unix:{daemon.socket}") for _ in range(CLIENTS_PER_TRANSPORT)]
    channels += [grpc.secure_channel(address, tls) for _ in range(CLIENTS_PER_TRANSPORT)]
    for channel in channels:  # connected before the stop, so each batch is a call in flight, not a new one
        grpc.channel_ready_future(channel).result(timeout=10)
    metadata = (("authorization", f"Bearer {pa.token}"),)

    outcomes: dict[int, object] = {}
    arrived: dict[int, float] = {}
    sent = threading.Barrier(len(channels) + 1)

    def client(index: int) -> None:
        stub = pb_grpc.CredentialServiceStub(channels[index])
        request = pb.SignBatchRequest(items=[
            pb.SignBatchItem(credential_id=credential, algorithm=pb.SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256,
                             digest=hashlib.sha256(message).digest()) for message in _messages(index)])
        future = stub.SignBatch.future(request, metadata=metadata if index < CLIENTS_PER_TRANSPORT else (),
                                       timeout=120)
        sent.wait()
        try:
            outcomes[index] = future.result()
        except grpc.RpcError as exc:
            outcomes[index] = exc
        arrived[index] = time.monotonic()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(channels))]
    for thread in threads:
        thread.start()
    sent.wait()
    time.sleep(0.5)  # let every request reach the daemon
    stopped_at = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    # Health says NOT_SERVING while the batches finish (over TCP: the Unix socket stops accepting at once).
    # (The signal is handled a moment after it is sent: until then health may still say SERVING.)
    deadline = time.monotonic() + 2
    with grpc.secure_channel(address, tls) as probe:
        status = health_pb2.HealthCheckResponse.SERVING
        while status == health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            try:
                status = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            except grpc.RpcError:
                status = None  # already closed to new calls
            time.sleep(0.02)
    assert status in (None, health_pb2.HealthCheckResponse.NOT_SERVING)
    for thread in threads:
        thread.join(timeout=120)
    assert daemon.process.wait(timeout=60) == 0, daemon.log()
    for channel in channels:
        channel.close()

    received = 0
    for index in range(len(channels)):
        outcome = outcomes[index]
        assert not isinstance(outcome, grpc.RpcError), f"client {index}: {outcome.code()} {outcome.details()}"
        assert arrived[index] > stopped_at, "the batch finished before SIGTERM: the test proved nothing"
        assert len(outcome.results) == ITEMS
        for message, result in zip(_messages(index), outcome.results, strict=True):
            assert result.code == 0, result.error
            verify(public_key, SignatureAlgorithm.RSA_PKCS1_SHA256, message, result.signature)
            received += 1
    assert received == 2 * CLIENTS_PER_TRANSPORT * ITEMS
    assert "stop requested" in daemon.log()

    again = start_daemon(data_dir=daemon.data_dir, env=PASSWORD_ENV)
    signs = [e for e in again.audit() if e["action"] == "credential.sign" and e["outcome"] == "allowed"]
    assert len(signs) == received
