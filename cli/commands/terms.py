"""`mcagent terms`: the machine terms of use a creator must accept."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.commands import Context, group, leaf


def show(ctx: Context) -> None:
    terms = ctx.client.credentials.GetMachineTerms(pb.GetMachineTermsRequest())
    ctx.out.result(terms, f"Machine terms of use, version {terms.version}\n\n{terms.text}")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "terms", "machine terms of use")
    leaf(verbs, "show", show, "print the current machine terms of use", common)
