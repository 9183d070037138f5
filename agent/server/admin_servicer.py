"""The AdminService: operations on the daemon itself (today: a backup streamed to the caller)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import grpc
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.agent.domain.service import AgentService
from mcagent.agent.server.auth import current_caller

CHUNK_BYTES = 1 << 20  # well under gRPC's 4 MiB message limit


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, service: AgentService) -> None:
        self._service = service

    def Backup(self, request: pb.BackupRequest, context: grpc.ServicerContext) -> Any:
        # Authorised, audited and copied before the first message: a refusal is the call's status.
        entry, copy = self._service.backup(current_caller())
        return _chunks(copy, entry.seq)


def _chunks(copy: Any, audit_seq: int) -> Iterator[pb.BackupChunk]:
    """The copy in pieces, the last one with its size and SHA-256; the copy is closed at the end
    (also when the caller goes away mid-stream)."""
    digest, size = hashlib.sha256(), 0
    with copy:
        while data := copy.read(CHUNK_BYTES):
            digest.update(data)
            size += len(data)
            yield pb.BackupChunk(data=data)
    yield pb.BackupChunk(last=True, size=size, sha256=digest.hexdigest(), audit_seq=audit_seq)
