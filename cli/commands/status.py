"""`mcagent status`: the daemon's health, from the standard gRPC health service.

Prints SERVING or NOT_SERVING and exits 0 or 1 (NOT_SERVING while the token or database is
unreachable, the audit cannot be written, or the daemon is stopping). A daemon that cannot
be reached is an error, as for every command.
"""

from __future__ import annotations

import argparse
from typing import Any

from grpc_health.v1 import health_pb2
from mcagent.cli.commands import Context, leaf


def status(ctx: Context) -> None:
    reply = ctx.client.health.Check(health_pb2.HealthCheckRequest(service=ctx.args.service))
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if ctx.out.json:
        ctx.out.document({"service": ctx.args.service, "status": name})
    else:
        ctx.out.line(name)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(1)


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(groups, "status", status, "is the agent serving? (SERVING exits 0, NOT_SERVING 1)", common)
    p.add_argument("--service", default="", help="one service, e.g. mcagent.v1.CredentialService "
                   "(default: the whole agent)")
