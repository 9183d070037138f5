"""The Unix-socket relay on its own: half-close, large transfers both ways, the bound name, stop.

The e2e tests drive it in front of the real gRPC server; here the upstream is a plain socket
server so that byte streams gRPC never produces (a half-close, megabytes held back by a slow
reader) can be checked exactly.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading

import pytest
from mcagent.agent.server.unix_front import UnixFront, peer_uid

SIZE = 8 * 1024 * 1024  # far above the relay's per-direction buffer: backpressure must engage


@pytest.fixture
def relay():
    """A started UnixFront whose upstream answers each connection, after the client's EOF, with
    the SHA-256 of what it read followed by that many bytes again; it reports the peer names it saw."""
    with tempfile.TemporaryDirectory(prefix="front-") as directory:
        private = os.path.join(directory, "private")
        os.mkdir(private, 0o700)
        upstream_path = os.path.join(private, "upstream.sock")
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.bind(upstream_path)
        upstream.listen()
        peers: list[str] = []

        def answer(connection: socket.socket) -> None:
            with connection:
                digest, total = hashlib.sha256(), 0
                try:
                    while data := connection.recv(65536):
                        digest.update(data)
                        total += len(data)
                    connection.sendall(digest.digest() + bytes(total))
                except OSError:
                    pass  # the relay dropped the connection (stop)

        def serve() -> None:
            while True:
                try:
                    connection, peer = upstream.accept()
                except OSError:
                    return
                peers.append(f"unix:{peer}")
                threading.Thread(target=answer, args=(connection,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        front = UnixFront(os.path.join(directory, "public.sock"), 0o600, private, upstream_path,
                          max_connections=16, max_connections_per_uid=16, idle_timeout=60)
        front.start()
        yield front, peers, private
        front.stop()
        upstream.close()


def _exchange(path: str, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(60)
        client.connect(path)
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)  # the upstream answers only after this EOF arrives
        chunks = []
        while data := client.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_half_close_and_megabytes_both_ways_on_several_connections_at_once(relay):
    front, peers, private = relay
    payloads = [os.urandom(SIZE) for _ in range(4)]
    answers: list[bytes | None] = [None] * len(payloads)

    def run(index: int) -> None:
        answers[index] = _exchange(front.public_path, payloads[index])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for payload, answer in zip(payloads, answers, strict=True):
        assert answer == hashlib.sha256(payload).digest() + bytes(len(payload))
    assert len(peers) == 4 and {peer_uid(peer, private) for peer in peers} == {os.getuid()}


def test_stop_closes_relayed_connections_and_removes_the_socket(relay):
    front, _, _ = relay
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(60)
    client.connect(front.public_path)
    client.sendall(b"partial")  # no EOF: the upstream is still reading when we stop
    front.stop()
    try:
        assert client.recv(65536) == b""
    except ConnectionResetError:
        pass  # closed before it read our bytes: the kernel says so with a reset
    assert not os.path.exists(front.public_path)
    client.close()


def test_a_server_that_resets_after_answering_still_delivers_its_whole_answer(tmp_path):
    """A stopping gRPC server writes its last response and closes with the client's last bytes
    unread, which resets our upstream socket: the response the relay holds must still arrive."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.bind(str(private / "upstream.sock"))
    upstream.listen()
    answer = os.urandom(384 * 1024)  # fits in the buffers on the way: the server can close before the client reads

    def serve() -> None:
        connection, _ = upstream.accept()
        connection.recv(5)  # the request
        connection.sendall(answer)
        threading.Event().wait(0.3)  # the client's later bytes arrive and are never read
        connection.close()  # closed with unread data: the relay's upstream socket is reset

    threading.Thread(target=serve, daemon=True).start()
    front = UnixFront(str(tmp_path / "public.sock"), 0o600, str(private), str(private / "upstream.sock"),
                      max_connections=4, max_connections_per_uid=4, idle_timeout=60)
    front.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(front.public_path)
            client.sendall(b"hello")
            threading.Event().wait(0.1)
            client.sendall(b"more bytes the server never reads")
            threading.Event().wait(0.5)  # the server has closed: most of the answer waits in the relay
            client.sendall(b"an acknowledgement")  # a write towards a server that is gone
            threading.Event().wait(0.2)
            received = bytearray()
            while data := client.recv(65536):
                received += data
        assert bytes(received) == answer
    finally:
        front.stop()
        upstream.close()
