"""Load generators for the signing benchmark; each runs in a process of its own.

- `raw_sign`: python-pkcs11 straight into SoftHSM2 (the limit), in threads.
- `ClientPool`: long-lived client processes that run jobs: unary Sign (Unix socket or mutual
  TLS), SignBatch, SignStream (pipelined), the agent's empty RPC, a bare grpcio server's empty
  unary call and stream, OpenSSH's ssh-agent, and PKCS#11 remoted by `p11-kit server`; so the
  cost of starting 32 Python processes is paid once.

Every client warms up (connects, signs once with each of its credentials) before a common
start time, then works until the nominal end and reports its own measured window: from the
start of its first measured request to the end of its last. Rates are divided by that window,
so a request that ends late is counted with the time it took.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

STREAM_IN_FLIGHT = 128  # a pipelined client's own limit (twice the agent's window per stream)
BARE_PAYLOAD = bytes(64)  # the bare grpcio server's messages


@dataclass
class Job:
    """What one client process does until `seconds` after the common start."""

    kind: str                       # grpc | batch | stream | empty | bare-unary | bare-stream | ssh-agent | p11kit
    seconds: float
    target: str = ""                # grpc target, ssh-agent socket path, or p11-kit server address
    token: str = ""                 # bearer token (Unix socket)
    tls: tuple[bytes, bytes, bytes] | None = None  # (ca, cert, key) for mutual TLS
    credential_ids: tuple[str, ...] = ()  # signed in turn (a spread of credentials, or one)
    key_blob: bytes = b""           # ssh-agent: which key
    rsa: bool = True
    batch: int = 64
    warm_each: bool = True          # warm up with every credential (False: the caller already used them)
    p11: tuple[str, str, str, bytes] = ("", "", "", b"")  # p11kit: (client module, token label, PIN, key id)


@dataclass
class Outcome:
    """What a client measured."""

    signs: int = 0
    began: float = 0.0  # wall clock: the first measured request started
    ended: float = 0.0  # ... the last one finished
    latencies: list[float] = field(default_factory=list)  # seconds, per request (per item for streams)
    errors: int = 0
    first_error: str = ""

    def fail(self, what: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or what


def _wait_until(moment: float) -> None:
    while time.time() < moment:
        time.sleep(min(0.001, max(0.0, moment - time.time())))


def _loop(outcome: Outcome, start: float, seconds: float, request: Any) -> Outcome:
    """Call `request()` (which returns how many signs it made) from `start` for `seconds`."""
    _wait_until(start)
    end = start + seconds
    outcome.began = time.time()
    while time.time() < end:
        began = time.perf_counter()
        try:
            outcome.signs += request()
            outcome.latencies.append(time.perf_counter() - began)
        except Exception as exc:  # counted and reported, never hidden
            outcome.fail(f"{type(exc).__name__}: {exc}")
    outcome.ended = time.time()
    return outcome


def _channel(job: Job) -> tuple[Any, tuple]:
    import grpc

    if job.tls:
        ca, cert, key = job.tls
        return grpc.secure_channel(job.target, grpc.ssl_channel_credentials(ca, key, cert)), ()
    return grpc.insecure_channel(job.target), (("authorization", f"Bearer {job.token}"),)


def _grpc_job(job: Job, start: float) -> Outcome:
    from mcagent.agent.api.v1 import agent_pb2 as pb
    from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

    channel, metadata = _channel(job)
    stub = pb_grpc.CredentialServiceStub(channel)
    digest = hashlib.sha256(os.urandom(16)).digest()
    if job.kind == "empty":  # the agent's floor: an RPC that does nothing
        stub.GetMachineTerms(pb.GetMachineTermsRequest(), timeout=60)
        outcome = _loop(Outcome(), start, job.seconds,
                        lambda: stub.GetMachineTerms(pb.GetMachineTermsRequest(), timeout=60) and 1)
    elif job.kind == "batch":
        request = pb.SignBatchRequest(items=[pb.SignBatchItem(credential_id=job.credential_ids[0], digest=digest)]
                                      * job.batch)

        def batch() -> int:
            reply = stub.SignBatch(request, metadata=metadata, timeout=60)
            if any(r.code for r in reply.results):  # a refused item is an error here
                raise RuntimeError(next(r.error for r in reply.results if r.code))
            return job.batch

        batch()
        outcome = _loop(Outcome(), start, job.seconds, batch)
    else:
        requests = [pb.SignRequest(credential_id=c, digest=digest) for c in job.credential_ids]
        for request in requests if job.warm_each else requests[:1]:  # warm up: connect, first uses
            stub.Sign(request, metadata=metadata, timeout=60)
        turn = [0]

        def sign() -> int:
            turn[0] += 1
            stub.Sign(requests[turn[0] % len(requests)], metadata=metadata, timeout=60)
            return 1

        outcome = _loop(Outcome(), start, job.seconds, sign)
    channel.close()
    return outcome


def _pipelined(call: Any, make: Any, ok: Any, start: float, seconds: float, warm_up: Any) -> Outcome:
    """Drive a bidirectional stream: send `make(n)` while fewer than STREAM_IN_FLIGHT are unanswered,
    until the end; every answer is matched to its request by id (`ok(reply)` gives (id, error))."""
    slots = threading.Semaphore(STREAM_IN_FLIGHT)
    sent: dict[str, float] = {}
    outcome = Outcome()
    end = start + seconds
    stop = threading.Event()

    def requests():
        yield from warm_up()
        _wait_until(start)
        outcome.began = time.time()
        n = 0
        while time.time() < end:
            if not slots.acquire(timeout=0.1):
                continue
            n += 1
            request_id, message = make(n)
            sent[request_id] = time.perf_counter()
            yield message
        stop.set()

    for reply in call(requests()):
        request_id, error = ok(reply)
        began = sent.pop(request_id, None)
        if began is None:  # a warm-up answer
            continue
        slots.release()
        if error:
            outcome.fail(error)
        else:
            outcome.signs += 1
            outcome.latencies.append(time.perf_counter() - began)
    outcome.ended = time.time()
    if sent:
        outcome.fail(f"{len(sent)} requests were never answered")
    return outcome


def _stream_job(job: Job, start: float) -> Outcome:
    from mcagent.agent.api.v1 import agent_pb2 as pb
    from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

    channel, metadata = _channel(job)
    stub = pb_grpc.CredentialServiceStub(channel)
    digest = hashlib.sha256(os.urandom(16)).digest()
    ids = job.credential_ids

    def warm_up():
        for n, credential_id in enumerate(ids):
            yield pb.SignStreamRequest(request_id=f"w{n}", credential_id=credential_id, digest=digest)

    outcome = _pipelined(
        lambda requests: stub.SignStream(requests, metadata=metadata, timeout=job.seconds + 120),
        lambda n: (str(n), pb.SignStreamRequest(request_id=str(n), credential_id=ids[n % len(ids)], digest=digest)),
        lambda reply: (reply.request_id, reply.error if reply.code else ""),
        start, job.seconds, warm_up)
    channel.close()
    return outcome


def _bare_job(job: Job, start: float) -> Outcome:
    """The bare grpcio server (bench/bare_server.py): an empty unary call, or a stream of echoes."""
    import grpc

    channel = grpc.insecure_channel(job.target)
    if job.kind == "bare-unary":
        call = channel.unary_unary("/bare.Bare/Unary")
        call(BARE_PAYLOAD, timeout=60)
        outcome = _loop(Outcome(), start, job.seconds, lambda: call(BARE_PAYLOAD, timeout=60) and 1)
    else:
        stream = channel.stream_stream("/bare.Bare/Stream")
        outcome = _pipelined(lambda requests: stream(requests, timeout=job.seconds + 120),
                             lambda n: (str(n), struct.pack(">Q", n) + BARE_PAYLOAD[8:]),
                             lambda reply: (str(struct.unpack(">Q", reply[:8])[0]), ""),
                             start, job.seconds, lambda: iter([struct.pack(">Q", 0) + BARE_PAYLOAD[8:]]))
    channel.close()
    return outcome


def _p11kit_job(job: Job, start: float) -> Outcome:
    """PKCS#11 remoted by `p11-kit server`: python-pkcs11 on p11-kit-client.so, one thread."""
    os.environ["P11_KIT_SERVER_ADDRESS"] = job.target  # read when the module initialises
    import pkcs11
    from mcagent.hsm.base import HashAlgorithm
    from pkcs11 import Attribute, Mechanism, ObjectClass

    module, token, pin, key_id = job.p11
    session = pkcs11.lib(module).get_token(token_label=token).open(user_pin=pin)
    key = next(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id}))
    digest = hashlib.sha256(os.urandom(16)).digest()
    payload = HashAlgorithm.SHA256.digest_info_prefix + digest if job.rsa else digest
    mechanism = Mechanism.RSA_PKCS if job.rsa else Mechanism.ECDSA
    key.sign(payload, mechanism=mechanism)
    outcome = _loop(Outcome(), start, job.seconds, lambda: key.sign(payload, mechanism=mechanism) and 1)
    session.close()
    return outcome


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def ssh_agent_request(sock: socket.socket, message_type: int, payload: bytes) -> tuple[int, bytes]:
    """One request to ssh-agent (draft-miller-ssh-agent): length, type, payload."""
    body = bytes([message_type]) + payload
    sock.sendall(struct.pack(">I", len(body)) + body)
    header = _read_exactly(sock, 4)
    reply = _read_exactly(sock, struct.unpack(">I", header)[0])
    return reply[0], reply[1:]


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("ssh-agent closed the connection")
        data += chunk
    return data


SSH_AGENTC_SIGN_REQUEST, SSH_AGENT_SIGN_RESPONSE, SSH_AGENT_RSA_SHA2_256 = 13, 14, 2


def _ssh_agent_job(job: Job, start: float) -> Outcome:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(job.target)
    flags = SSH_AGENT_RSA_SHA2_256 if job.rsa else 0
    payload = ssh_string(job.key_blob) + ssh_string(os.urandom(32)) + struct.pack(">I", flags)

    def sign() -> int:
        kind, _ = ssh_agent_request(sock, SSH_AGENTC_SIGN_REQUEST, payload)
        if kind != SSH_AGENT_SIGN_RESPONSE:
            raise RuntimeError(f"ssh-agent answered message type {kind}")
        return 1

    sign()  # warm up
    outcome = _loop(Outcome(), start, job.seconds, sign)
    sock.close()
    return outcome


_JOBS = {"grpc": _grpc_job, "batch": _grpc_job, "empty": _grpc_job, "stream": _stream_job,
         "bare-unary": _bare_job, "bare-stream": _bare_job, "ssh-agent": _ssh_agent_job, "p11kit": _p11kit_job}


def _client_main(jobs: Any, results: Any) -> None:
    while True:
        item = jobs.get()
        if item is None:
            return
        job, start = item
        try:
            outcome = _JOBS[job.kind](job, start)
        except Exception as exc:
            outcome = Outcome(errors=1, first_error=f"{type(exc).__name__}: {exc}")
        results.put(outcome)


class ClientPool:
    """Client processes, started once; each job runs on the first `clients` of them at once."""

    def __init__(self, size: int) -> None:
        context = mp.get_context("spawn")
        self._jobs = [context.Queue() for _ in range(size)]
        self._results = context.Queue()
        self._processes = [context.Process(target=_client_main, args=(queue, self._results), daemon=True)
                           for queue in self._jobs]
        for process in self._processes:
            process.start()

    def run(self, job: Job | list[Job], clients: int, at_start: Any = None,
            warm_up: float = 0.0) -> tuple[list[Outcome], Any]:
        """Run `job` on `clients` processes together; their clocks start in step.

        Args:
            job: one job for every client, or a list of `clients` jobs, one each (clients split
                between two daemons).
            at_start: called in this process at the common start (after every client's warm-up,
                if `warm_up` seconds were enough for it): sample the server's CPU there.
            warm_up: extra seconds before the start, for jobs that warm up many credentials.

        Returns:
            Each client's outcome, and what `at_start` returned.
        """
        jobs = job if isinstance(job, list) else [job] * clients
        assert len(jobs) == clients
        start = time.time() + 1.5 + 0.05 * clients + warm_up  # time for every client to connect and warm up
        for queue, each in zip(self._jobs[:clients], jobs, strict=True):
            queue.put((each, start))
        sampled = None
        if at_start is not None:
            _wait_until(start)
            sampled = at_start()
        return [self._results.get(timeout=jobs[0].seconds + warm_up + 180) for _ in range(clients)], sampled

    def close(self) -> None:
        for queue in self._jobs:
            queue.put(None)
        for process in self._processes:
            process.join(timeout=10)


# -- the limit: python-pkcs11 in-process ---------------------------------------------------------


def raw_sign(module: str, token: str, pin: str, key_id: bytes, rsa: bool, threads: int, seconds: float,
             conn: Any) -> None:
    """Sign digests with python-pkcs11 on `threads` threads, one session each (module with OS locking)."""
    import pkcs11
    from mcagent.hsm.base import HashAlgorithm
    from mcagent.hsm.pkcs11.locking import ModuleInitializer
    from pkcs11 import Attribute, Mechanism, ObjectClass

    lib = pkcs11.lib(module)
    ModuleInitializer.for_module(module, lib).ensure_initialized()
    login = lib.get_token(token_label=token).open(rw=True, user_pin=pin)
    digest = hashlib.sha256(b"benchmark").digest()
    payload = HashAlgorithm.SHA256.digest_info_prefix + digest if rsa else digest
    mechanism = Mechanism.RSA_PKCS if rsa else Mechanism.ECDSA
    outcomes = [Outcome() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        session = lib.get_token(token_label=token).open(rw=True)
        key = next(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id}))
        key.sign(payload, mechanism=mechanism)
        barrier.wait()
        _loop(outcomes[index], time.time(), seconds, lambda: key.sign(payload, mechanism=mechanism) and 1)
        session.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    cpu_start = time.process_time()
    for worker in workers:
        worker.join()
    cpu = time.process_time() - cpu_start
    login.close()
    conn.send({"outcomes": outcomes, "cpu": cpu})
