"""How a command fails: the two exit statuses, and a parser whose errors are one line."""

from __future__ import annotations

import argparse
from typing import NoReturn


class UsageError(Exception):
    """Bad command-line usage; exit status 2. The message is the whole line printed."""


class CommandFailed(Exception):
    """The command could not do its work; exit status 1, printed after `mcagent: error: `."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")
