"""`mcagent status`: the daemon's health, from the standard gRPC health service.

Prints SERVING or NOT_SERVING and exits 0 or 1 (NOT_SERVING while the token or database is
unreachable, the audit cannot be written, or the daemon is stopping). A daemon that cannot
be reached is an error, as for every command.
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.commands import Context, leaf

SOON_DAYS = 30  # as the daemon's expiry watch (agent.domain.expiry.SOON)


def _expiring_soon(ctx: Context) -> list[str]:
    """Credentials the caller may see whose certificate expires within 30 days (none if it may see none)."""
    try:
        response = ctx.client.credentials.ListCredentials(pb.ListCredentialsRequest(expiring_within_days=SOON_DAYS))
    except grpc.RpcError:
        return []  # status is open to everyone; the list is for those who may read credentials
    return [f"{c.id} (ABRD:{c.abn}_{c.name}) expires on {c.certificate_not_after.ToDatetime().date().isoformat()}"
            for c in response.credentials]


def status(ctx: Context) -> None:
    reply = ctx.client.health.Check(health_pb2.HealthCheckRequest(service=ctx.args.service))
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    expiring = _expiring_soon(ctx)
    if ctx.out.json:
        ctx.out.document({"service": ctx.args.service, "status": name, "expiring_within_30_days": expiring})
    else:
        ctx.out.line(name)
        for line in expiring:
            ctx.out.line(f"certificate expiring within {SOON_DAYS} days: {line}")
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(1)


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(groups, "status", status, "is the agent serving? (SERVING exits 0, NOT_SERVING 1)", common)
    p.add_argument("--service", default="", help="one service, e.g. mcagent.v1.CredentialService "
                   "(default: the whole agent)")
