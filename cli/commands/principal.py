"""`mcagent principal`: principals and their bearer tokens (the local administrator's)."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf


def create(ctx: Context) -> None:
    args = ctx.args
    response = ctx.client.principals.CreatePrincipal(pb.CreatePrincipalRequest(
        name=args.name, uid=-1 if args.uid is None else args.uid, certificate_subject=args.certificate_subject or "",
    ))
    if ctx.out.json:
        ctx.out.document(output.document(response))
        return
    ctx.out.line(response.token)  # alone on standard output, for scripts to capture
    ctx.out.tell(output.token_notice(response.principal.name, ctx.out.stdout))


def list_principals(ctx: Context) -> None:
    response = ctx.client.principals.ListPrincipals(pb.ListPrincipalsRequest())
    ctx.out.result(response, output.principals_table(response))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "principal", "principals (local administrator)")
    p = leaf(verbs, "create", create, "create a principal; prints its bearer token once", common)
    p.add_argument("name")
    p.add_argument("--uid", type=int, help="Unix uid that identifies it on the socket")
    p.add_argument("--certificate-subject", metavar="DN", help="TLS client certificate subject (RFC 4514)")
    leaf(verbs, "list", list_principals, "list principals", common)
