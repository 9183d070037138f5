"""`mcagent keystore`: look inside a RAM key store file (keystore.xml) without its password."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf
from mcagent.cli.files import read_file


def inspect(ctx: Context) -> None:
    response = ctx.client.credentials.InspectKeystore(
        pb.InspectKeystoreRequest(keystore_xml=read_file(ctx.args.file, "key store file"))
    )
    ctx.out.result(response, output.keystore_table(response))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "keystore", "RAM key store files")
    p = leaf(verbs, "inspect", inspect, "list the credentials in a keystore.xml (no password)", common)
    p.add_argument("file")
