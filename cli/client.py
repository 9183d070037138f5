"""The connection to the daemon: its Unix socket, or TCP with mutual TLS; a bearer token if any.

How to connect (targets, TLS credentials, the token's metadata, the `MCAGENT_*` environment)
is the client library's (`mcagent.client.connection`); this module adds the command line's
flags and its error messages, and hands the commands protobuf stubs. Other Python code
should use `mcagent.client` itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from grpc_health.v1 import health_pb2_grpc
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.cli.errors import CommandFailed, UsageError
from mcagent.cli.files import read_file
from mcagent.client.connection import (
    ADDRESS_ENV,
    DEFAULT_TIMEOUT,
    SOCKET_ENV,
    TLS_CA_ENV,
    TLS_CERT_ENV,
    TLS_KEY_ENV,
    TOKEN_ENV,
    Connection,
    Tls,
    socket_target,
)

__all__ = ["SOCKET_ENV", "TOKEN_ENV", "Client", "target", "token_from"]
TIMEOUT_SECONDS = DEFAULT_TIMEOUT


def _address(socket: str | None, address: str | None) -> str | None:
    """`--address`, else `MCAGENT_ADDRESS` unless `--socket` was given."""
    return address or (None if socket else os.environ.get(ADDRESS_ENV) or None)


def target(socket: str | None = None, address: str | None = None) -> str:
    """The gRPC target: `address` (TCP, else `MCAGENT_ADDRESS`), else `unix:` the socket, `MCAGENT_SOCKET` or
    the default."""
    return _address(socket, address) or socket_target(socket)


def token_from(token_file: str | None) -> str | None:
    """The bearer token in `token_file`, else `MCAGENT_TOKEN`, else none."""
    if token_file:
        token = read_file(token_file, "--token-file").decode("utf-8").strip()
        if not token:
            raise CommandFailed(f"--token-file {token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


class _Stub:
    """A service stub whose calls carry the caller's bearer token, if any, and a timeout."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Callable[[Any], Any]:
        method = getattr(self._stub, name)
        return lambda request: method(request, metadata=self._metadata, timeout=TIMEOUT_SECONDS)


class Client:
    """Stubs on one channel to the daemon, one attribute per service."""

    def __init__(self, *, socket: str | None = None, address: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, tls_ca: str | None = None, token: str | None = None,
                 token_file: str | None = None) -> None:
        """Open a channel (lazily: nothing is sent before the first call).

        Args:
            socket: the daemon's Unix socket; default `MCAGENT_SOCKET`, else the data directory's.
            address: HOST:PORT of the mutual-TLS listener instead of the socket (else
                `MCAGENT_ADDRESS`, unless `socket` is given).
            tls_cert: client certificate chain (PEM file), with `address` (else `MCAGENT_TLS_CERT`).
            tls_key: client private key (PEM file), with `address` (else `MCAGENT_TLS_KEY`).
            tls_ca: the CA that signed the agent's certificate (PEM file), with `address` (else `MCAGENT_TLS_CA`).
            token: a bearer token the agent issued; sent with every call.
            token_file: a file holding the token, when `token` is not given; with neither,
                `MCAGENT_TOKEN`, else no token.

        Raises:
            UsageError: `address` without all three TLS files.
            CommandFailed: a TLS or token file cannot be read, or the token file is empty.
        """
        address = _address(socket, address)
        self.target = target(socket, address)
        tls = None
        if address:
            tls_cert = tls_cert or os.environ.get(TLS_CERT_ENV)
            tls_key = tls_key or os.environ.get(TLS_KEY_ENV)
            tls_ca = tls_ca or os.environ.get(TLS_CA_ENV)
            if not (tls_cert and tls_key and tls_ca):
                raise UsageError("mcagent: error: --address needs --tls-cert, --tls-key and --tls-ca (mutual TLS)")
            tls = Tls(root_certificates=read_file(tls_ca, "--tls-ca"), private_key=read_file(tls_key, "--tls-key"),
                      certificate_chain=read_file(tls_cert, "--tls-cert"))
        self.connection = Connection(target=self.target, tls=tls, token=token or token_from(token_file),
                                     timeout=TIMEOUT_SECONDS)
        channel = self.connection.channel()
        metadata = self.connection.metadata
        self.businesses = _Stub(pb_grpc.BusinessServiceStub(channel), metadata)
        self.credentials = _Stub(pb_grpc.CredentialServiceStub(channel), metadata)
        self.principals = _Stub(pb_grpc.PrincipalServiceStub(channel), metadata)
        self.audit = _Stub(pb_grpc.AuditServiceStub(channel), metadata)
        self.notifications = _Stub(pb_grpc.NotificationServiceStub(channel), metadata)
        self.ca = _Stub(pb_grpc.CAServiceStub(channel), metadata)
        self.health = _Stub(health_pb2_grpc.HealthStub(channel), metadata)
        self.admin = _Stub(pb_grpc.AdminServiceStub(channel), metadata)

    @classmethod
    def from_args(cls, args: Any) -> Client:
        """A client from the command line's options (`--socket`, `--address`, `--tls-*`, `--token-file`)."""
        return cls(socket=args.socket, address=args.address, tls_cert=args.tls_cert, tls_key=args.tls_key,
                   tls_ca=args.tls_ca, token_file=args.token_file)
