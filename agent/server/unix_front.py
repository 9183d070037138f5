"""The Unix-socket listener: learns each peer's uid with SO_PEERCRED and passes it on.

grpcio (Python) gives a servicer neither the connection's file descriptor nor the peer's
credentials. So the public socket is ours: for each connection we read the peer's uid
from the kernel (SO_PEERCRED), then relay the bytes to the gRPC server's own socket in a
private 0700 directory, from a socket bound to the name ``p-<uid>-<n>`` there. The gRPC
server reports that name as the peer address (`context.peer()`), and only the daemon's
user can create names in that directory, so the uid cannot be forged by other users.
Linux only (SO_PEERCRED).

One thread accepts and relays every connection (non-blocking sockets and a selector), so
an idle connection costs file descriptors but no thread. Connections are capped overall
and per uid, and a connection that moves no byte for `idle_timeout` seconds is closed.

Stopping comes in two steps so that calls in flight are not cut off (graceful drain):
`stop_accepting` closes the listening socket while the relayed connections carry on;
once the gRPC server has finished its calls, `stop` waits (up to its `drain` seconds)
for their last bytes to reach the clients, then closes what is left. The listening socket
may come from the service manager (socket activation): it is then used as it is, and its
path, which this process did not create, is never removed.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import re
import selectors
import socket
import struct
import threading
import time

from mcagent.agent.server.startup import bind_unix_listener

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_CHUNK = 64 * 1024  # largest single recv
_PENDING_LIMIT = 256 * 1024  # per direction: stop reading a side while this much waits for the other
_ACCEPTS_PER_WAKE = 64  # so a connect flood cannot starve the relayed connections
_REFUSAL_LOG_INTERVAL = 10.0  # seconds between warnings about refused connections


def peer_uid(peer: str, private_dir: str) -> int | None:
    """The uid encoded in a gRPC peer address of a relayed connection, or None."""
    match = re.fullmatch(rf"unix:{re.escape(private_dir)}/p-(\d+)-\d+", peer)
    return int(match.group(1)) if match else None


class _Direction:
    """Bytes on their way from `source` to `target`: what was read and not yet written."""

    def __init__(self, connection: _Connection, source: socket.socket, target: socket.socket) -> None:
        self.connection = connection
        self.source = source
        self.target = target
        self.pending: collections.deque[memoryview] = collections.deque()
        self.pending_bytes = 0
        self.eof = False  # the source has nothing more to send
        self.done = False  # ... and all of it reached the target, whose write side is shut

    def wants_read(self) -> bool:
        return not self.eof and self.pending_bytes < _PENDING_LIMIT


class _Connection:
    """One relayed connection: the client's socket, our upstream socket, both directions."""

    def __init__(self, uid: int, client: socket.socket, upstream: socket.socket) -> None:
        self.uid = uid
        self.client = client
        self.upstream = upstream
        self.outbound = _Direction(self, client, upstream)
        self.inbound = _Direction(self, upstream, client)
        self.registered: dict[socket.socket, int] = {}  # socket -> selector events, when registered
        self.last = time.monotonic()  # the last time a byte moved (for the idle timeout)
        self.both_reading = False  # both sockets registered for reading only, nothing pending


class UnixFront:
    """Listens on the public socket and relays each connection with its uid attached."""

    def __init__(self, public_path: str, mode: int, private_dir: str, grpc_path: str, *,
                 max_connections: int, max_connections_per_uid: int, idle_timeout: float,
                 listener: socket.socket | None = None) -> None:
        self.public_path = public_path
        self._inherited = listener  # a listening socket passed by the service manager, or None
        self._owns_path = False  # True once we bound public_path ourselves (and may remove it)
        self._mode = mode
        self._private_dir = private_dir
        self._grpc_path = grpc_path
        self._max_connections = max_connections
        self._max_per_uid = max_connections_per_uid
        self._idle_timeout = idle_timeout
        self._counter = itertools.count(1)
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._connections: set[_Connection] = set()
        self._now = time.monotonic()  # read once per wake-up of the loop: a connection's activity time
        self._next_sweep = 0.0  # when the idle connections are looked for next
        self._buffer = memoryview(bytearray(_CHUNK))  # every recv lands here; sent on from here
        self._per_uid: collections.Counter[int] = collections.Counter()
        self._refused_since_log = 0
        self._last_refusal_log = -_REFUSAL_LOG_INTERVAL
        self._accepts_paused_until = 0.0
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._no_accepts = threading.Event()  # stop_accepting() was called
        self._accepts_closed = threading.Event()  # ... and the loop has closed the listener
        self._drain_deadline = 0.0
        self._thread: threading.Thread | None = None

    def connection_count(self) -> int:
        """Connections relayed now (read by the metrics collector at scrape time)."""
        return len(self._connections)

    def start(self) -> None:
        """Bind the public socket with its mode (or take the inherited one) and start accepting."""
        if self._inherited is not None:
            listener, self._inherited = self._inherited, None
        else:
            listener = bind_unix_listener(self.public_path, self._mode)
            self._owns_path = True
        listener.setblocking(False)
        self._listener = listener
        self._wake_r.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="unix-front", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop_accepting(self, timeout: float = 5.0) -> None:
        """Close the listening socket (new connections are refused); relayed ones carry on."""
        self._no_accepts.set()
        self._wake()
        if self._thread is not None:
            self._accepts_closed.wait(timeout)

    def stop(self, drain: float = 0.0) -> None:
        """Stop accepting, let relayed connections finish for up to `drain` seconds, drop the
        rest and remove the public socket (if this process created it).

        Call it once the server behind has stopped: a connection whose server side has ended
        is closed as soon as its last bytes reached the client.
        """
        self._drain_deadline = time.monotonic() + drain
        self._no_accepts.set()
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._remove_path()

    def _remove_path(self) -> None:
        if self._owns_path:
            self._owns_path = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.public_path)

    # -- the loop ----------------------------------------------------------------------------

    def _drained(self) -> bool:
        """Stopping, and nothing left to relay (or no time left to relay it)."""
        if not self._stopping.is_set():
            return False
        for connection in [c for c in self._connections if c.inbound.done]:
            self._close(connection)  # the server side ended and the client has every byte
        return not self._connections or time.monotonic() >= self._drain_deadline

    def _close_listener(self) -> None:
        if self._listener is not None:
            if not self._accepts_paused_until:  # else it is unregistered already
                self._selector.unregister(self._listener)
            self._listener.close()  # new connections are refused by the kernel from here
            self._listener = None
            self._accepts_paused_until = 0.0
            self._remove_path()
        self._accepts_closed.set()

    def _loop(self) -> None:
        sweep = min(1.0, self._idle_timeout / 4)
        try:
            while not self._drained():
                if self._no_accepts.is_set() and not self._accepts_closed.is_set():
                    self._close_listener()
                timeout = 0.05 if self._stopping.is_set() else sweep
                ready = self._selector.select(timeout=timeout)
                self._now = time.monotonic()
                for key, events in ready:
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        with contextlib.suppress(BlockingIOError, InterruptedError):
                            self._wake_r.recv(64)
                    elif key.data is not None:
                        self._service(key.data, key.fileobj, events)
                if self._now >= self._next_sweep:
                    self._next_sweep = self._now + sweep
                    self._close_idle()
                if self._accepts_paused_until and time.monotonic() >= self._accepts_paused_until \
                        and self._listener is not None:
                    self._accepts_paused_until = 0.0
                    self._selector.register(self._listener, selectors.EVENT_READ, None)
        except Exception:
            log.exception("the Unix-socket relay failed; closing its connections")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._close_listener()
        for connection in list(self._connections):
            self._close(connection)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and the like: the listener stays readable, so pause it rather than spin;
                # the connections wait in the backlog.
                log.error("accept on %s failed: %s; pausing accepts for a second", self.public_path, exc)
                self._selector.unregister(self._listener)
                self._accepts_paused_until = time.monotonic() + 1.0
                return
            try:
                _, uid, _ = _UCRED.unpack(client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            except OSError:
                client.close()
                continue
            if len(self._connections) >= self._max_connections:
                self._refuse(client, uid, f"{len(self._connections)} connections open (--max-connections)")
            elif self._per_uid[uid] >= self._max_per_uid:
                self._refuse(client, uid, f"{self._per_uid[uid]} connections from this uid "
                                          "(--max-connections-per-uid)")
            else:
                self._relay(client, uid)

    def _refuse(self, client: socket.socket, uid: int, why: str) -> None:
        client.close()
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            more = self._refused_since_log - 1
            log.warning("refused a connection from uid %d on %s: %s%s", uid, self.public_path, why,
                        f" ({more} more refused since the last warning)" if more else "")
            self._last_refusal_log = now
            self._refused_since_log = 0

    def _relay(self, client: socket.socket, uid: int) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name = os.path.join(self._private_dir, f"p-{uid}-{next(self._counter)}")
        try:
            upstream.bind(name)
            upstream.setblocking(False)
            upstream.connect(self._grpc_path)  # AF_UNIX: completes at once, or EAGAIN if its backlog is full
            client.setblocking(False)
        except OSError as exc:
            log.error("cannot relay a connection from uid %d on %s: %s", uid, self.public_path, exc)
            upstream.close()
            client.close()
            return
        finally:
            if os.path.exists(name):
                os.unlink(name)  # the bound name lives on in the connection; the file is not needed
        connection = _Connection(uid, client, upstream)
        self._connections.add(connection)
        self._per_uid[uid] += 1
        self._update(connection)

    def _service(self, connection: _Connection, sock: socket.socket, events: int) -> None:
        if connection not in self._connections:
            return  # closed earlier in this round
        try:
            if events & selectors.EVENT_WRITE:
                self._flush(connection.outbound if sock is connection.upstream else connection.inbound)
            if events & selectors.EVENT_READ:
                self._read(connection.outbound if sock is connection.client else connection.inbound)
        except OSError:  # reset, broken pipe: the connection is over in both directions
            self._close(connection)
            return
        if connection.outbound.done and connection.inbound.done:
            self._close(connection)
        else:
            self._update(connection)

    def _read(self, direction: _Direction) -> None:
        if not direction.wants_read():
            return
        try:
            size = direction.source.recv_into(self._buffer, min(_CHUNK, _PENDING_LIMIT - direction.pending_bytes))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # A reset ends this direction only: the other one still delivers what it holds (the
            # server resets its side when it closes with our last bytes unread, as a stopping
            # server does, after writing a response the client has not received yet).
            size = 0
        if not size:
            direction.eof = True
            return self._flush(direction)
        direction.connection.last = self._now
        data = self._buffer[:size]  # the one copy, kernel to us
        if not direction.pending:  # usually: sent on at once, from the buffer
            try:
                sent = direction.target.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the target is gone: nothing more can reach it
                direction.eof = direction.done = True
                return
            if sent == size:
                return
            data = data[sent:]
        direction.pending.append(memoryview(bytes(data)))  # what the target could not take yet: kept
        direction.pending_bytes += len(data)
        self._flush(direction)

    def _flush(self, direction: _Direction) -> None:
        while direction.pending:
            try:
                sent = direction.target.send(direction.pending[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the target is gone: nothing more can reach it
                direction.pending.clear()
                direction.pending_bytes = 0
                direction.eof = direction.done = True
                return
            direction.connection.last = self._now
            direction.pending_bytes -= sent
            if sent == len(direction.pending[0]):
                direction.pending.popleft()
            else:
                direction.pending[0] = direction.pending[0][sent:]
                return  # the target's buffer is full
        if direction.eof and not direction.done:
            direction.done = True
            with contextlib.suppress(OSError):
                direction.target.shutdown(socket.SHUT_WR)  # half-close: pass the EOF on

    def _update(self, connection: _Connection) -> None:
        """Register each socket for what its directions need now (nothing: unregistered)."""
        outbound, inbound = connection.outbound, connection.inbound
        if connection.both_reading and not (outbound.pending or inbound.pending or outbound.eof or inbound.eof):
            return  # the usual case after a message was passed on at once: nothing changes
        for sock, reading, writing in ((connection.client, connection.outbound, connection.inbound),
                                       (connection.upstream, connection.inbound, connection.outbound)):
            events = (selectors.EVENT_READ if reading.wants_read() else 0) | (
                selectors.EVENT_WRITE if writing.pending else 0)
            current = connection.registered.get(sock, 0)
            if events == current:
                continue
            if not events:
                self._selector.unregister(sock)
                del connection.registered[sock]
            elif current:
                self._selector.modify(sock, events, connection)
                connection.registered[sock] = events
            else:
                self._selector.register(sock, events, connection)
                connection.registered[sock] = events
        connection.both_reading = (connection.registered.get(connection.client) == selectors.EVENT_READ
                                   and connection.registered.get(connection.upstream) == selectors.EVENT_READ)

    def _close_idle(self) -> None:
        """Close the connections idle for `idle_timeout` (a scan each sweep, nothing per byte)."""
        deadline = self._now - self._idle_timeout
        for connection in [c for c in self._connections if c.last <= deadline]:
            log.debug("closing a connection from uid %d: idle for %.0f s", connection.uid, self._idle_timeout)
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        for sock in list(connection.registered):
            self._selector.unregister(sock)
        connection.registered.clear()
        connection.client.close()
        connection.upstream.close()
        if connection in self._connections:
            self._connections.discard(connection)
            self._per_uid[connection.uid] -= 1
            if not self._per_uid[connection.uid]:
                del self._per_uid[connection.uid]
