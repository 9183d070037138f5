"""Who is calling: a bearer token, the uid of a Unix-socket peer, or a TLS client certificate.

- A bearer token (``authorization: Bearer <token>`` metadata) identifies its principal on
  any listener, except that over mutual TLS it must name the certificate's own principal.
- On the Unix socket, a peer whose uid is the daemon's own (or an --admin-uid) is the local
  administrator; another uid is the principal created with that uid.
- Over mutual TLS, the client certificate's subject names the principal.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from typing import Any

import grpc
from cryptography import x509
from mcagent.agent.domain.calls import Caller
from mcagent.agent.domain.errors import Unauthenticated
from mcagent.agent.domain.service import AgentService
from mcagent.agent.server.unix_front import peer_uid

# The only methods anyone may call without being identified: the terms everyone must be able
# to read before accepting them, and the standard health and reflection services.
OPEN_METHODS = frozenset({
    "/mcagent.v1.CredentialService/GetMachineTerms",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
})

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("mcagent_caller")


def current_caller() -> Caller:
    """The caller of the request being handled (set by `AuthInterceptor`)."""
    return _caller.get()


class _CallerCache:
    """Callers resolved from a connection (its relayed peer address) or a client certificate,
    kept while the state version stays (a principal removed or remapped moves it). Failures
    are not kept: each refusal is resolved, and audited, anew. At most `size` entries; when
    full it starts again (peer addresses are per connection, so they come and go)."""

    def __init__(self, state_version: Callable[[], int], size: int = 4096) -> None:
        self._state_version = state_version
        self._size = size
        self._entries: dict[Any, tuple[int, Caller]] = {}

    def get(self, key: Any, resolve: Callable[[], Caller]) -> Caller:
        version = self._state_version()  # read before resolving: a change meanwhile is not hidden
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            return entry[1]
        caller = resolve()
        if len(self._entries) >= self._size:
            self._entries.clear()
        if entry is None or entry[0] < version:  # a request begun before a change never puts back an older entry
            self._entries[key] = (version, caller)
        return caller


class Authenticator:
    """Turns a request's transport facts into a `Caller`."""

    def __init__(self, service: AgentService, admin_uids: frozenset[int], private_dir: str) -> None:
        self._service = service
        self._admin_uids = admin_uids
        self._private_dir = private_dir
        self._callers = _CallerCache(service.state_version)

    def one_state_version(self) -> contextlib.AbstractContextManager[int]:
        """See `AgentService.one_state_version`."""
        return self._service.one_state_version()

    def _by_subject(self, pem: bytes) -> Caller:
        subject = x509.load_pem_x509_certificate(pem).subject.rfc4514_string()
        return self._service.authenticate_subject(subject)

    def _by_peer(self, peer: str) -> Caller:
        uid = peer_uid(peer, self._private_dir)
        if uid is None:
            raise Unauthenticated("no credentials: pass a bearer token (MCAGENT_TOKEN or --token-file)")
        return self._service.authenticate_uid(uid, self._admin_uids)

    def caller(self, context: grpc.ServicerContext) -> Caller:
        """The caller behind a request.

        Raises:
            Unauthenticated: nothing identifies the caller, or the facts disagree.
        """
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                if scheme != "Bearer" or not token:
                    raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        auth = context.auth_context() or {}
        if auth.get("transport_security_type") == [b"ssl"]:
            pem = (auth.get("x509_pem_cert") or [b""])[0]
            if not pem:
                raise Unauthenticated("a client certificate is required")
            caller = self._callers.get(("certificate", pem), lambda: self._by_subject(pem))
            if token is not None and self._service.authenticate_token(token).principal_id != caller.principal_id:
                raise Unauthenticated("the bearer token and the client certificate name different principals")
            return caller
        if token is not None:
            return self._service.authenticate_token(token)
        peer = context.peer()
        return self._callers.get(("peer", peer), lambda: self._by_peer(peer))


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates every request before its handler runs, except the methods in OPEN_METHODS.

    The caller is put in a context variable for the handler (`current_caller()`); a request
    that identifies nobody is refused UNAUTHENTICATED before any servicer code runs. A
    streamed response (AdminService.Backup) and a stream both ways (SignStream) are
    authenticated like a unary call, once, when the call starts: their servicers read the
    caller before they return their iterator. A method whose request is a stream without a
    streamed response is refused: nothing is reachable unauthenticated by omission.

    The wrapped handler is built once per method and kept.
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        self._handlers: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            handler = continuation(handler_call_details)
            wrapped = handler if handler is None or method in OPEN_METHODS else self._wrap(handler)
            if wrapped is not None:
                self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, handler: Any) -> Any:
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._with_caller(handler.unary_stream),
                                                        request_deserializer=handler.request_deserializer,
                                                        response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(self._with_caller(handler.stream_stream),
                                                         request_deserializer=handler.request_deserializer,
                                                         response_serializer=handler.response_serializer)
        if handler.unary_unary is None:
            def refuse(request: Any, context: grpc.ServicerContext) -> Any:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "only unary methods are served")
            return grpc.unary_unary_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(self._with_caller(handler.unary_unary),
                                                   request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _with_caller(self, inner: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        """`inner` with the request's caller resolved first and set for it (UNAUTHENTICATED if nobody)."""
        def authenticated(request: Any, context: grpc.ServicerContext) -> Any:
            # One state version read for the whole call (its authentication and its lookups);
            # a stream's items run after this returns, each sign reading its own.
            with self._authenticator.one_state_version():
                token = _caller.set(self._authenticator.caller(context))
                try:
                    return inner(request, context)
                finally:
                    _caller.reset(token)
        return authenticated
