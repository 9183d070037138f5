"""One exception tree for every refusal the agent sends back.

Every gRPC status becomes a `McagentError` carrying the status code and the agent's message
(which says what was wrong and what to do); the codes the agent uses have their own
subclasses, so callers catch what they can handle::

    try:
        client.sign(credential_id, digest=d)
    except mcagent.client.PermissionDenied as refused:
        ...
"""

from __future__ import annotations

import grpc


class McagentError(Exception):
    """A call the agent refused or could not complete.

    Attributes:
        code: the gRPC status code (`grpc.StatusCode`); None only for `ClientConfigError`,
            which is raised before anything is sent.
        details: the agent's message.
    """

    code: grpc.StatusCode | None = None

    def __init__(self, details: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(details)
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.code is not None else self.details


class ClientConfigError(McagentError, ValueError):
    """The client cannot be set up (no TLS file, address without TLS files, empty token file)."""


class InvalidArgument(McagentError):
    """Bad input: an ABN, software ID, algorithm that does not fit the key, a past start date."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(McagentError):
    """No such business, principal, credential or notification."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(McagentError):
    """The business or principal is already registered."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(McagentError):
    """The caller's roles or the credential's permissions do not allow it."""

    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(McagentError):
    """Not now: terms not accepted, credential revoked or past its unassigned window, not confirmed."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(McagentError):
    """No known bearer token, uid or client certificate."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(McagentError):
    """Too many connections or requests at once: retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(McagentError):
    """The agent cannot be reached, its token is down or its audit log cannot be written: retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(McagentError):
    """No answer within the call's timeout."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(McagentError):
    """The agent failed in a way it does not describe (see its log)."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[McagentError]] = {
    cls.code: cls for cls in (InvalidArgument, NotFound, AlreadyExists, PermissionDenied, FailedPrecondition,
                              Unauthenticated, ResourceExhausted, Unavailable, DeadlineExceeded, Internal)
}
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_for(code: grpc.StatusCode | int, details: str) -> McagentError:
    """The exception for a status code (a `grpc.StatusCode` or its number, as SignBatch reports it)."""
    if isinstance(code, int):
        code = _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    cls = _BY_CODE.get(code, McagentError)
    return cls(details, code)


def from_rpc_error(error: grpc.RpcError) -> McagentError:
    """Translate a grpc.RpcError (sync or asyncio) into the tree."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    return error_for(code, details)
