"""Publishing the agent's CRL over plain HTTP (`mcagent serve --crl-listen HOST:PORT`).

Relying parties fetch a CRL from the URL in a leaf's cRLDistributionPoints, usually without
TLS (RFC 5280 §4.2.1.13: CRLs are signed, so http is the norm). The listener answers
`GET /crl` (and `HEAD /crl`) with the DER CRL, `Content-Type: application/pkix-crl`, and
404 to everything else: no other paths, no directory listing, nothing from the disk.

The CRL is not signed per request: `CrlCache` keeps the last one and signs a new one only
when the set of revoked certificates differs from the one it lists (a revocation by this
process or by another one sharing the store), or once half of its validity has passed, so
that a cached copy downstream never outlives nextUpdate.
"""

from __future__ import annotations

import datetime as dt
import http.server
import logging
import socket
import sys
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mcagent.agent.clock import Clock, system_clock
from mcagent.agent.domain.service import AgentService

log = logging.getLogger(__name__)

CRL_PATH = "/crl"
CONTENT_TYPE = "application/pkix-crl"
REQUEST_TIMEOUT_SECONDS = 5.0  # the whole exchange: a client that stalls mid-request is dropped
MAX_CONCURRENT_REQUESTS = 16  # beyond this, a 503 at once
MAX_REQUESTS_PER_PEER = 4  # one address cannot take every slot


class CrlCache:
    """The current CRL as DER, re-signed only when needed (thread-safe)."""

    def __init__(self, service: AgentService, clock: Clock = system_clock) -> None:
        self._service = service
        self._clock = clock
        self._lock = threading.Lock()
        self._der: bytes | None = None
        self._serials: frozenset[int] = frozenset()
        self._refresh_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def der(self) -> bytes:
        """The DER CRL; a new one when something was revoked since, or it is half-way to nextUpdate."""
        with self._lock:
            serials = frozenset(serial for serial, _ in self._service.crl_entries())
            if self._der is None or serials != self._serials or self._clock() >= self._refresh_at:
                crl = self._service.crl()
                self._der = crl.public_bytes(serialization.Encoding.DER)
                self._serials = frozenset(entry.serial_number for entry in crl)
                assert crl.next_update_utc is not None  # build_crl always sets it
                self._refresh_at = crl.last_update_utc + (crl.next_update_utc - crl.last_update_utc) / 2
                log.info("signed CRL number %s listing %d revoked certificates",
                         crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number, len(self._serials))
            return self._der


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD /crl → the CRL; any other path or method → 404."""

    server: _CrlHttpServer
    timeout = REQUEST_TIMEOUT_SECONDS  # per read
    server_version = "mcagent-crl"

    def setup(self) -> None:
        """Bound the whole exchange, not only each read: a client trickling bytes is cut off."""
        super().setup()
        self._deadline = threading.Timer(REQUEST_TIMEOUT_SECONDS, self.server.cut, args=(self.request,))
        self._deadline.daemon = True
        self._deadline.start()

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        if self.path != CRL_PATH:
            self._plain(404, b"not found: this server publishes only /crl\n", body=body)
            return
        try:
            der = self.server.cache.der()
        except Exception:
            log.exception("cannot build the CRL for %s", self.client_address[0])
            self._plain(503, b"the CRL is unavailable; try again later\n", body=body)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(der)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(der)

    def _plain(self, code: int, text: bytes, *, body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if body:
            self.wfile.write(text)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server raises itself (bad request line, unsupported method): short, no HTML."""
        if code == 501:  # a method other than GET/HEAD: nothing here
            code, message = 404, "not found"
        self.close_connection = True
        try:
            self._plain(code, f"{code} {message or ''}\n".encode("ascii", "replace"),
                        body=getattr(self, "command", "") != "HEAD")
        except OSError:
            pass

    def version_string(self) -> str:
        """The Server header: no Python version."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("crl http %s: " + format, self.client_address[0], *args)


class _CrlHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    handler: type[http.server.BaseHTTPRequestHandler] = _Handler  # the metrics listener reuses this server

    def __init__(self, address: tuple[str, int], cache: CrlCache) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.cache = cache
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self._lock = threading.Lock()
        self._open: dict[Any, str] = {}  # connection -> peer address
        self._per_peer: dict[str, int] = {}
        super().__init__(address, self.handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """At most MAX_CONCURRENT_REQUESTS at once, MAX_REQUESTS_PER_PEER from one address; beyond
        that, a 503 at once (the accept loop never waits for a slot, so slow clients cannot keep
        others out)."""
        peer = client_address[0] if isinstance(client_address, tuple) else ""
        with self._lock:
            full = self._per_peer.get(peer, 0) >= MAX_REQUESTS_PER_PEER
            if not full:
                self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        if full or not self._slots.acquire(blocking=False):
            if not full:
                self._release_peer(peer)
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._lock:
            self._open[request] = peer
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def _done(self, request: Any) -> None:
        with self._lock:
            peer = self._open.pop(request, None)
        if peer is not None:
            self._release_peer(peer)
        self._slots.release()

    def _release_peer(self, peer: str) -> None:
        with self._lock:
            left = self._per_peer.get(peer, 1) - 1
            if left > 0:
                self._per_peer[peer] = left
            else:
                self._per_peer.pop(peer, None)

    @staticmethod
    def cut(request: Any) -> None:
        """End a connection from outside its thread (deadline passed, or stopping)."""
        try:
            request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cut_all(self) -> None:
        """End every open connection (at stop)."""
        with self._lock:
            open_now = list(self._open)
        for request in open_now:
            self.cut(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Through the agent's log, not raw to stderr. A client that went away (or was cut off at
        its deadline) is its own business: one debug line, no traceback, nothing to flood with."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, OSError)):
            log.debug("HTTP request from %s ended early: %s", client_address[0], type(error).__name__)
            return
        log.warning("HTTP request from %s failed", client_address[0], exc_info=True)


class HttpListener:
    """A bounded HTTP server in a daemon thread (the CRL's, the metrics'); `stop()` closes it."""

    def __init__(self, server: _CrlHttpServer, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name=name, daemon=True)

    @property
    def address(self) -> str:
        """HOST:PORT actually bound (the port is the kernel's choice when 0 was asked for)."""
        host, port = self._server.server_address[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end open connections, close the socket, wait for the loop to end."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.cut_all()
        self._server.server_close()


class CrlHttpListener(HttpListener):
    """The opt-in HTTP listener for GET /crl."""

    def __init__(self, host: str, port: int, service: AgentService) -> None:
        """Bind HOST:PORT now (so a port in use stops start-up).

        Raises:
            OSError: the address cannot be bound.
        """
        super().__init__(_CrlHttpServer((host, port), CrlCache(service)), "crl-http")
