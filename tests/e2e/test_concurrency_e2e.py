"""Many clients at once against SoftHSM2: every signature verifies, one audit entry per sign."""

from __future__ import annotations

import hashlib
import threading

import grpc
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.hsm.base import SignatureAlgorithm

from tests.verify import verify

ABN = "51824753556"
CLIENTS = 32
SIGNS_EACH = 8


def _public_key(pa, credential_id):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pa.ok("credential", "public-key", credential_id).encode())


def set_up(daemon, key_types=("rsa-2048", "ec-p256")):
    """A business, its PA, a software principal granted the role, and a credential per key type."""
    pa = daemon.new_business(ABN, "alice")
    software = daemon.new_principal("sw")
    pa.ok("role", "grant", "--abn", ABN, "--principal", "sw", "--role", "software")
    credentials = {
        key_type: pa.ok("credential", "create", "--abn", ABN, "--name", key_type, "--key-type", key_type,
                        "--accept-terms").strip()
        for key_type in key_types
    }
    return pa, software, credentials


def test_32_concurrent_clients_all_signatures_verify_and_each_is_audited_once(pkcs11_daemon):
    pa, software, credentials = set_up(pkcs11_daemon)
    before = sum(1 for e in pkcs11_daemon.audit() if e["action"] == "credential.sign")
    results: list[tuple[str, bytes, bytes]] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        key_type = ("rsa-2048", "ec-p256")[index % 2]
        metadata = (("authorization", f"Bearer {software.token}"),)
        with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:  # one connection per client
            stub = pb_grpc.CredentialServiceStub(channel)
            start.wait()
            for n in range(SIGNS_EACH):
                message = f"client {index} request {n}".encode()
                try:
                    reply = stub.Sign(pb.SignRequest(credential_id=credentials[key_type], data=message),
                                      metadata=metadata, timeout=60)
                    with lock:
                        results.append((key_type, message, reply.signature))
                except grpc.RpcError as exc:
                    with lock:
                        errors.append(f"{exc.code().name}: {exc.details()}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == CLIENTS * SIGNS_EACH
    keys = {key_type: _public_key(pa, credential_id) for key_type, credential_id in credentials.items()}
    algorithms = {"rsa-2048": SignatureAlgorithm.RSA_PKCS1_SHA256, "ec-p256": SignatureAlgorithm.ECDSA_SHA256}
    for key_type, message, signature in results:
        verify(keys[key_type], algorithms[key_type], message, signature)
    entries = pkcs11_daemon.audit()
    signs = [e for e in entries if e["action"] == "credential.sign" and e["outcome"] == "allowed"]
    assert len(signs) - before == CLIENTS * SIGNS_EACH
    digests = [e["detail"]["digest_sha256"] for e in signs]
    expected = [hashlib.sha256(hashlib.sha256(m).digest()).hexdigest() for _, m, _ in results]
    assert sorted(digests[-len(expected):]) == sorted(expected)  # one entry per sign, none twice
    assert "audit log intact" in pkcs11_daemon.as_principal(None).ok("audit", "verify")


def test_batch_sign_gives_per_item_results_and_audits_each(pkcs11_daemon):
    pa = pkcs11_daemon.new_business(ABN, "alice")
    credential = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    digests = [hashlib.sha256(f"item {i}".encode()).digest() for i in range(64)]
    items = [pb.SignBatchItem(credential_id=credential, digest=d) for d in digests]
    items[5] = pb.SignBatchItem(credential_id="no-such-credential", digest=digests[5])
    items[9] = pb.SignBatchItem(credential_id=credential, digest=b"short")
    with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:
        reply = pb_grpc.CredentialServiceStub(channel).SignBatch(
            pb.SignBatchRequest(items=items), metadata=(("authorization", f"Bearer {pa.token}"),), timeout=60)
        assert len(reply.results) == 64
        assert reply.results[5].code == grpc.StatusCode.NOT_FOUND.value[0]
        assert "no credential with id 'no-such-credential'" in reply.results[5].error
        assert reply.results[9].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "needs a 32-byte SHA256 digest, got 5 bytes" in reply.results[9].error
        public_key = _public_key(pa, credential)
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        for index, result in enumerate(reply.results):
            if index in (5, 9):
                continue
            assert result.code == 0
            public_key.verify(result.signature, digests[index], ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        try:
            pb_grpc.CredentialServiceStub(channel).SignBatch(
                pb.SignBatchRequest(items=[]), metadata=(("authorization", f"Bearer {pa.token}"),), timeout=60)
            raise AssertionError("an empty batch was accepted")
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT and "1 to 1000 items" in exc.details()
    signs = [e for e in pkcs11_daemon.audit() if e["action"] == "credential.sign"]
    assert sum(e["outcome"] == "allowed" for e in signs) == 62
    assert sum(e["outcome"] == "refused" for e in signs) == 2
