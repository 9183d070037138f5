"""The one place where errors become gRPC status codes.

Domain and key custody errors carry messages meant for the caller. Anything else is a
bug: it is logged with its traceback and the caller gets INTERNAL with a generic message
(nothing internal, and never a secret, leaves the process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from agent.domain import errors as domain
from hsm import errors as keys

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides.
STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    (domain.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (domain.NotFound, grpc.StatusCode.NOT_FOUND),
    (domain.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (domain.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (domain.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (domain.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (domain.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (keys.TokenUnavailable, grpc.StatusCode.UNAVAILABLE),
    (keys.StoreLocked, grpc.StatusCode.UNAVAILABLE),
    (keys.KeyNotFound, grpc.StatusCode.FAILED_PRECONDITION),
    (keys.KeyExists, grpc.StatusCode.ALREADY_EXISTS),
    (keys.InvalidURI, grpc.StatusCode.INVALID_ARGUMENT),
    (keys.Unsupported, grpc.StatusCode.FAILED_PRECONDITION),
    (keys.AuthFailed, grpc.StatusCode.UNAVAILABLE),
    (keys.StoreCorrupted, grpc.StatusCode.DATA_LOSS),
    (keys.KeyStoreError, grpc.StatusCode.INTERNAL),
]


def status_of(exc: Exception) -> grpc.StatusCode | None:
    """The status code for a known error, or None for a bug."""
    for cls, code in STATUS_OF:
        if isinstance(exc, cls):
            return code
    return None


class ErrorInterceptor(grpc.ServerInterceptor):
    """Wraps every unary handler so its errors leave as status codes."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return inner(request, context)
            except (domain.DomainError, keys.KeyStoreError) as exc:
                code = status_of(exc) or grpc.StatusCode.INTERNAL
                log.info("%s refused: %s: %s", method, code.name, exc)
                context.abort(code, str(exc))
            except Exception:
                log.exception("%s failed with an unexpected error", method)
                context.abort(grpc.StatusCode.INTERNAL, "internal error in the agent; see its log")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
