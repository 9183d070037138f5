"""The daemon: opens storage and key backends, serves gRPC, stops cleanly on SIGTERM.

Listeners: the Unix socket (always; through `UnixFront`, which identifies each peer's uid;
bound here or inherited by socket activation), TCP with mutual TLS (--listen), and plain TCP
for development only (--insecure-listen).

Stopping drains: health goes NOT_SERVING (and systemd hears STOPPING=1), every listener
stops accepting, calls in flight get up to the grace period to finish and reach their
clients, then everything closes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from mcagent.agent.api.v1 import agent_pb2, agent_pb2_grpc
from mcagent.agent.app import build_service
from mcagent.agent.config import Config, ConfigError, split_host_port
from mcagent.agent.domain import certificates
from mcagent.agent.domain.errors import Unavailable
from mcagent.agent.domain.service import AgentService
from mcagent.agent.keys import KeyStores
from mcagent.agent.server import startup, systemd
from mcagent.agent.server.admin_servicer import AdminServicer
from mcagent.agent.server.auth import Authenticator, AuthInterceptor
from mcagent.agent.server.crl_http import CrlHttpListener
from mcagent.agent.server.health import HealthMonitor
from mcagent.agent.server.interceptors import ErrorInterceptor
from mcagent.agent.server.metrics import Metrics, MetricsHttpListener
from mcagent.agent.server.servicer import (
    AuditServicer,
    BusinessServicer,
    CAServicer,
    CredentialServicer,
    NotificationServicer,
    PrincipalServicer,
)
from mcagent.agent.server.sign_stream import MAX_STREAMS, SignStreams
from mcagent.agent.server.startup import DataFolderLock, WorkerRole
from mcagent.agent.server.unix_front import UnixFront
from mcagent.agent.storage import SqlRecords, open_storage
from mcagent.hsm import open_keystore
from mcagent.hsm.errors import KeyStoreError

log = logging.getLogger(__name__)

SERVICE_NAMES = [service.full_name for service in agent_pb2.DESCRIPTOR.services_by_name.values()]
FRONT_DRAIN_SECONDS = 5.0  # after the server stopped: time for the last bytes to reach Unix-socket clients
REMINDER_INTERVAL_SECONDS = 60.0
INTERRUPTED_AFTER = dt.timedelta(minutes=10)  # a creation still "creating" this long after it began failed
# Every open SignStream holds one rpc thread for its life (its responses wait for the next
# batch); sign_stream caps them at MAX_STREAMS, so RESERVED_THREADS stay for unary signs and
# admin calls, which hold a thread only for one call (docs/decisions.md).
RESERVED_THREADS = 16
RPC_THREADS = MAX_STREAMS + RESERVED_THREADS


class AgentServer:
    """Owns start-up and graceful stop of everything the daemon runs."""

    def __init__(self, config: Config, worker: WorkerRole | None = None) -> None:
        """`worker` is set in a worker of a supervised daemon (`serve --workers N`, supervisor.py):
        the supervisor then holds the data folder lock and has bound the Unix socket."""
        self.config = config
        self._worker = worker
        self._lock: DataFolderLock | None = None
        self._storage: SqlRecords | None = None
        self._keys: KeyStores | None = None
        self._server: grpc.Server | None = None
        self._front: UnixFront | None = None
        self._private_dir: str | None = None
        self._stopping = threading.Event()
        self._service: AgentService | None = None
        self._crl_http: CrlHttpListener | None = None
        self._health: HealthMonitor | None = None
        self._inherited: socket.socket | None = None  # the Unix socket passed by socket activation
        self._metrics_http: MetricsHttpListener | None = None
        self._streams: SignStreams | None = None

    def start(self) -> None:
        """Open everything and start serving.

        Raises:
            ConfigError: the daemon cannot start; the message says why.
        """
        config, worker = self.config, self._worker
        startup.prepare_data_dir(config)
        startup.raise_open_file_limit(config.max_connections)
        if worker is not None:
            self._inherited = worker.listener
        else:
            self._lock = startup.lock_data_folder(config)  # first: a second daemon stops here
            self._inherited = startup.socket_activated_listener()
            if self._inherited is None:
                startup.prepare_socket_path(config.socket_path)
        try:
            token_uri = config.pkcs11_store_uri()
            self._keys = KeyStores(
                default_backend=config.default_backend,
                keystore_files=config.keystore_files,
                keystore_password=config.keystore_password,
                pkcs11=open_keystore(token_uri, config.pkcs11_pin or "") if token_uri else None,
            )
        except KeyStoreError as exc:
            raise ConfigError(str(exc)) from None
        database = config.database_location()
        for path in [] if config.database else [database, database + "-wal", database + "-shm"]:
            startup.check_database_path(path)
        try:
            self._storage = open_storage(database)
        except Unavailable as exc:
            raise ConfigError(str(exc)) from None
        metrics = Metrics() if config.metrics_listen else None
        service = self._service = build_service(
            self._storage, self._keys, timezone=config.timezone,
            publication=certificates.Publication(crl_url=config.crl_url, policy_oid=config.certificate_policy),
            observer=metrics)
        if self._primary:
            self._start_up_tasks(service, first_start=worker is None or worker.first_start)

        # The gRPC server's own socket lives in a private directory (short path: AF_UNIX
        # names are limited to 108 bytes); UnixFront relays the public socket to it.
        self._private_dir = tempfile.mkdtemp(prefix="mcagent-")
        grpc_path = os.path.join(self._private_dir, "grpc.sock")
        authenticator = Authenticator(service, config.admin_uids, self._private_dir)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=RPC_THREADS, thread_name_prefix="rpc"),
            interceptors=[ErrorInterceptor(), AuthInterceptor(authenticator)],  # errors outermost
            # No BDP probing: a stream's receive window stays at HTTP/2's 64 KB, so requests a
            # client sends ahead of the agent (SignStream's back-pressure) hold at most that much.
            # Every worker binds the same TCP ports (SO_REUSEPORT).
            options=[("grpc.http2.bdp_probe", 0)] + ([("grpc.so_reuseport", 1)] if worker else []),
        )
        agent_pb2_grpc.add_BusinessServiceServicer_to_server(BusinessServicer(service), server)
        self._streams = SignStreams(service)
        agent_pb2_grpc.add_CredentialServiceServicer_to_server(CredentialServicer(service, self._streams), server)
        agent_pb2_grpc.add_PrincipalServiceServicer_to_server(PrincipalServicer(service), server)
        agent_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(service), server)
        agent_pb2_grpc.add_NotificationServiceServicer_to_server(NotificationServicer(service), server)
        agent_pb2_grpc.add_CAServiceServicer_to_server(CAServicer(service), server)
        agent_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(service), server)
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        checks = {"database": self._storage.health_problem}
        if config.pkcs11_store_uri():
            checks["token"] = self._keys.health_problem
        self._health = HealthMonitor(health_servicer, SERVICE_NAMES, checks)
        self._health.start()
        reflection.enable_server_reflection([*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        server.add_insecure_port(f"unix:{grpc_path}")
        if config.listen:
            credentials = grpc.ssl_server_credentials(
                [(config.tls_key, config.tls_cert)], root_certificates=config.client_ca, require_client_auth=True
            )
            if server.add_secure_port(config.listen, credentials) == 0:
                raise ConfigError(f"cannot listen on {config.listen}")
        if config.insecure_listen:
            if server.add_insecure_port(config.insecure_listen) == 0:
                raise ConfigError(f"cannot listen on {config.insecure_listen}")
            log.warning("!" * 72)
            log.warning("PLAIN TCP WITHOUT TLS on %s: bearer tokens and signatures cross the network "
                        "unprotected. For development only; use --listen with mutual TLS.", config.insecure_listen)
            log.warning("!" * 72)
        server.start()
        self._server = server
        socket_path = config.socket_path
        if self._inherited is not None:
            socket_path = self._inherited.getsockname() or "(inherited, unnamed)"
        self._front = UnixFront(socket_path, config.socket_mode, self._private_dir, grpc_path,
                                max_connections=config.max_connections,
                                max_connections_per_uid=config.max_connections_per_uid,
                                idle_timeout=config.idle_timeout, listener=self._inherited)
        self._inherited = None
        self._front.start()
        threading.Thread(target=self._remind, args=(service,), name="reminders", daemon=True).start()
        if config.crl_listen and self._primary:  # one CRL listener per daemon (docs/decisions.md)
            self._start_crl_http(service, config.crl_listen)
        if metrics is not None:
            self._start_metrics_http(metrics, config.metrics_listen)
        listeners = [f"unix:{socket_path}" + " (socket activation)" * (self._front.public_path != config.socket_path)]
        listeners += [f"mtls:{config.listen}"] * bool(config.listen)
        listeners += [f"insecure:{config.insecure_listen}"] * bool(config.insecure_listen)
        if worker is not None:
            log.info("serving on %s (pid %d)", ", ".join(listeners), os.getpid())
            worker.ready()
            return
        log.info("mcagent serving on %s (default backend: %s)", ", ".join(listeners), config.default_backend.value)
        systemd.notify("READY=1")

    @property
    def _primary(self) -> bool:
        """The process that runs start-up tasks, upkeep and the CRL listener (worker 1, or the only one)."""
        return self._worker is None or self._worker.primary

    @staticmethod
    def _start_up_tasks(service: AgentService, *, first_start: bool) -> None:
        """Check the audit anchor, create the CA and audit key if needed, clean up. A worker 1 that
        replaces a dead one (`first_start` False) runs beside serving workers: it leaves the anchor
        alone (nothing was stopped)."""
        try:
            if first_start:
                service.check_audit_anchor()  # before anything is appended: tampering is recorded first
            service.checkpoint_audit()
            service.finish_interrupted_work()  # only old creations: other processes may be creating now
            service.ensure_ca()
        except KeyStoreError as exc:
            raise ConfigError(f"cannot create the agent's CA or audit key: {exc}") from None
        service.decide_crl_membership()
        service.record_due_reminders()
        service.watch_expiry()

    def _start_crl_http(self, service: AgentService, address: str) -> None:
        host, port = split_host_port(address, "--crl-listen")
        try:
            self._crl_http = CrlHttpListener(host, port, service)
        except OSError as exc:
            raise ConfigError(f"cannot serve the CRL on {address}: {exc.strerror or exc}") from None
        self._crl_http.start()
        log.info("CRL published over HTTP at http://%s/crl%s", self._crl_http.address,
                 f" (leaves point to {self.config.crl_url})" if self.config.crl_url else
                 " (no --crl-url: leaves carry no distribution point)")

    def _start_metrics_http(self, metrics: Metrics, address: str) -> None:
        host, port = split_host_port(address, "--metrics-listen")
        assert self._keys is not None and self._front is not None
        metrics.watch(token_stats=self._keys.token_stats, connections=self._front.connection_count)
        if self._worker is not None:  # each worker its own counters, on the next port up (docs/decisions.md)
            port += self._worker.index - 1
            address = f"{host}:{port}"
            metrics.watch(worker=(self._worker.index, os.getpid()))
        try:
            self._metrics_http = MetricsHttpListener(host, port, metrics)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None
        self._metrics_http.start()
        log.info("Prometheus metrics served over HTTP at http://%s/metrics", self._metrics_http.address)

    def _remind(self, service: AgentService) -> None:
        """Once a minute: due reminders to claim unassigned credentials, summaries of throttled
        refusals, a signed checkpoint of the audit chain if it has grown, and clean-up of
        creations and key destructions that a fault interrupted."""
        while not self._stopping.wait(REMINDER_INTERVAL_SECONDS):
            try:
                service.flush_refusal_summaries()  # counted per process: every worker writes its own
                if self._primary:
                    service.record_due_reminders()
                    service.checkpoint_audit()
                    service.finish_interrupted_work(started_before=INTERRUPTED_AFTER)
                    service.watch_expiry()  # warnings once per daemon; worker 1's metrics carry the gauge
            except Exception:
                log.exception("recording reminders or refusal summaries failed; retrying in a minute")

    def stop(self) -> None:
        """Drain, then close everything.

        Health goes NOT_SERVING first; then every listener stops accepting (the Unix front
        keeps relaying the connections it has); calls in flight get up to the grace period
        to finish, and their last bytes reach the clients before the connections close.
        """
        self._stopping.set()
        was_serving = self._server is not None
        if was_serving and self._worker is None:
            systemd.notify("STOPPING=1")
        if self._health is not None:
            self._health.shutdown()
            self._health = None
        if self._crl_http is not None:
            self._crl_http.stop()
            self._crl_http = None
        if self._metrics_http is not None:
            self._metrics_http.stop()
            self._metrics_http = None
        if self._front is not None:
            self._front.stop_accepting()
        if self._server is not None:
            self._server.stop(self.config.grace_period).wait()
            self._server = None
        if self._streams is not None:  # before the service closes: no stream batch reaches it after
            self._streams.close()
            self._streams = None
        if self._front is not None:
            self._front.stop(drain=FRONT_DRAIN_SECONDS)
            self._front = None
        if self._inherited is not None:
            self._inherited.close()
            self._inherited = None
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        if self._service is not None:
            self._service.close()
            self._service = None
        if self._keys is not None:
            self._keys.close()
            self._keys = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if was_serving:
            log.info("mcagent stopped")

    def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly."""
        stop_requested = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop_requested.set())
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        while not stop_requested.wait(1.0):
            pass
        log.info("stop requested")
        self.stop()
