"""How to reach the agent: one place, used by the library and the `mcagent` command line.

The agent listens on a Unix socket (desktop software, the command line) and, when
configured, on TCP with mutual TLS (cloud servers). A caller is identified by its bearer
token, its uid on the socket, or its TLS client certificate.

Environment (the command line's flags override it; explicit arguments override both):

- `MCAGENT_SOCKET`: the daemon's Unix socket (default: `mcagent.sock` in the data directory);
- `MCAGENT_ADDRESS`: HOST:PORT of the mutual-TLS listener, instead of the socket;
- `MCAGENT_TLS_CERT`, `MCAGENT_TLS_KEY`, `MCAGENT_TLS_CA`: PEM files for that listener: the
  client's certificate chain and key, and the CA that signed the agent's certificate;
- `MCAGENT_TOKEN`: a bearer token the agent issued.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from mcagent.agent.api.defaults import default_socket_path
from mcagent.client.errors import ClientConfigError

SOCKET_ENV = "MCAGENT_SOCKET"
ADDRESS_ENV = "MCAGENT_ADDRESS"
TLS_CERT_ENV = "MCAGENT_TLS_CERT"
TLS_KEY_ENV = "MCAGENT_TLS_KEY"
TLS_CA_ENV = "MCAGENT_TLS_CA"
TOKEN_ENV = "MCAGENT_TOKEN"
DEFAULT_TIMEOUT = 120.0  # seconds per call


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ClientConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


@dataclass(frozen=True, kw_only=True)
class Tls:
    """Mutual TLS material, as PEM bytes."""

    certificate_chain: bytes  # the client's certificate (and its issuers)
    private_key: bytes
    root_certificates: bytes  # the CA that signed the agent's certificate

    @classmethod
    def from_files(cls, cert: str, key: str, ca: str) -> Tls:
        """Read the three PEM files; `ClientConfigError` names the one that cannot be read."""
        return cls(certificate_chain=_read(cert, "TLS certificate"), private_key=_read(key, "TLS key"),
                   root_certificates=_read(ca, "TLS CA"))

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates,
                                            private_key=self.private_key, certificate_chain=self.certificate_chain)


def socket_target(socket: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`unix:` the socket, else `MCAGENT_SOCKET`, else the default in the data directory."""
    environ = os.environ if environ is None else environ
    return f"unix:{socket or environ.get(SOCKET_ENV) or default_socket_path()}"


@dataclass(frozen=True, kw_only=True)
class Connection:
    """Where the agent is, how to secure the channel, and who the caller is.

    Attributes:
        target: a gRPC target: `unix:/path/to/mcagent.sock` or `host:port`.
        tls: mutual TLS for a TCP target; None on the Unix socket.
        token: a bearer token sent with every call, or None.
        timeout: seconds each call may take.
    """

    target: str
    tls: Tls | None = None
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, *, socket: str | None = None, address: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, tls_ca: str | None = None, token: str | None = None,
                 token_file: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 environ: Mapping[str, str] | None = None) -> Connection:
        """A connection from arguments, else the `MCAGENT_*` environment, else the defaults.

        Args:
            socket: the Unix socket; ignored when an address is given.
            address: HOST:PORT of the mutual-TLS listener (else `MCAGENT_ADDRESS`).
            tls_cert, tls_key, tls_ca: PEM files (else `MCAGENT_TLS_CERT`, `_KEY`, `_CA`);
                all three are needed with an address.
            token: a bearer token; else the content of `token_file`; else `MCAGENT_TOKEN`.
            timeout: seconds per call.
            environ: the environment to read (default `os.environ`).

        Raises:
            ClientConfigError: an address without the three TLS files, a file that cannot be
                read, or an empty token file.
        """
        env = os.environ if environ is None else environ
        if address is None and socket is None:
            address = env.get(ADDRESS_ENV) or None
        tls = None
        if address:
            cert, key, ca = (tls_cert or env.get(TLS_CERT_ENV), tls_key or env.get(TLS_KEY_ENV),
                             tls_ca or env.get(TLS_CA_ENV))
            if not (cert and key and ca):
                raise ClientConfigError(f"the address {address} needs a TLS certificate, key and CA (mutual TLS): "
                                        f"set {TLS_CERT_ENV}, {TLS_KEY_ENV} and {TLS_CA_ENV}")
            tls = Tls.from_files(cert, key, ca)
        if token is None and token_file:
            token = _read(token_file, "token file").decode("utf-8").strip()
            if not token:
                raise ClientConfigError(f"the token file {token_file} is empty")
        if token is None:
            token = env.get(TOKEN_ENV) or None
        return cls(target=address or socket_target(socket, env), tls=tls, token=token, timeout=timeout)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata: the bearer token, if any."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self) -> grpc.Channel:
        """A new channel (lazy: nothing is sent before the first call)."""
        if self.tls:
            return grpc.secure_channel(self.target, self.tls.credentials())
        return grpc.insecure_channel(self.target)

    def aio_channel(self) -> grpc.aio.Channel:
        """A new asyncio channel; create it inside the event loop that will use it."""
        if self.tls:
            return grpc.aio.secure_channel(self.target, self.tls.credentials())
        return grpc.aio.insecure_channel(self.target)
