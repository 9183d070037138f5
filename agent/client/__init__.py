"""mcagent.client: a Python client of the mcagent daemon (blocking and asyncio).

    from mcagent.client import Client

    with Client.from_env() as agent:          # MCAGENT_SOCKET / MCAGENT_ADDRESS + TLS, MCAGENT_TOKEN
        signed = agent.sign(credential_id, digest=sha256_digest, algorithm="rsa-pkcs1-sha256")

Replies are frozen dataclasses (`mcagent.client.types`); refusals raise one exception tree
rooted at `McagentError` (`.code` is the `grpc.StatusCode`). The API contract itself ships
in the wheel as `mcagent/agent/api/v1/agent.proto` (see `PROTO_PATH`).
"""

import importlib.resources

from mcagent.client.client import AsyncClient, Client
from mcagent.client.connection import Connection, Tls
from mcagent.client.credentials import MAX_BATCH
from mcagent.client.errors import (
    AlreadyExists,
    ClientConfigError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    McagentError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from mcagent.client.types import (
    Algorithm,
    Backend,
    BatchItem,
    BatchResult,
    Credential,
    CredentialPage,
    KeyType,
    Role,
    Signature,
    StreamItem,
    StreamResult,
)

# The .proto beside the generated code, installed with it (a Traversable; str() it for protoc -I).
PROTO_PATH = importlib.resources.files("mcagent.agent.api.v1") / "agent.proto"

__all__ = [
    "MAX_BATCH", "PROTO_PATH", "Algorithm", "AlreadyExists", "AsyncClient", "Backend", "BatchItem", "BatchResult",
    "Client", "ClientConfigError", "Connection", "Credential", "CredentialPage", "DeadlineExceeded",
    "FailedPrecondition", "Internal", "InvalidArgument", "KeyType", "McagentError", "NotFound", "PermissionDenied",
    "ResourceExhausted", "Role", "Signature", "StreamItem", "StreamResult", "Tls", "Unauthenticated", "Unavailable",
]
