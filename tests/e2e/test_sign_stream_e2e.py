"""SignStream against a real daemon and SoftHSM2: many streams at once, per-item errors, back-pressure,
and the certificate chain only on request."""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import time

import grpc
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.agent.server.sign_stream import MAX_STREAMS, WINDOW
from mcagent.hsm.base import SignatureAlgorithm

from tests.e2e.test_concurrency_e2e import _public_key, set_up
from tests.e2e.test_crl_e2e import _free_port
from tests.e2e.test_metrics_e2e import _scrape, _value
from tests.verify import verify

ABN = "51824753556"
CLIENTS = 32
SIGNS_EACH = 24
ALGORITHMS = {"rsa-2048": SignatureAlgorithm.RSA_PKCS1_SHA256, "ec-p256": SignatureAlgorithm.ECDSA_SHA256}


def _set_up(daemon):
    return set_up(daemon, tuple(ALGORITHMS))


def _signs(daemon) -> list[dict]:
    return [e for e in daemon.audit() if e["action"] == "credential.sign"]


def test_32_concurrent_streams_every_signature_verifies_once_and_a_revoke_mid_stream_refuses_per_item(
        pkcs11_daemon):
    pa, software, credentials = _set_up(pkcs11_daemon)
    doomed = pa.ok("credential", "create", "--abn", ABN, "--name", "doomed", "--key-type", "ec-p256",
                   "--accept-terms").strip()
    before = len(_signs(pkcs11_daemon))
    metadata = (("authorization", f"Bearer {software.token}"),)
    replies: dict[int, list] = collections.defaultdict(list)
    sent: dict[int, dict[str, tuple[str, bytes]]] = collections.defaultdict(dict)
    errors: list[str] = []
    start = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        def requests():
            for n in range(SIGNS_EACH):
                key_type = ("rsa-2048", "ec-p256")[(index + n) % 2]
                message = f"client {index} item {n}".encode()
                request_id = f"{index}-{n}"
                sent[index][request_id] = (key_type, message)
                yield pb.SignStreamRequest(request_id=request_id, credential_id=credentials[key_type], data=message)

        with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:  # one connection per client
            stub = pb_grpc.CredentialServiceStub(channel)
            start.wait()
            try:
                for reply in stub.SignStream(requests(), metadata=metadata, timeout=120):
                    replies[index].append(reply)
            except grpc.RpcError as exc:
                errors.append(f"{exc.code().name}: {exc.details()}")

    # The 33rd stream: its credential is revoked after 10 answers, while it is still sending.
    revoked_replies: list = []
    answered_ten, revoked = threading.Event(), threading.Event()

    def doomed_requests():
        for n in range(20):
            if n == 10:
                assert answered_ten.wait(60)
                pa.ok("credential", "revoke", doomed, "--yes")
                revoked.set()
            yield pb.SignStreamRequest(request_id=f"doomed-{n}", credential_id=doomed,
                                       digest=hashlib.sha256(b"%d" % n).digest())

    def doomed_client() -> None:
        with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:
            start.wait()
            for reply in pb_grpc.CredentialServiceStub(channel).SignStream(doomed_requests(), metadata=metadata,
                                                                            timeout=120):
                revoked_replies.append(reply)
                if len(revoked_replies) == 10:
                    answered_ten.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=doomed_client))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    keys = {key_type: _public_key(pa, credential_id) for key_type, credential_id in credentials.items()}
    expected_digests = []
    for index in range(CLIENTS):
        ids = [r.request_id for r in replies[index]]
        assert sorted(ids) == sorted(sent[index]), f"client {index}: responses lost or duplicated"
        for reply in replies[index]:
            assert reply.code == 0, reply.error
            key_type, message = sent[index][reply.request_id]
            verify(keys[key_type], ALGORITHMS[key_type], message, reply.signature)
            expected_digests.append(hashlib.sha256(hashlib.sha256(message).digest()).hexdigest())

    assert sorted(r.request_id for r in revoked_replies) == sorted(f"doomed-{n}" for n in range(20))
    assert revoked.is_set()
    by_id = {r.request_id: r for r in revoked_replies}
    assert all(by_id[f"doomed-{n}"].code == 0 for n in range(10))
    for n in range(10, 20):  # after the revoke: each refused on its own, the stream carried on
        assert by_id[f"doomed-{n}"].code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "revoked" in by_id[f"doomed-{n}"].error and not by_id[f"doomed-{n}"].signature

    signs = _signs(pkcs11_daemon)[before:]
    allowed = [e for e in signs if e["outcome"] == "allowed"]
    assert len(allowed) == CLIENTS * SIGNS_EACH + 10
    digests = sorted(e["detail"]["digest_sha256"] for e in allowed if e["target"] != doomed)
    assert digests == sorted(expected_digests)  # exactly one entry per sign
    refused = [e for e in signs if e["outcome"] == "refused"]
    assert len(refused) == 10 and {e["target"] for e in refused} == {doomed}
    assert "audit log intact" in pkcs11_daemon.as_principal(None).ok("audit", "verify")


def test_bad_items_get_their_own_errors_and_the_stream_goes_on(pkcs11_daemon):
    pa, _, credentials = _set_up(pkcs11_daemon)
    digest = hashlib.sha256(b"x").digest()
    requests = [
        pb.SignStreamRequest(request_id="good", credential_id=credentials["ec-p256"], digest=digest),
        pb.SignStreamRequest(request_id="short", credential_id=credentials["ec-p256"], digest=b"short"),
        pb.SignStreamRequest(request_id="none", credential_id=credentials["ec-p256"]),
        pb.SignStreamRequest(request_id="unknown", credential_id="no-such-credential", digest=digest),
        pb.SignStreamRequest(request_id="algorithm", credential_id=credentials["ec-p256"], digest=digest,
                             algorithm=99),
        pb.SignStreamRequest(request_id="x" * 200, credential_id=credentials["ec-p256"], digest=digest),
        pb.SignStreamRequest(request_id="rsa-key-ec-algorithm", credential_id=credentials["rsa-2048"], digest=digest,
                             algorithm=pb.SIGNATURE_ALGORITHM_ECDSA_SHA256),
    ]
    with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:
        # A raw method with bytes in: one undecodable message among good ones.
        raw = channel.stream_stream("/mcagent.v1.CredentialService/SignStream",
                                    request_serializer=lambda b: b,
                                    response_deserializer=pb.SignStreamResponse.FromString)
        messages = [r.SerializeToString() for r in requests]
        messages.insert(1, b"\xff\xff\xff")
        replies = list(raw(iter(messages), metadata=(("authorization", f"Bearer {pa.token}"),), timeout=60))
    assert len(replies) == len(messages)
    by_id = {r.request_id: r for r in replies}
    assert by_id["good"].code == 0 and by_id["good"].signature
    codes = {name: grpc.StatusCode.INVALID_ARGUMENT.value[0] for name in
             ("short", "none", "algorithm", "x" * 128, "rsa-key-ec-algorithm", "")}
    codes["unknown"] = grpc.StatusCode.NOT_FOUND.value[0]
    for request_id, code in codes.items():
        assert by_id[request_id].code == code, (request_id, by_id[request_id])
    assert "not a valid mcagent.v1.SignStreamRequest" in by_id[""].error
    assert "at most 128 bytes" in by_id["x" * 128].error


def test_a_stream_is_refused_whole_without_credentials(pkcs11_daemon):
    _set_up(pkcs11_daemon)
    with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:
        stub = pb_grpc.CredentialServiceStub(channel)
        try:
            list(stub.SignStream(iter([pb.SignStreamRequest(request_id="1", credential_id="c", digest=bytes(32))]),
                                 metadata=(("authorization", "Bearer mcat_not-a-token"),), timeout=30))
            raise AssertionError("an unknown token opened a stream")
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_client_that_sends_without_reading_is_held_back(pkcs11_daemon):
    """Back-pressure: the agent stops reading once WINDOW signs wait on a client that does not
    read its answers, so neither its signs nor the requests it pulls keep growing."""
    _, software, credentials = _set_up(pkcs11_daemon)
    before = len(_signs(pkcs11_daemon))
    offered = 1_000_000
    pulled = [0]
    digest = hashlib.sha256(b"flood").digest()

    def flood():
        for n in range(offered):
            pulled[0] += 1
            yield pb.SignStreamRequest(request_id=str(n), credential_id=credentials["ec-p256"], digest=digest)

    # Without BDP probing the client's receive window stays small too (64 KB of unread answers).
    with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}", options=[("grpc.http2.bdp_probe", 0)]) as channel:
        call = pb_grpc.CredentialServiceStub(channel).SignStream(
            flood(), metadata=(("authorization", f"Bearer {software.token}"),), timeout=120)
        first = next(call)  # the stream is up; from here on nothing is read
        assert first.code == 0
        time.sleep(5)
        held_at, signs_at = pulled[0], len(_signs(pkcs11_daemon)) - before
        time.sleep(3)
        assert pulled[0] == held_at, "the client kept sending although nothing was read"
        assert len(_signs(pkcs11_daemon)) - before == signs_at, "the agent kept signing for a client that does not read"
        # Bounded by WINDOW plus what the HTTP/2 windows and the Unix relay's buffers hold (measured: 837
        # signs, 1,630 requests pulled), not by what the client offers.
        assert WINDOW <= signs_at < 5_000 and held_at < 10_000
        # Reading again releases the stream: the next answers come.
        more = [next(call) for _ in range(WINDOW * 2)]
        assert all(r.code == 0 for r in more)
        call.cancel()
    pkcs11_daemon.as_principal(None).ok("audit", "verify")  # still serving, log intact


def test_the_certificate_chain_comes_only_when_asked(pkcs11_daemon):
    pa, _, credentials = _set_up(pkcs11_daemon)
    metadata = (("authorization", f"Bearer {pa.token}"),)
    with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:
        stub = pb_grpc.CredentialServiceStub(channel)
        request = pb.SignRequest(credential_id=credentials["ec-p256"], digest=bytes(32))
        plain = stub.Sign(request, metadata=metadata, timeout=30)
        assert plain.signature and list(plain.certificate_chain) == []
        request.include_chain = True
        chained = stub.Sign(request, metadata=metadata, timeout=30)
        assert len(chained.certificate_chain) >= 2  # the leaf and the agent's CA
        assert len(chained.SerializeToString()) > len(plain.SerializeToString()) + 1000
    # The command line asks for it where it shows it (--json).
    shown = pa.cli("credential", "sign", credentials["ec-p256"], "--in", "-", "--json", input=b"data")
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)["certificate_chain"]) >= 2


def test_a_pipelined_stream_is_signed_in_batches_each_audited_in_one_commit(start_daemon, fresh_token):
    """Requests waiting together are signed as one batch: their entries share one `append_many`
    (one timestamp, one commit), so a pipelined stream costs far fewer commits than signs."""
    port = _free_port()
    daemon = start_daemon("--keystore-backend", "pkcs11", "--pkcs11-module", fresh_token.module,
                          "--pkcs11-token", fresh_token.token, "--metrics-listen", f"127.0.0.1:{port}",
                          env={"MCAGENT_PKCS11_PIN": fresh_token.pin}, secrets=[fresh_token.pin])
    pa, software, credentials = _set_up(daemon)
    public_key = _public_key(pa, credentials["ec-p256"])
    before, commits_before = len(_signs(daemon)), _value(_scrape(port), "mcagent_audit_commit_duration_seconds_count")
    signs = 640
    messages = {str(n): b"batched %d" % n for n in range(signs)}
    with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
        replies = list(pb_grpc.CredentialServiceStub(channel).SignStream(
            (pb.SignStreamRequest(request_id=n, credential_id=credentials["ec-p256"], data=m)
             for n, m in messages.items()),
            metadata=(("authorization", f"Bearer {software.token}"),), timeout=120))
    assert sorted(r.request_id for r in replies) == sorted(messages)
    for reply in replies:
        assert reply.code == 0, reply.error
        verify(public_key, SignatureAlgorithm.ECDSA_SHA256, messages[reply.request_id], reply.signature)
    commits = _value(_scrape(port), "mcagent_audit_commit_duration_seconds_count") - commits_before
    entries = _signs(daemon)[before:]
    assert len(entries) == signs and all(e["outcome"] == "allowed" for e in entries)
    # One batch's entries are built together (one clock reading); signs one by one would each read it.
    batches = len({e["at"] for e in entries})
    assert batches <= signs // 8 and commits <= signs // 8, (batches, commits)


def test_streams_beyond_the_cap_are_refused_at_once_and_unary_signs_go_on(pkcs11_daemon):
    """Each open stream holds a server thread: with MAX_STREAMS idle streams open (cloud servers
    keeping theirs between signs) one more is refused RESOURCE_EXHAUSTED at once, a unary Sign
    still answers promptly, and a stream that ended frees its place."""
    _, software, credentials = _set_up(pkcs11_daemon)
    metadata = (("authorization", f"Bearer {software.token}"),)
    credential = credentials["ec-p256"]
    ends = [threading.Event() for _ in range(MAX_STREAMS + 1)]

    def held(index: int):
        yield pb.SignStreamRequest(request_id=str(index), credential_id=credential, data=b"x")
        ends[index].wait(60)  # the client keeps its stream open between signs

    with grpc.insecure_channel(f"unix:{pkcs11_daemon.socket}") as channel:
        stub = pb_grpc.CredentialServiceStub(channel)
        try:
            calls = [stub.SignStream(held(i), metadata=metadata, timeout=30) for i in range(MAX_STREAMS)]
            for index, call in enumerate(calls):
                assert next(call).request_id == str(index)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                next(stub.SignStream(held(MAX_STREAMS), metadata=metadata, timeout=10))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"at most {MAX_STREAMS} SignStreams" in refused.value.details()
            assert "one stream per client process" in refused.value.details()
            assert time.monotonic() - started < 5
            reply = stub.Sign(pb.SignRequest(credential_id=credential, data=b"y"), metadata=metadata, timeout=5)
            assert reply.signature
            ends[0].set()  # one client ends its stream: its place is free
            assert list(calls[0]) == []
            again = stub.SignStream(iter([pb.SignStreamRequest(request_id="again", credential_id=credential,
                                                               data=b"z")]), metadata=metadata, timeout=10)
            assert [r.request_id for r in again] == ["again"]
        finally:
            for end in ends:
                end.set()


def test_sigterm_with_streams_open_and_signing_stops_the_daemon(start_daemon, fresh_token):
    """Streams still open at SIGTERM (one idle, one sending without pause) are cut off after the
    grace period, their batches stop, and the daemon exits cleanly instead of waiting on them."""
    daemon = start_daemon(
        "--keystore-backend", "pkcs11", "--pkcs11-module", fresh_token.module, "--pkcs11-token", fresh_token.token,
        "--grace-period", "2", env={"MCAGENT_PKCS11_PIN": fresh_token.pin}, secrets=[fresh_token.pin])
    _, software, credentials = _set_up(daemon)
    metadata = (("authorization", f"Bearer {software.token}"),)
    hold, ended = threading.Event(), []

    def idle():
        yield pb.SignStreamRequest(request_id="idle", credential_id=credentials["ec-p256"], data=b"x")
        hold.wait(60)

    def busy():
        n = 0
        while not hold.is_set():
            n += 1
            yield pb.SignStreamRequest(request_id=str(n), credential_id=credentials["rsa-2048"], data=b"%d" % n)

    def client(requests, answered: threading.Event) -> None:
        with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
            try:
                for _ in pb_grpc.CredentialServiceStub(channel).SignStream(requests, metadata=metadata, timeout=60):
                    answered.set()
            except grpc.RpcError as exc:
                ended.append(exc.code())
            else:
                ended.append(grpc.StatusCode.OK)

    answered = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=client, args=(requests, event))
               for requests, event in zip((idle(), busy()), answered, strict=True)]
    for thread in threads:
        thread.start()
    try:
        assert all(event.wait(30) for event in answered)
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 20
        for thread in threads:
            thread.join(10)
        assert len(ended) == 2, "a stream did not end when the daemon stopped"
        assert "mcagent stopped" in daemon.log()
    finally:
        hold.set()
