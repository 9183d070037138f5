"""The `mcagent` command: `serve` runs the daemon; every other command is a gRPC client.

Clients reach the daemon on its Unix socket (`--socket PATH`, `MCAGENT_SOCKET`, else the
default in the data directory), or on its mutual-TLS listener (`--address`). On failure a
command prints one line saying what was wrong and exits non-zero (1 for a refused request,
2 for bad usage); with `--json` it also prints `{"error": {"code": …, "message": …}}` on
standard output (docs/cli-json.md).

This module builds the root parser, lets each command group register itself
(`cli/commands/`), runs the chosen handler and turns errors into exit statuses. The
connection is `cli/client.py`; everything printed goes through `cli/output.py`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from mcagent.cli.client import SOCKET_ENV, TOKEN_ENV, Client, target
from mcagent.cli.commands import (
    Context,
    audit,
    backup,
    business,
    ca,
    completion,
    config,
    credential,
    db,
    keystore,
    notification,
    principal,
    restore,
    role,
    sbr,
    serve,
    status,
    terms,
    whoami,
)
from mcagent.cli.errors import CommandFailed, Parser, UsageError
from mcagent.cli.output import Output, error_document

# The order of `mcagent --help`.
GROUPS = (serve, config, business, terms, credential, keystore, ca, principal, whoami, role, notification, audit,
          completion, status, backup, restore, db, sbr)


def version() -> str:
    """The installed package's version."""
    try:
        return importlib.metadata.version("mcagent")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _client_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--socket", default=default, help=f"daemon socket (env {SOCKET_ENV})")
    p.add_argument("--address", default=default, help="HOST:PORT of the agent's mutual-TLS listener")
    p.add_argument("--tls-cert", default=default, help="client certificate (PEM) for --address")
    p.add_argument("--tls-key", default=default, help="client key (PEM) for --address")
    p.add_argument("--tls-ca", default=default, help="CA that signed the agent's certificate (PEM)")
    p.add_argument("--token-file", default=default, help=f"file holding a bearer token (else env {TOKEN_ENV})")
    p.add_argument("--json", action="store_true", default=default or False, help="machine-readable output")


def build_parser() -> Parser:
    """The whole command tree.

    The client options are accepted before the group (`mcagent --json credential list`) and
    after the verb (`mcagent credential list --json`): the root parser sets their defaults,
    and `common`, the parent of every client verb, suppresses its own so it never overwrites
    a value given before the group.
    """
    common = Parser(add_help=False)
    _client_options(common, argparse.SUPPRESS)
    parser = Parser(prog="mcagent", description="Machine-credential agent for SBR software.")
    parser.add_argument("--version", action="version", version=f"mcagent {version()}")
    _client_options(parser, None)
    groups = parser.add_subparsers(dest="group", required=True, parser_class=Parser)
    for module in GROUPS:
        module.register(groups, common)
    return parser


def serve_parser(parser: argparse.ArgumentParser | None = None) -> Parser:
    """The `serve` parser of the command tree: its options are the config file's keys."""
    parser = parser or build_parser()
    groups = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return groups.choices["serve"]


def _describe_rpc_error(error: grpc.RpcError, args: argparse.Namespace | None) -> str:
    code, details = error.code(), error.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "No such file" in details):
        where = target(args.socket, args.address)
        return f"cannot reach the agent at {where}: is `mcagent serve` running? ({details})"
    return f"{code.name}: {details}"


def _wants_json(args: argparse.Namespace | None, argv: Sequence[str]) -> bool:
    # A usage error leaves no parsed options: look for the flag itself.
    return bool(getattr(args, "json", False)) if args is not None else "--json" in argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A failure prints one line on standard error; under --json the same failure is also printed
    as `{"error": {"code": …, "message": …}}` on standard output, with the same exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    out = Output()
    try:
        args = build_parser().parse_args(argv)
        out = Output(json=args.json)
        context = Context(args=args, out=out, connect=lambda: Client.from_args(args))
        args.func(context)
        return 0
    except UsageError as exc:
        if _wants_json(args, argv):
            out.document(error_document("USAGE", str(exc).split(": error: ", 1)[-1]))
        print(exc, file=sys.stderr)
        return 2
    except CommandFailed as exc:
        if _wants_json(args, argv):
            out.document({**(exc.document or {}), **error_document(exc.code, str(exc))})
        print(f"mcagent: error: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        message = _describe_rpc_error(exc, args)
        if _wants_json(args, argv):
            out.document(error_document(exc.code().name, message.removeprefix(f"{exc.code().name}: ")))
        print(f"mcagent: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
