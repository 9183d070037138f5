"""Load generators for the signing benchmark; each runs in a process of its own.

- `raw_sign`: python-pkcs11 straight into SoftHSM2 (the limit), in threads.
- `ClientPool`: long-lived client processes that run jobs against the agent (unary or batch
  Sign over the Unix socket or mutual TLS) or against OpenSSH's ssh-agent, so that the cost
  of starting 32 Python processes is paid once.
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


@dataclass
class Job:
    """What one client process does for `seconds`."""

    kind: str                       # "grpc" | "batch" | "empty" | "ssh-agent"
    seconds: float
    target: str = ""                # grpc target, or ssh-agent socket path
    token: str = ""                 # bearer token (Unix socket)
    tls: tuple[bytes, bytes, bytes] | None = None  # (ca, cert, key) for mutual TLS
    credential_id: str = ""
    key_blob: bytes = b""           # ssh-agent: which key
    rsa: bool = True
    batch: int = 64


@dataclass
class Outcome:
    """What a client measured."""

    signs: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, per request
    errors: int = 0
    first_error: str = ""


def _grpc_job(job: Job, start: float) -> Outcome:
    import grpc
    from mcagent.agent.api.v1 import agent_pb2 as pb
    from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

    if job.tls:
        ca, cert, key = job.tls
        channel = grpc.secure_channel(job.target, grpc.ssl_channel_credentials(ca, key, cert))
        metadata: tuple = ()
    else:
        channel = grpc.insecure_channel(job.target)
        metadata = (("authorization", f"Bearer {job.token}"),)
    stub = pb_grpc.CredentialServiceStub(channel)
    digest = hashlib.sha256(os.urandom(16)).digest()
    if job.kind == "empty":  # the floor: an RPC that does nothing
        request, call, per_request = pb.GetMachineTermsRequest(), stub.GetMachineTerms, 1
    elif job.kind == "batch":
        request = pb.SignBatchRequest(items=[pb.SignBatchItem(credential_id=job.credential_id, digest=digest)]
                                      * job.batch)
        call, per_request = stub.SignBatch, job.batch
    else:
        request = pb.SignRequest(credential_id=job.credential_id, digest=digest)
        call, per_request = stub.Sign, 1
    call(request, metadata=metadata, timeout=60)  # connect and warm up before the clock starts
    outcome = Outcome()
    while time.time() < start:
        time.sleep(0.001)
    end = start + job.seconds
    while time.time() < end:
        began = time.perf_counter()
        try:
            reply = call(request, metadata=metadata, timeout=60)
            if job.kind == "batch" and any(r.code for r in reply.results):  # a refused item is an error here
                raise RuntimeError(next(r.error for r in reply.results if r.code))
            outcome.signs += per_request
            outcome.latencies.append(time.perf_counter() - began)
        except Exception as exc:  # counted and reported, never hidden
            outcome.errors += 1
            outcome.first_error = outcome.first_error or f"{type(exc).__name__}: {exc}"
    channel.close()
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
    outcome = Outcome()
    kind, _ = ssh_agent_request(sock, SSH_AGENTC_SIGN_REQUEST, payload)  # warm up
    if kind != SSH_AGENT_SIGN_RESPONSE:
        return Outcome(errors=1, first_error=f"ssh-agent answered message type {kind}")
    while time.time() < start:
        time.sleep(0.001)
    end = start + job.seconds
    while time.time() < end:
        began = time.perf_counter()
        kind, _ = ssh_agent_request(sock, SSH_AGENTC_SIGN_REQUEST, payload)
        if kind == SSH_AGENT_SIGN_RESPONSE:
            outcome.signs += 1
            outcome.latencies.append(time.perf_counter() - began)
        else:
            outcome.errors += 1
            outcome.first_error = outcome.first_error or f"ssh-agent answered message type {kind}"
    sock.close()
    return outcome


def _client_main(jobs: Any, results: Any) -> None:
    while True:
        item = jobs.get()
        if item is None:
            return
        job, start = item
        try:
            outcome = _ssh_agent_job(job, start) if job.kind == "ssh-agent" else _grpc_job(job, start)
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

    def run(self, job: Job, clients: int) -> list[Outcome]:
        """Run `job` on `clients` processes together; their clocks start in step."""
        start = time.time() + 1.5 + 0.05 * clients  # time for every client to connect first
        for queue in self._jobs[:clients]:
            queue.put((job, start))
        return [self._results.get(timeout=job.seconds + 120) for _ in range(clients)]

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
    ModuleInitializer.for_module(module).ensure_initialized()
    login = lib.get_token(token_label=token).open(rw=True, user_pin=pin)
    digest = hashlib.sha256(b"benchmark").digest()
    payload = HashAlgorithm.SHA256.digest_info_prefix + digest if rsa else digest
    mechanism = Mechanism.RSA_PKCS if rsa else Mechanism.ECDSA
    counts, latencies = [0] * threads, [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        session = lib.get_token(token_label=token).open(rw=True)
        key = next(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id}))
        key.sign(payload, mechanism=mechanism)
        barrier.wait()
        end = time.time() + seconds
        while time.time() < end:
            began = time.perf_counter()
            key.sign(payload, mechanism=mechanism)
            latencies[index].append(time.perf_counter() - began)
            counts[index] += 1
        session.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.join()
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    login.close()
    total = sum(counts)
    conn.send({"signs": total, "seconds": wall, "cpu": cpu,
               "latencies": sorted(x for per in latencies for x in per)})
