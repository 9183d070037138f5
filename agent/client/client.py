"""`Client` (blocking) and `AsyncClient` (asyncio, grpc.aio): the same methods on one channel."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.client import types as t
from mcagent.client.admin import AdminCalls
from mcagent.client.connection import Connection
from mcagent.client.convert import from_pb
from mcagent.client.credentials import CredentialCalls
from mcagent.client.errors import from_rpc_error

_STUBS = {
    "businesses": pb_grpc.BusinessServiceStub,
    "principals": pb_grpc.PrincipalServiceStub,
    "credentials": pb_grpc.CredentialServiceStub,
    "audit": pb_grpc.AuditServiceStub,
    "notifications": pb_grpc.NotificationServiceStub,
    "ca": pb_grpc.CAServiceStub,
    "health": health_pb2_grpc.HealthStub,
}


class _Base(CredentialCalls, AdminCalls):
    def __init__(self, connection: Connection | None = None, **from_env: Any) -> None:
        self.connection = connection or Connection.from_env(**from_env)
        self._channel = self._open()
        self._stubs = {name: stub(self._channel) for name, stub in _STUBS.items()}

    def _open(self) -> Any:
        raise NotImplementedError

    @classmethod
    def from_env(cls, **overrides: Any):
        """A client from the `MCAGENT_*` environment; keyword arguments as `Connection.from_env`."""
        return cls(Connection.from_env(**overrides))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.connection.target!r})"


class Client(_Base):
    """A blocking client. Use as a context manager, or call `close()`.

    `Client()` and `Client.from_env()` read the `MCAGENT_*` environment (see
    `mcagent.client.connection`); `Client(Connection(target=…, tls=…, token=…))` is explicit;
    `Client(address=…, tls_cert=…, …)` passes keyword arguments to `Connection.from_env`.
    Every refusal raises a `McagentError` subclass.
    """

    def _open(self) -> grpc.Channel:
        return self.connection.channel()

    def _call(self, service: str, method: str, request: Any, convert: Callable[[Any], Any]) -> Any:
        call = getattr(self._stubs[service], method)
        try:
            reply = call(request, metadata=self.connection.metadata, timeout=self.connection.timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return convert(reply)

    def sign_stream(self, items: Iterable[t.StreamItem]) -> Iterator[t.StreamResult]:
        """Sign `items` pipelined over one SignStream; yields one result per item as each is
        answered, in any order (match them by `request_id`).

        `items` is read as the agent takes them: it holds at most 64 signs of a stream in
        flight, so a long (or endless) iterator is read at the agent's pace. A refused item
        does not raise; check `result.ok` or call `result.raise_for_error()`. An error of the
        stream as a whole (not authenticated, the agent stopping) raises `McagentError`; an
        item with neither or both of data and digest raises TypeError once the answers to the
        items before it are in. The stream has no deadline (it lasts as long as `items`).
        """
        failed: list[Exception] = []

        def requests() -> Iterator[Any]:
            # gRPC reads this on a thread of its own: an error here (a bad item, the caller's
            # iterator failing) ends the requests, and is raised once the answers due are in.
            try:
                for item in items:
                    yield self._stream_request(item)
            except Exception as exc:
                failed.append(exc)

        call = self._stubs["credentials"].SignStream(requests(), metadata=self.connection.metadata)
        try:
            for reply in call:
                yield from_pb(t.StreamResult, reply)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()  # a no-op once finished; stops the stream if the caller stopped reading
        if failed:
            raise failed[0]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """An asyncio client on grpc.aio: the same methods as `Client`, each to be awaited.

    Create it inside the running event loop; use `async with`, or `await close()`.
    """

    def _open(self) -> grpc.aio.Channel:
        return self.connection.aio_channel()

    async def _call(self, service: str, method: str, request: Any, convert: Callable[[Any], Any]) -> Any:
        call = getattr(self._stubs[service], method)
        try:
            reply = await call(request, metadata=self.connection.metadata, timeout=self.connection.timeout)
        except grpc.RpcError as error:  # grpc.aio.AioRpcError is one
            raise from_rpc_error(error) from None
        return convert(reply)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
