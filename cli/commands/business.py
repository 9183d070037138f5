"""`mcagent business`: register a business, look one up."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.commands import Context, group, leaf


def register_business(ctx: Context) -> None:
    args = ctx.args
    business = ctx.client.businesses.RegisterBusiness(
        pb.RegisterBusinessRequest(abn=args.abn, name=args.name, principal_authority=args.principal_authority)
    )
    ctx.out.result(business, f"registered business {business.abn} ({business.name})")


def lookup(ctx: Context) -> None:
    business = ctx.client.businesses.GetBusiness(pb.GetBusinessRequest(abn=ctx.args.abn))
    ctx.out.result(business, f"{business.abn}  {business.name}")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "business", "businesses")
    p = leaf(verbs, "register", register_business, "register a business by ABN", common)
    p.add_argument("--abn", required=True, help="11 digits; spaces allowed")
    p.add_argument("--name", required=True, help="legal name")
    p.add_argument("--principal-authority", required=True, metavar="PRINCIPAL", help="its principal authority")
    p = leaf(verbs, "lookup", lookup, "a registered business's legal name, to check before acting", common)
    p.add_argument("--abn", required=True)
