"""Domain errors. Each says what was wrong and, where it helps, what to do.

The gRPC layer maps each class to one status code (agent/server/interceptors.py); domain
code never imports grpc.
"""


class DomainError(Exception):
    """Base of every error the agent reports to a caller."""


class InvalidArgument(DomainError):
    """The request itself is wrong (bad ABN, unknown algorithm, ...)."""


class NotFound(DomainError):
    """The business or credential named does not exist."""


class AlreadyExists(DomainError):
    """The thing to create exists already."""


class PermissionDenied(DomainError):
    """The caller may not do this."""


class FailedPrecondition(DomainError):
    """The request is well formed but the state does not allow it (terms not accepted, ...)."""


class Unavailable(DomainError):
    """A backend is down; the same request may succeed later."""


class Unauthenticated(DomainError):
    """The caller could not be identified."""


class ResourceExhausted(DomainError):
    """A limit on what the agent serves at once was reached; the message says which and what to do."""


class Aborted(DomainError):
    """A concurrent change got there first; nothing was changed and the request may be retried."""
