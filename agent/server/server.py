"""The daemon: opens storage and key backends, serves gRPC, stops cleanly on SIGTERM.

Listeners: the Unix socket (always; through `UnixFront`, which identifies each peer's uid;
bound here or inherited by socket activation), TCP with mutual TLS (--listen), and plain TCP
for development only (--insecure-listen).

Stopping drains: health goes NOT_SERVING (and systemd hears STOPPING=1), every listener
stops accepting, calls in flight get up to the grace period to finish and reach their
clients, then everything closes.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
import resource
import shutil
import signal
import socket
import stat
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
from mcagent.agent.domain.service import AgentService
from mcagent.agent.keys import KeyStores
from mcagent.agent.server import systemd
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
from mcagent.agent.server.unix_front import UnixFront
from mcagent.agent.storage import Storage
from mcagent.hsm import open_keystore
from mcagent.hsm.errors import KeyStoreError

log = logging.getLogger(__name__)

SERVICE_NAMES = [service.full_name for service in agent_pb2.DESCRIPTOR.services_by_name.values()]
PR_SET_DUMPABLE = 4  # <linux/prctl.h>
FRONT_DRAIN_SECONDS = 5.0  # after the server stopped: time for the last bytes to reach Unix-socket clients
REMINDER_INTERVAL_SECONDS = 60.0
INTERRUPTED_AFTER = dt.timedelta(minutes=10)  # a creation still "creating" this long after it began failed


def _prepare_socket_path(path: str) -> None:
    """Remove a stale socket left by a crash; refuse if another agent answers on it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{path} exists and is not a socket; choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listening: a leftover
        return
    finally:
        probe.close()
    raise ConfigError(f"another agent is already serving on {path}")


def forbid_core_dumps() -> None:
    """Make the process non-dumpable: no core file, and no ptrace or /proc/PID/mem by other
    processes of the same user, could show the PIN or a decrypted key (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise ConfigError(f"cannot make the daemon non-dumpable: {os.strerror(ctypes.get_errno())}")


def _check_private_dir(path: str) -> None:
    """The data directory must be the daemon's own: nobody else may plant files in it."""
    st = os.stat(path)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"data directory {path} must be owned by this user and writable by nobody else "
                          f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}); run: chmod go-w {path}")


def _check_database_path(path: str) -> None:
    """The database is opened by SQLite, which follows links: refuse anything but a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(f"{path} is not a regular file owned by this user (a link or another kind of file); "
                          "refusing to open it as the agent's database")


def _raise_open_file_limit(max_connections: int) -> None:
    """Raise the soft open-file limit to the hard one: each Unix-socket connection takes three fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. an unlimited hard limit above the kernel's nr_open
            pass
    if soft != resource.RLIM_INFINITY and soft < 3 * max_connections + 256:
        log.warning("the open-file limit (%d) is low for --max-connections %d (3 files each); "
                    "raise it (ulimit -n) or lower --max-connections", soft, max_connections)


class AgentServer:
    """Owns start-up and graceful stop of everything the daemon runs."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._storage: Storage | None = None
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

    def start(self) -> None:
        """Open everything and start serving.

        Raises:
            ConfigError: the daemon cannot start; the message says why.
        """
        config = self.config
        os.umask(0o077)  # every file and the socket are for the daemon's user only
        _raise_open_file_limit(config.max_connections)
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        _check_private_dir(config.data_dir)
        try:
            self._inherited = systemd.unix_listener(systemd.listen_fds())
        except (ValueError, OSError) as exc:
            raise ConfigError(f"socket activation: {exc}") from None
        if self._inherited is None:
            os.makedirs(os.path.dirname(config.socket_path), mode=0o700, exist_ok=True)
            _prepare_socket_path(config.socket_path)
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
        database = os.path.join(config.data_dir, "mcagent.db")
        for path in (database, database + "-wal", database + "-shm"):
            _check_database_path(path)
        self._storage = Storage(database)
        metrics = Metrics() if config.metrics_listen else None
        service = self._service = build_service(
            self._storage, self._keys, timezone=config.timezone,
            publication=certificates.Publication(crl_url=config.crl_url, policy_oid=config.certificate_policy),
            observer=metrics)
        try:
            service.check_audit_anchor()  # before anything is appended: tampering is recorded first
            service.checkpoint_audit()
            service.finish_interrupted_work()
            service.ensure_ca()
        except KeyStoreError as exc:
            raise ConfigError(f"cannot create the agent's CA or audit key: {exc}") from None
        service.decide_crl_membership()
        service.record_due_reminders()
        service.watch_expiry()

        # The gRPC server's own socket lives in a private directory (short path: AF_UNIX
        # names are limited to 108 bytes); UnixFront relays the public socket to it.
        self._private_dir = tempfile.mkdtemp(prefix="mcagent-")
        grpc_path = os.path.join(self._private_dir, "grpc.sock")
        authenticator = Authenticator(service, config.admin_uids, self._private_dir)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="rpc"),
            interceptors=[ErrorInterceptor(), AuthInterceptor(authenticator)],  # errors outermost
        )
        agent_pb2_grpc.add_BusinessServiceServicer_to_server(BusinessServicer(service), server)
        agent_pb2_grpc.add_CredentialServiceServicer_to_server(CredentialServicer(service), server)
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
        if config.crl_listen:
            self._start_crl_http(service, config.crl_listen)
        if metrics is not None:
            self._start_metrics_http(metrics, config.metrics_listen)
        listeners = [f"unix:{socket_path}" + " (socket activation)" * (self._front.public_path != config.socket_path)]
        listeners += [f"mtls:{config.listen}"] * bool(config.listen)
        listeners += [f"insecure:{config.insecure_listen}"] * bool(config.insecure_listen)
        log.info("mcagent serving on %s (default backend: %s)", ", ".join(listeners), config.default_backend.value)
        systemd.notify("READY=1")

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
                service.record_due_reminders()
                service.flush_refusal_summaries()
                service.checkpoint_audit()
                service.finish_interrupted_work(started_before=INTERRUPTED_AFTER)
                service.watch_expiry()
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
        if was_serving:
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
