"""`mcagent whoami`: who the agent takes the caller for."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.commands import Context, leaf


def whoami(ctx: Context) -> None:
    response = ctx.client.principals.WhoAmI(pb.WhoAmIRequest())
    ctx.out.result(response, response.name + (" (local administrator)" if response.local_administrator else ""))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    leaf(groups, "whoami", whoami, "who the agent takes you for", common)
