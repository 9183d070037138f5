"""`mcagent audit`: page through the audit log; verify its hash chain and signed checkpoints."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf
from mcagent.cli.errors import CommandFailed


def list_entries(ctx: Context) -> None:
    args = ctx.args
    response = ctx.client.audit.ListAudit(pb.ListAuditRequest(abn=args.abn or "", limit=args.limit, after=args.after))
    ctx.out.result(response, output.audit_table(response))


def verify(ctx: Context) -> None:
    result = ctx.client.audit.VerifyAudit(pb.VerifyAuditRequest(expect_head=ctx.args.expect_head or ""))
    if result.ok:
        ctx.out.result(result, f"audit log intact: {result.entries} entries, head {result.entries}:{result.head_hash} "
                               f"(keep it elsewhere; check later with --expect-head), signed checkpoints from entry "
                               f"{result.first_checkpoint_seq} to entry {result.checkpoint_seq}")
        return
    raise CommandFailed(f"audit log broken at entry {result.bad_seq}: {result.problem} "
                        f"({result.entries} entries before it are intact)",
                        code="AUDIT_BROKEN", document=output.document(result))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "audit", "the audit log")
    p = leaf(verbs, "list", list_entries, "page through the audit log, oldest first", common)
    p.add_argument("--abn", help="one business (required unless you are the local administrator)")
    p.add_argument("--limit", type=int, default=100, help="entries per page, at most 1000")
    p.add_argument("--after", type=int, default=0, metavar="CURSOR", help="continue after this entry")
    p = leaf(verbs, "verify", verify, "check the audit log's hash chain and signed checkpoints", common)
    p.add_argument("--expect-head", metavar="SEQ:HASH", help="an entry recorded earlier that must still be there")
