"""`mcagent serve --config FILE`: a TOML file whose keys are the parser's own long options.

Nothing here knows `serve`'s flags. A parser marked with `config_file = True` (see
`cli/errors.py`) reads its `--config FILE` before its command line: each of its long
options `--a-b` is the key `a_b` (snake_case, TOML's custom), so a flag added to the parser
is available in the file without a change here. Values take the TOML type of the flag:
a boolean for a switch, an integer for an integer option, a string for the rest, and a list
for a repeatable flag. Precedence: the command line, then the file, then the flag's default.
A repeatable flag given on the command line replaces the file's list rather than adding to it.

Secrets never sit in the file: a key whose `<key>_file` form exists (`keystore_password`
beside `keystore_password_file`) is refused with a message naming the `_file` form.
"""

from __future__ import annotations

import argparse
import difflib
import tomllib
from dataclasses import dataclass
from typing import Any

CONFIG_OPTION = "--config"
CONFIG_DEST = "config"


class ConfigFileError(Exception):
    """The file cannot be used; the message names the file and, where it can, the key."""


def key_of(action: argparse.Action) -> str | None:
    """The file key of an option (`--keystore-backend` -> `keystore_backend`), or None if it has none."""
    longs = [o for o in action.option_strings if o.startswith("--")]
    if not longs or isinstance(action, argparse._HelpAction) or action.dest == CONFIG_DEST:
        return None
    return longs[0][2:].replace("-", "_")


def file_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every key the file may hold for `parser`, with the option behind it."""
    keys = {}
    for action in parser._actions:
        key = key_of(action)
        if key is not None:
            keys[key] = action
    return keys


def repeatable(action: argparse.Action) -> bool:
    """True for an option whose value is a list (`action="append"`, `nargs="+"`/`"*"`)."""
    return isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")


def switch(action: argparse.Action) -> bool:
    return isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._StoreConstAction)


def load(path: str) -> dict[str, Any]:
    """The TOML document at `path`.

    Raises:
        ConfigFileError: it cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"config file {path} is not valid TOML: {exc}") from None


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _convert(parser: argparse.ArgumentParser, action: argparse.Action, key: str, value: Any) -> Any:
    """One TOML value as the parser would have stored it from the command line."""
    if isinstance(value, str):
        try:
            converted = parser._get_value(action, value)
            parser._check_value(action, converted)
        except argparse.ArgumentError as exc:
            raise ConfigFileError(f"{key}: {exc.message}") from None
        return converted
    numeric = action.type in (int, float) and isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and (action.type is float or isinstance(value, int)):
        converted = action.type(value)
        if action.choices is not None and converted not in action.choices:
            raise ConfigFileError(f"{key}: not one of {', '.join(map(str, action.choices))}")
        return converted
    wanted = "an integer" if action.type is int else "a number" if action.type is float else "a string"
    raise ConfigFileError(f"{key}: expected {wanted}, got {_type_name(value)}")  # no value: it may be a secret


def closest(key: str, keys: list[str]) -> str:
    """`; did you mean 'x'?` for the nearest of `keys`, or nothing."""
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


@dataclass
class FileValues:
    """The file's values by destination, and the lists the file gave (so the command line can replace them)."""

    values: dict[str, Any]
    lists: dict[str, list[Any]]


def read_values(parser: argparse.ArgumentParser, document: dict[str, Any]) -> FileValues:
    """Check every key of `document` against `parser`'s options and convert its value.

    Raises:
        ConfigFileError: an unknown key (with the closest valid one), a secret, or a value of the wrong type.
    """
    keys = file_keys(parser)
    values: dict[str, Any] = {}
    lists: dict[str, list[Any]] = {}
    for key, value in document.items():
        action = keys.get(key)
        if action is None:
            if f"{key}_file" in keys:
                raise ConfigFileError(f"{key}: secrets are not kept in the config file; "
                                      f"use {key}_file = \"/path/to/file\" (mode 0600) instead")
            if key == CONFIG_DEST:
                raise ConfigFileError("config: a config file cannot name another config file")
            raise ConfigFileError(f"unknown key '{key}'{closest(key, sorted(keys))}")
        if isinstance(value, dict):
            raise ConfigFileError(f"{key}: expected a value, got a table")
        if switch(action):
            if not isinstance(value, bool):
                raise ConfigFileError(f"{key}: expected true or false, got {_type_name(value)}")
            if value:
                values[action.dest] = action.const
            continue
        if repeatable(action):
            if not isinstance(value, list):
                raise ConfigFileError(f"{key}: expected a list (e.g. {key} = [\"...\"]), got {_type_name(value)}")
            items = [_convert(parser, action, key, item) for item in value]
            values[action.dest] = items
            if isinstance(action, argparse._AppendAction):  # the command line would add to it
                lists[action.dest] = items
            continue
        values[action.dest] = _convert(parser, action, key, value)
    return FileValues(values, lists)


def parse_with_file(parser: argparse.ArgumentParser, parse: Any, args: list[str] | None,
                    namespace: argparse.Namespace | None) -> tuple[argparse.Namespace, list[str]]:
    """`parser.parse_known_args`, with the values of `--config FILE` under those of the command line.

    `parse` is the parser's own (argparse's) parse_known_args. The command line is parsed once to
    find the file, then again over a namespace that already holds the file's values: argparse
    applies a default only where the namespace has none, so the command line wins.
    """
    first, extras = parse(args, None if namespace is None else argparse.Namespace(**vars(namespace)))
    path = getattr(first, CONFIG_DEST, None)
    if not path:
        return first, extras
    try:
        from_file = read_values(parser, load(path))
    except ConfigFileError as exc:
        message = str(exc)
        parser.error(message if message.startswith(("cannot read", "config file")) else
                     f"config file {path}: {message}")
    merged = argparse.Namespace(**{**vars(namespace or argparse.Namespace()), **from_file.values})
    result, extras = parse(args, merged)
    for dest, items in from_file.lists.items():
        given = getattr(result, dest)
        if given is not items:  # the command line appended a copy: its own items replace the file's
            setattr(result, dest, given[len(items):])
    return result, extras


def fill_suppressed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """`args` with None for every option left out because its default is SUPPRESS.

    Under the root parser those destinations come from the root's own options (`--socket`);
    `parser` parsed alone leaves them out.
    """
    for action in parser._actions:
        if action.dest != argparse.SUPPRESS and not hasattr(args, action.dest):
            setattr(args, action.dest, None)
    return args


def effective(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Every file key of `parser` with the value in `args` (what the daemon will run with)."""
    return {key: getattr(args, action.dest, None) for key, action in sorted(file_keys(parser).items())}
