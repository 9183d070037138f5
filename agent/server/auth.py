"""Who is calling.

Today the only listener is the Unix socket, created 0600 in a 0700 directory owned by the
daemon's user: the operating system lets only that user (and root) connect, so every
caller is the local administrator. Per-caller identities (SO_PEERCRED uid, bearer tokens,
TLS client certificates) come with roles and the TCP listener.
"""

import grpc

from agent.domain.service import Caller

LOCAL_ADMINISTRATOR = Caller(name="local-administrator")


def caller_of(context: grpc.ServicerContext) -> Caller:
    """The caller behind a request."""
    return LOCAL_ADMINISTRATOR
