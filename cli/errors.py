"""How a command fails: the two exit statuses, and a parser whose errors are one line."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from typing import Any, NoReturn


class UsageError(Exception):
    """Bad command-line usage; exit status 2. The message is the whole line printed."""


class CommandFailed(Exception):
    """The command could not do its work; exit status 1, printed after `mcagent: error: `.

    Args:
        message: what was wrong and what to do.
        code: the error's code under --json (`{"error": {"code": …}}`).
        document: a result printed under --json beside the error (e.g. a failed audit verification).
    """

    def __init__(self, message: str, *, code: str = "FAILED", document: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.document = document


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line.

    A mistyped command or group gets a suggestion (`unknown command 'credentail'; did you mean
    'credential'?`). A parser with `config_file = True` reads `--config FILE` under its command
    line (cli/configfile.py).
    """

    config_file = False

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            names = list(action.choices)
            match = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{match[0]}'?" if match else f" (one of: {', '.join(names)})"
            raise argparse.ArgumentError(None, f"unknown command '{value}'{hint}")
        super()._check_value(action, value)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if not self.config_file:
            return super().parse_known_args(args, namespace)
        from mcagent.cli import configfile

        return configfile.parse_with_file(self, super().parse_known_args, args, namespace)
