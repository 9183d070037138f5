"""The one place where errors become gRPC status codes.

Domain and key custody errors carry messages meant for the caller. Anything else is a
bug: it is logged with its traceback and the caller gets INTERNAL with a generic message
(nothing internal, and never a secret, leaves the process). That includes a panic inside a
native library (pyo3's PanicException derives from BaseException, not Exception): grpcio
catches only Exception, so without this the call would never be answered.

A request whose bytes are not a valid message of the method's request type (garbage, a
truncated field, a string field that is not UTF-8) is the caller's mistake, not ours: it is
answered INVALID_ARGUMENT naming the expected message type, where grpcio on its own would
answer INTERNAL "Exception deserializing request!". The bytes are never echoed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from mcagent.agent.domain import errors as domain
from mcagent.agent.domain.audit import clip
from mcagent.hsm import errors as keys

log = logging.getLogger(__name__)
MAX_DETAILS = 1000  # characters of an error message sent back

# Most specific first: the first matching class decides.
STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    (domain.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (domain.NotFound, grpc.StatusCode.NOT_FOUND),
    (domain.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (domain.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (domain.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (domain.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (domain.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (domain.Aborted, grpc.StatusCode.ABORTED),
    (domain.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (keys.TokenUnavailable, grpc.StatusCode.UNAVAILABLE),
    (keys.StoreLocked, grpc.StatusCode.UNAVAILABLE),
    (keys.KeyNotFound, grpc.StatusCode.FAILED_PRECONDITION),
    (keys.KeyExists, grpc.StatusCode.ALREADY_EXISTS),
    (keys.InvalidURI, grpc.StatusCode.INVALID_ARGUMENT),
    (keys.Unsupported, grpc.StatusCode.FAILED_PRECONDITION),
    (keys.AuthFailed, grpc.StatusCode.FAILED_PRECONDITION),  # the PIN is wrong or locked: retrying cannot help
    (keys.StoreCorrupted, grpc.StatusCode.DATA_LOSS),
    (keys.StoreUnsafe, grpc.StatusCode.FAILED_PRECONDITION),
    (keys.KeyStoreError, grpc.StatusCode.INTERNAL),
]


def status_of(exc: Exception) -> grpc.StatusCode | None:
    """The status code for a known error, or None for a bug."""
    for cls, code in STATUS_OF:
        if isinstance(exc, cls):
            return code
    return None


class _LogThrottle:
    """At most `per_minute` log lines a minute for one kind of event; the rest are counted and
    the count is logged with the next line let through (nobody floods the log by knocking)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._lock = threading.Lock()
        self._window = 0.0
        self._lines = 0
        self._dropped = 0

    def admit(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._window >= 60:
                if self._dropped:
                    log.info("%d more UNAUTHENTICATED refusals were not logged in the last minute", self._dropped)
                self._window, self._lines, self._dropped = now, 0, 0
            if self._lines < self._per_minute:
                self._lines += 1
                return True
            self._dropped += 1
            return False


_unauthenticated_lines = _LogThrottle(per_minute=20)


class MalformedRequest:
    """Stands in for a request that could not be decoded; the handler refuses it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _decode_problem(exc: Exception) -> str:
    """Why the bytes are not a message, in fixed words (the error's own text may quote them)."""
    if "utf-8" in str(exc).lower() or isinstance(exc, UnicodeError):
        return "a string field is not valid UTF-8"
    return "the bytes are not well-formed protobuf"


def tolerant_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserialize`, answering a `MalformedRequest` instead of raising on bad bytes."""
    if deserialize is None:
        return None
    message_class = getattr(deserialize, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    type_name = getattr(descriptor, "full_name", None) or "request"

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # any decode failure means the caller sent bad bytes
            return MalformedRequest(f"the request is not a valid {type_name} message: {_decode_problem(exc)}")

    return decode


class ErrorInterceptor(grpc.ServerInterceptor):
    """Wraps every unary-unary handler (ours and the health Check) so its errors leave as
    status codes, and undecodable requests as INVALID_ARGUMENT; our streamed methods likewise
    before and between messages.

    The wrapped handler is built once per method and kept (the methods are a fixed set:
    an unknown method name finds no handler and nothing is kept for it).
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            wrapped = self._wrap(continuation(handler_call_details), method)
            if wrapped is not None:
                self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, handler: Any, method: str) -> Any:
        if handler is not None and method.startswith("/mcagent.v1."):  # the health service's Watch keeps its own
            if handler.unary_stream is not None:
                return self._stream(handler, method)
            if handler.stream_stream is not None:
                return self._bidi(handler, method)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, MalformedRequest):
                log.info("%s refused: INVALID_ARGUMENT: %s", method, request.message)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            try:
                return inner(request, context)
            except (domain.DomainError, keys.KeyStoreError) as exc:
                code = status_of(exc) or grpc.StatusCode.INTERNAL
                if code is not grpc.StatusCode.UNAUTHENTICATED or _unauthenticated_lines.admit():
                    log.info("%s refused: %s: %s", method, code.name, exc)
                context.abort(code, clip(str(exc), MAX_DETAILS))  # a caller's own huge input is not echoed whole
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException:  # also a native library's panic (pyo3 PanicException is not an Exception)
                log.exception("%s failed with an unexpected error", method)
                context.abort(grpc.StatusCode.INTERNAL, "internal error in the agent; see its log")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=tolerant_deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    @staticmethod
    def _bidi(handler: Any, method: str) -> Any:
        """A stream of requests and responses: an undecodable request reaches the servicer as a
        `MalformedRequest` (it answers it on its own, the stream goes on); errors raised by the
        servicer itself leave as status codes."""
        inner = handler.stream_stream

        def guarded(requests: Any, context: grpc.ServicerContext) -> Any:
            yield from _answered(lambda: inner(requests, context), context, method)

        return grpc.stream_stream_rpc_method_handler(
            guarded,
            request_deserializer=tolerant_deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    @staticmethod
    def _stream(handler: Any, method: str) -> Any:
        """A streamed response: errors before or between messages leave as status codes."""
        inner = handler.unary_stream

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, MalformedRequest):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            yield from _answered(lambda: inner(request, context), context, method)

        return grpc.unary_stream_rpc_method_handler(
            guarded,
            request_deserializer=tolerant_deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


def _answered(responses: Any, context: grpc.ServicerContext, method: str) -> Any:
    """The messages of a streamed response (`responses()` makes them); an error raised before
    or between them leaves as a status code, as for a unary call."""
    try:
        yield from responses()
    except (domain.DomainError, keys.KeyStoreError) as exc:
        code = status_of(exc) or grpc.StatusCode.INTERNAL
        if code is not grpc.StatusCode.UNAUTHENTICATED or _unauthenticated_lines.admit():
            log.info("%s refused: %s: %s", method, code.name, exc)
        context.abort(code, clip(str(exc), MAX_DETAILS))
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:
        log.exception("%s failed with an unexpected error", method)
        context.abort(grpc.StatusCode.INTERNAL, "internal error in the agent; see its log")
