"""Daemon configuration and the reading of its secrets.

Secrets (the token PIN, the key store password) come from an environment variable or a
file, never from the command line. A secret file readable by other users is refused.
"""

from __future__ import annotations

import os
import stat
import zoneinfo
from dataclasses import dataclass

from mcagent.agent.api.defaults import KEYSTORE_NAME, default_data_dir, default_socket_path
from mcagent.agent.domain.model import Backend
from mcagent.agent.domain.notification import DEFAULT_TIMEZONE
from mcagent.agent.keys import DEFAULT_STORE, STORE_NAME

PIN_ENV = "MCAGENT_PKCS11_PIN"
DATABASE_URL_ENV = "MCAGENT_DATABASE_URL"
KEYSTORE_PASSWORD_ENV = "MCAGENT_KEYSTORE_PASSWORD"
# Unix-socket limits: enough for desktop software and scripts; a flood is refused, not served.
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_MAX_CONNECTIONS_PER_UID = 64
DEFAULT_IDLE_TIMEOUT = 300  # seconds
DEFAULT_GRACE_PERIOD = 30.0  # seconds calls in flight may take to finish once a stop begins
MAX_WORKERS = 64


class ConfigError(Exception):
    """The daemon cannot start as configured; the message says what to change."""


def read_secret(env_name: str, file_path: str | None, what: str) -> str | None:
    """The secret from `file_path` if given, else from the environment, else None.

    Raises:
        ConfigError: the file cannot be read, is open to other users, or is empty.
    """
    if file_path:
        try:
            mode = os.stat(file_path).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"{what} file {file_path} is accessible to other users "
                    f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {file_path}"
                )
            with open(file_path, encoding="utf-8") as fh:
                secret = fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read {what} file {file_path}: {exc.strerror}") from None
        if not secret:
            raise ConfigError(f"{what} file {file_path} is empty")
        return secret
    return os.environ.get(env_name) or None


def _read_file(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _keystore_files(default_path: str, stores: list[str]) -> dict[str, str]:
    """The key store files by name: `default` plus each `--store NAME=PATH`."""
    files = {DEFAULT_STORE: os.path.abspath(default_path)}
    for spec in stores:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise ConfigError(f"--store {spec!r} must be NAME=PATH")
        if not STORE_NAME.match(name):
            raise ConfigError(f"--store name {name!r} must be 1-32 lower-case letters, digits, '_' or '-'")
        if name in files:
            raise ConfigError(f"--store {name} is given twice (or names the default key store)")
        path = os.path.abspath(path)
        if path in files.values():
            raise ConfigError(f"key store file {path} is configured under two names")
        files[name] = path
    return files


def database_url(flag: str | None) -> str | None:
    """`--database URL` (else the environment's MCAGENT_DATABASE_URL), checked; None: SQLite.

    Raises:
        ConfigError: not a postgresql:// URL, or a password on the command line (any user can
            read a process's arguments: it goes in ~/.pgpass, PGPASSWORD or the environment's URL).
    """
    url = flag or os.environ.get(DATABASE_URL_ENV) or None
    if url is None:
        return None
    from mcagent.agent.storage import is_postgresql

    if not is_postgresql(url):
        raise ConfigError("--database takes a PostgreSQL URL such as postgresql://mcagent@db.example/mcagent "
                          "(SQLite, the default, needs none: it is <data-dir>/mcagent.db)")
    if flag:
        import psycopg

        try:
            has_password = "password" in psycopg.conninfo.conninfo_to_dict(flag)
        except psycopg.ProgrammingError:
            raise ConfigError("--database is not a valid PostgreSQL URL") from None
        if has_password:
            raise ConfigError(f"--database must not carry the password (every user can read a command line): "
                              f"put it in ~/.pgpass or PGPASSWORD, or give the whole URL in {DATABASE_URL_ENV}")
    return url


def split_host_port(value: str, flag: str) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT) as (host, port).

    Raises:
        ConfigError: not HOST:PORT with a port from 1 to 65535.
    """
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{flag} {value!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port)


def _check_publication(crl_url: str | None, certificate_policy: str | None, crl_listen: str | None) -> None:
    """Refuse a CRL URL, policy OID or CRL listener that cannot work."""
    from mcagent.agent.domain import certificates
    from mcagent.agent.domain.errors import InvalidArgument

    for flag, value, check in (("--crl-url", crl_url, certificates.check_crl_url),
                               ("--certificate-policy", certificate_policy, certificates.check_policy_oid)):
        try:
            if value is not None:
                check(value)
        except InvalidArgument as exc:
            raise ConfigError(f"{flag}: {exc}") from None
    if crl_listen is not None:
        split_host_port(crl_listen, "--crl-listen")


@dataclass(frozen=True)
class Config:
    """Everything `mcagent serve` needs.

    Attributes:
        data_dir: holds the database, the socket and the default key store file.
        socket_path: the Unix socket clients connect to.
        default_backend: backend for credentials that name none.
        keystore_files: the key store files by name; ``default`` is the one used when a request
            names none. Clients choose among these by name, never by path.
        keystore_password: enables the file backend; None leaves it off.
        pkcs11_module: PKCS#11 library; with a token label, enables the pkcs11 backend.
        pkcs11_token: label of the token.
        pkcs11_pin: the token's user PIN.
        socket_mode: permissions of the Unix socket (0600: only the daemon's user).
        admin_uids: Unix-socket uids that are the local administrator (always the daemon's own).
        listen: HOST:PORT for the mutual-TLS listener, or None.
        tls_cert, tls_key, client_ca: PEM for that listener; client certificates must chain to client_ca.
        insecure_listen: HOST:PORT for a plain TCP listener (development only), or None.
        timezone: where "today" is for notification start dates (Australian Eastern time).
        crl_url: http(s) URL of the CRL, written into every leaf the agent issues, or None.
        certificate_policy: policy OID written into every leaf the agent issues, or None.
        crl_listen: HOST:PORT of the plain HTTP listener serving GET /crl, or None.
        max_connections: Unix-socket connections relayed at once, all uids together.
        max_connections_per_uid: Unix-socket connections relayed at once for one uid.
        idle_timeout: seconds without a byte either way after which a Unix-socket connection is closed.
        grace_period: seconds calls in flight may take to finish after SIGTERM before they are cut off.
        metrics_listen: HOST:PORT of the plain HTTP listener serving GET /metrics (Prometheus), or None;
            with several workers, worker k serves its own on PORT + k - 1.
        workers: processes serving (1: the daemon is one process; more: a supervisor forks them).
        database: ``postgresql://`` URL of the records shared with other instances, or None for
            SQLite in the data directory (see `database_location`).
    """

    data_dir: str
    socket_path: str
    default_backend: Backend
    keystore_files: dict[str, str]
    keystore_password: str | None = None
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_pin: str | None = None
    socket_mode: int = 0o600
    admin_uids: frozenset[int] = frozenset()
    listen: str | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    client_ca: bytes | None = None
    insecure_listen: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    crl_url: str | None = None
    certificate_policy: str | None = None
    crl_listen: str | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_uid: int = DEFAULT_MAX_CONNECTIONS_PER_UID
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    grace_period: float = DEFAULT_GRACE_PERIOD
    metrics_listen: str | None = None
    workers: int = 1
    database: str | None = None

    @classmethod
    def build(
        cls,
        *,
        data_dir: str | None,
        socket_path: str | None,
        backend: str,
        keystore_path: str | None,
        keystore_password_file: str | None,
        pkcs11_module: str | None,
        pkcs11_token: str | None,
        pkcs11_pin_file: str | None,
        socket_mode: str = "0600",
        admin_uids: list[int] | None = None,
        listen: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        client_ca: str | None = None,
        insecure_listen: str | None = None,
        timezone: str | None = None,
        stores: list[str] | None = None,
        crl_url: str | None = None,
        certificate_policy: str | None = None,
        crl_listen: str | None = None,
        max_connections: int | None = None,
        max_connections_per_uid: int | None = None,
        idle_timeout: int | None = None,
        grace_period: float | None = None,
        metrics_listen: str | None = None,
        workers: int | None = None,
        database: str | None = None,
    ) -> Config:
        """Resolve defaults and secrets, and check the combination makes sense.

        Raises:
            ConfigError: a required secret or option is missing.
        """
        explicit_data_dir = data_dir
        data_dir = os.path.abspath(data_dir or default_data_dir())
        default_backend = Backend(backend)
        password = read_secret(KEYSTORE_PASSWORD_ENV, keystore_password_file, "key store password")
        pin = None
        if pkcs11_module or pkcs11_token or default_backend is Backend.PKCS11:
            if not (pkcs11_module and pkcs11_token):
                raise ConfigError("the pkcs11 backend needs both --pkcs11-module PATH and --pkcs11-token LABEL")
            pin = read_secret(PIN_ENV, pkcs11_pin_file, "PKCS#11 PIN")
            if pin is None:
                raise ConfigError(f"no PKCS#11 PIN: set {PIN_ENV} or pass --pkcs11-pin-file FILE")
        try:
            mode = int(socket_mode, 8)
        except ValueError:
            raise ConfigError(f"--socket-mode {socket_mode!r} is not an octal mode such as 0600 or 0660") from None
        if mode & ~0o777:
            raise ConfigError(f"--socket-mode {socket_mode} has bits outside 0777")
        tls = [tls_cert, tls_key, client_ca]
        if listen and not all(tls):
            raise ConfigError(
                f"refusing plain TCP on {listen}: give --tls-cert, --tls-key and --client-ca for mutual TLS "
                "(or --insecure-listen for development only)"
            )
        if any(tls) and not listen:
            raise ConfigError("--tls-cert, --tls-key and --client-ca go with --listen HOST:PORT")
        tls_material = [_read_file(path, what) for path, what in
                        ((tls_cert, "TLS certificate"), (tls_key, "TLS key"), (client_ca, "client CA"))]
        timezone = timezone or DEFAULT_TIMEZONE
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"--timezone {timezone!r} is not a time zone; use an IANA name such as "
                              "Australia/Sydney") from None
        _check_publication(crl_url, certificate_policy, crl_listen)
        if metrics_listen is not None:
            split_host_port(metrics_listen, "--metrics-listen")
        limits = {"--max-connections": max_connections, "--max-connections-per-uid": max_connections_per_uid,
                  "--idle-timeout": idle_timeout}
        for flag, value in limits.items():
            if value is not None and value < 1:
                raise ConfigError(f"{flag} {value} must be a positive whole number")
        if workers is not None and not 1 <= workers <= MAX_WORKERS:
            raise ConfigError(f"--workers {workers} must be between 1 and {MAX_WORKERS}")
        if grace_period is not None and not 0 <= grace_period <= 3600:
            raise ConfigError(f"--grace-period {grace_period:g} must be between 0 and 3600 seconds")
        database = database_url(database)
        if default_backend is Backend.FILE and password is None:
            raise ConfigError(
                f"no key store password: set {KEYSTORE_PASSWORD_ENV} or pass --keystore-password-file FILE"
            )
        return cls(
            data_dir=data_dir,
            socket_path=os.path.abspath(socket_path or default_socket_path(
                data_dir if explicit_data_dir else None)),
            default_backend=default_backend,
            keystore_files=_keystore_files(keystore_path or os.path.join(data_dir, KEYSTORE_NAME), stores or []),
            keystore_password=password,
            pkcs11_module=pkcs11_module,
            pkcs11_token=pkcs11_token,
            pkcs11_pin=pin,
            socket_mode=mode,
            admin_uids=frozenset({os.getuid(), *(admin_uids or [])}),
            listen=listen,
            tls_cert=tls_material[0],
            tls_key=tls_material[1],
            client_ca=tls_material[2],
            insecure_listen=insecure_listen,
            timezone=timezone,
            crl_url=crl_url,
            certificate_policy=certificate_policy,
            crl_listen=crl_listen,
            max_connections=max_connections or DEFAULT_MAX_CONNECTIONS,
            max_connections_per_uid=max_connections_per_uid or DEFAULT_MAX_CONNECTIONS_PER_UID,
            idle_timeout=idle_timeout or DEFAULT_IDLE_TIMEOUT,
            grace_period=DEFAULT_GRACE_PERIOD if grace_period is None else grace_period,
            metrics_listen=metrics_listen,
            workers=workers or 1,
            database=database,
        )

    def database_location(self) -> str:
        """Where the records are: the PostgreSQL URL, else the SQLite file in the data directory."""
        return self.database or os.path.join(self.data_dir, "mcagent.db")

    def pkcs11_store_uri(self) -> str | None:
        """The token's store URI, or None when PKCS#11 is off."""
        if not (self.pkcs11_module and self.pkcs11_token):
            return None
        from mcagent.hsm.uri import Pkcs11URI

        return str(Pkcs11URI(token=self.pkcs11_token, module_path=os.path.abspath(self.pkcs11_module)))
