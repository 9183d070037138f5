"""`mcagent completion bash|zsh`: a shell completion script, generated from the parser by shtab."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.cli.commands import Context

SHELLS = ("bash", "zsh", "tcsh")


def completion(ctx: Context) -> None:
    import shtab
    from mcagent.cli.main import build_parser

    ctx.out.line(shtab.complete(build_parser(), shell=ctx.args.shell).rstrip("\n"))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    p = groups.add_parser(
        "completion", help="print a shell completion script",
        description="print a completion script for SHELL; e.g. `mcagent completion bash > "
                    "~/.local/share/bash-completion/completions/mcagent`, or in ~/.zshrc: "
                    "`source <(mcagent completion zsh)`")
    p.set_defaults(func=completion)
    p.add_argument("shell", choices=SHELLS)
