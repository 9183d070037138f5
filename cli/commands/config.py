"""`mcagent config check FILE`: validate a `serve --config` file without starting anything.

The file is read by the serve parser itself and the result goes through `serve`'s own
handler up to the built Config (the same checks as at start-up: secret files readable and
private, TLS files readable, the combination of options sound), which is then printed
instead of run. Secrets appear as their source (a file name or an environment variable),
never as their contents.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from typing import Any

from mcagent.cli.commands import Context, group
from mcagent.cli.errors import CommandFailed, UsageError

# Config fields that hold a secret, and the options that name their file.
SECRETS = {"keystore_password": ("keystore_password_file", "MCAGENT_KEYSTORE_PASSWORD"),
           "pkcs11_pin": ("pkcs11_pin_file", "MCAGENT_PKCS11_PIN")}


def _plain(value: Any) -> Any:
    """A Config value as JSON: sets sorted, enums by value; bytes never (they are file contents)."""
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def describe(options: dict[str, Any], config: Any) -> dict[str, Any]:
    """The effective configuration: the options as the file spells them, and what the daemon resolved."""
    resolved: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name in SECRETS:
            file_key, env = SECRETS[item.name]
            resolved[item.name] = (None if value is None else
                                   f"file {options[file_key]}" if options.get(file_key) else f"env {env}")
        elif isinstance(value, bytes):  # TLS material read from the file its option names
            resolved[item.name] = f"file {options[item.name]}" if options.get(item.name) else "read"
        elif item.name == "database" and value:  # its password (from the environment) is never shown
            from mcagent.agent.storage.postgres_migrate import redacted

            resolved[item.name] = redacted(value)
        elif item.name == "socket_mode":
            resolved[item.name] = f"{value:04o}"
        else:
            resolved[item.name] = _plain(value)
    return {"options": {k: _plain(v) for k, v in options.items()}, "resolved": resolved}


def _text(document: dict[str, Any]) -> str:
    lines = ["# options (file keys; the defaults filled in)"]
    lines += [f"{key} = {value!r}" for key, value in document["options"].items() if value is not None]
    lines += ["", "# resolved"]
    lines += [f"{key} = {value!r}" for key, value in document["resolved"].items()]
    return "\n".join(lines)


def check(ctx: Context) -> None:
    from mcagent.cli import configfile
    from mcagent.cli.commands import serve
    from mcagent.cli.main import serve_parser as the_serve_parser

    serve_parser = the_serve_parser()
    try:
        args = configfile.fill_suppressed(serve_parser, serve_parser.parse_args(["--config", ctx.args.file]))
    except UsageError as exc:
        raise CommandFailed(str(exc).removeprefix(f"{serve_parser.prog}: error: "), code="INVALID_CONFIG") from None
    options = configfile.effective(serve_parser, args)
    found: list[Any] = []
    args.config_check = found.append
    args.log_level = "warning"  # `serve` configures logging; a check has nothing to say at INFO
    try:
        serve.serve(Context(args=args, out=ctx.out, connect=ctx.connect))
    except CommandFailed as exc:
        raise CommandFailed(str(exc), code="INVALID_CONFIG") from None
    document = describe(options, found[0])
    if ctx.out.json:
        ctx.out.document({"valid": True, **document})
    else:
        ctx.out.line(_text(document))
        ctx.out.tell(f"{ctx.args.file}: valid")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "config", "the daemon's configuration file")
    p = verbs.add_parser("check", help="validate a `serve --config` file and print the effective configuration",
                         description="validate a `serve --config` file (the checks `serve` makes at start-up, "
                                     "nothing started) and print the effective configuration")
    p.set_defaults(func=check)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
