"""`mcagent role`: grant, remove and list the roles principals hold in a business."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf
from mcagent.cli.enums import GRANTABLE_ROLES, ROLES


def _role_request(args: argparse.Namespace) -> pb.RoleRequest:
    return pb.RoleRequest(abn=args.abn, principal=args.principal, role=ROLES[args.role])


def grant(ctx: Context) -> None:
    role_grant = ctx.client.businesses.GrantRole(_role_request(ctx.args))
    ctx.out.result(role_grant, f"granted {ctx.args.role} in {role_grant.abn} to {role_grant.principal}")


def remove(ctx: Context) -> None:
    args = ctx.args
    response = ctx.client.businesses.RemoveRole(_role_request(args))
    text = f"removed {args.role} in {args.abn} from {args.principal}"
    for credential_id in response.unassigned_credential_ids:
        text += (f"\ncredential {credential_id} is now unassigned (suspended); `mcagent credential show "
                 f"{credential_id}` gives the date it stops working unless claimed")
    ctx.out.result(response, text)


def list_roles(ctx: Context) -> None:
    response = ctx.client.businesses.ListRoles(pb.ListRolesRequest(abn=ctx.args.abn))
    ctx.out.result(response, output.roles_table(response))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "role", "roles in a business")
    for verb, func, text in (("grant", grant, "grant a role"), ("remove", remove, "remove a role")):
        p = leaf(verbs, verb, func, text, common)
        p.add_argument("--abn", required=True)
        p.add_argument("--principal", required=True)
        p.add_argument("--role", required=True, choices=GRANTABLE_ROLES)
    p = leaf(verbs, "list", list_roles, "who holds which role in a business", common)
    p.add_argument("--abn", required=True)
