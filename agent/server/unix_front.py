"""The Unix-socket listener: learns each peer's uid with SO_PEERCRED and passes it on.

grpcio (Python) gives a servicer neither the connection's file descriptor nor the peer's
credentials. So the public socket is ours: for each connection we read the peer's uid
from the kernel (SO_PEERCRED), then relay the bytes to the gRPC server's own socket in a
private 0700 directory, from a socket bound to the name ``p-<uid>-<n>`` there. The gRPC
server reports that name as the peer address (`context.peer()`), and only the daemon's
user can create names in that directory, so the uid cannot be forged by other users.
Linux only (SO_PEERCRED).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import struct
import threading

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_BUFFER = 256 * 1024


def peer_uid(peer: str, private_dir: str) -> int | None:
    """The uid encoded in a gRPC peer address of a relayed connection, or None."""
    match = re.fullmatch(rf"unix:{re.escape(private_dir)}/p-(\d+)-\d+", peer)
    return int(match.group(1)) if match else None


class UnixFront:
    """Listens on the public socket and relays each connection with its uid attached."""

    def __init__(self, public_path: str, mode: int, private_dir: str, grpc_path: str) -> None:
        self.public_path = public_path
        self._mode = mode
        self._private_dir = private_dir
        self._grpc_path = grpc_path
        self._counter = itertools.count(1)
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = False

    def start(self) -> None:
        """Bind the public socket with its mode and start accepting."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.public_path)
        os.chmod(self.public_path, self._mode)
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="unix-front", daemon=True).start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                if self._closing:
                    return
                log.exception("accept on %s failed", self.public_path)
                continue
            try:
                self._relay(client)
            except OSError as exc:
                log.error("cannot relay a connection on %s: %s", self.public_path, exc)
                client.close()

    def _relay(self, client: socket.socket) -> None:
        _, uid, _ = _UCRED.unpack(client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name = os.path.join(self._private_dir, f"p-{uid}-{next(self._counter)}")
        try:
            upstream.bind(name)
            upstream.connect(self._grpc_path)
        except OSError:
            upstream.close()
            raise
        finally:
            if os.path.exists(name):
                os.unlink(name)  # the bound name lives on in the connection; the file is not needed
        pair = (client, upstream)
        with self._lock:
            self._connections.update(pair)
        remaining = [2]  # both directions must end before the sockets close
        for source, target in (pair, pair[::-1]):
            threading.Thread(target=self._pump, args=(source, target, pair, remaining), daemon=True,
                             name=f"relay-uid{uid}").start()

    def _pump(self, source: socket.socket, target: socket.socket, pair: tuple[socket.socket, socket.socket],
              remaining: list[int]) -> None:
        try:
            while data := source.recv(_BUFFER):
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with self._lock:
                remaining[0] -= 1
                done = remaining[0] == 0
                if done:
                    self._connections.difference_update(pair)
            if done:
                for sock in pair:
                    sock.close()

    def stop(self) -> None:
        """Stop accepting, drop every relayed connection and remove the public socket."""
        self._closing = True
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if os.path.exists(self.public_path):
            os.unlink(self.public_path)
