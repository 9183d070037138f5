"""One module per command group; each has `register(groups, common)` beside its handlers.

`groups` is the root parser's sub-command action; `common` is the parent parser that gives
every client command `--socket`, `--address`, `--tls-*`, `--token-file` and `--json`. A
handler takes a `Context`: the parsed options, the output, and a client made on first use
(so usage errors found by the handler come before any connection is attempted).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mcagent.cli.client import Client
from mcagent.cli.errors import Parser
from mcagent.cli.output import Output


@dataclass
class Context:
    """What a handler works with."""

    args: argparse.Namespace
    out: Output
    connect: Callable[[], Client]

    @cached_property
    def client(self) -> Client:
        """The client, made on first use."""
        return self.connect()


Handler = Callable[[Context], None]


def group(groups: Any, name: str, help_text: str) -> Any:
    """A command group (`mcagent NAME VERB …`); returns the action its verbs are added to."""
    return groups.add_parser(name, help=help_text).add_subparsers(dest="verb", required=True, parser_class=Parser)


def leaf(sub: Any, name: str, func: Handler, help_text: str, common: argparse.ArgumentParser) -> Parser:
    """A client command: the common options, its description, and its handler."""
    p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
    p.set_defaults(func=func)
    return p
