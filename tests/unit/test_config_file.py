"""`serve --config FILE`: the TOML file is read over the serve parser's own options (cli/configfile.py)."""

from __future__ import annotations

import argparse
import pathlib

import pytest
from mcagent.cli import configfile
from mcagent.cli.errors import Parser, UsageError
from mcagent.cli.main import build_parser, serve_parser


def _parse(tmp_path: pathlib.Path, toml: str, *argv: str) -> argparse.Namespace:
    path = tmp_path / "mcagent.toml"
    path.write_text(toml)
    return build_parser().parse_args(["serve", "--config", str(path), *argv])


def _refused(tmp_path: pathlib.Path, toml: str, *argv: str) -> str:
    with pytest.raises(UsageError) as refusal:
        _parse(tmp_path, toml, *argv)
    return str(refusal.value)


def test_every_long_serve_flag_is_a_snake_case_key():
    keys = configfile.file_keys(serve_parser())
    for flag in ("--keystore-backend", "--store", "--max-connections", "--log-format", "--socket", "--tls-cert"):
        assert flag[2:].replace("-", "_") in keys
    assert "config" not in keys and "help" not in keys


def test_values_from_the_file_take_the_flags_types(tmp_path):
    args = _parse(tmp_path, """
        data_dir = "/srv/mcagent"
        keystore_backend = "pkcs11"
        store = ["desk=/srv/desk.mcks", "lab=/srv/lab.mcks"]
        admin_uid = [1001, 1002]
        max_connections = 10
        socket = "/run/mcagent.sock"
        log_format = "json"
    """)
    assert args.data_dir == "/srv/mcagent" and args.keystore_backend == "pkcs11"
    assert args.store == ["desk=/srv/desk.mcks", "lab=/srv/lab.mcks"] and args.admin_uid == [1001, 1002]
    assert args.max_connections == 10 and args.socket == "/run/mcagent.sock" and args.log_format == "json"
    assert args.idle_timeout is None and args.socket_mode == "0600"  # defaults where the file is silent


def test_the_command_line_overrides_the_file_and_replaces_its_lists(tmp_path):
    toml = 'keystore_backend = "pkcs11"\nmax_connections = 10\nstore = ["desk=/a.mcks"]\n'
    args = _parse(tmp_path, toml, "--keystore-backend", "file", "--store", "lab=/b.mcks")
    assert args.keystore_backend == "file" and args.max_connections == 10 and args.store == ["lab=/b.mcks"]
    args = _parse(tmp_path, toml, "--max-connections", "5")  # flags before or after --config alike
    assert args.max_connections == 5 and args.store == ["desk=/a.mcks"]


def test_an_unknown_key_is_named_with_the_closest_valid_one(tmp_path):
    assert "unknown key 'keystore-backend'; did you mean 'keystore_backend'?" in _refused(
        tmp_path, 'keystore-backend = "file"')
    assert "unknown key 'max_conections'; did you mean 'max_connections'?" in _refused(tmp_path, "max_conections = 3")
    assert "unknown key 'colour'" in _refused(tmp_path, 'colour = "blue"')


@pytest.mark.parametrize("key", ["keystore_password", "pkcs11_pin"])
def test_a_secret_is_refused_with_its_file_form(tmp_path, key):
    message = _refused(tmp_path, f'{key} = "Secret-pass1!"')
    assert f"use {key}_file = " in message and "Secret-pass1!" not in message


@pytest.mark.parametrize(("toml", "expected"), [
    ('max_connections = "many"', "max_connections: invalid int value: 'many'"),
    ("max_connections = true", "max_connections: expected an integer, got a boolean"),
    ('keystore_backend = "tape"', "keystore_backend: invalid choice: 'tape'"),
    ('store = "desk=/a.mcks"', "store: expected a list"),
    ("data_dir = 3", "data_dir: expected a string, got an integer"),
    ("timezone = { name = 'UTC' }", "timezone: expected a value, got a table"),
    ("[serve]\ndata_dir = '/x'", "unknown key 'serve'"),  # the keys sit at the top level
    ('config = "other.toml"', "cannot name another config file"),
    ("data_dir = ", "is not valid TOML"),
])
def test_a_value_of_the_wrong_kind_is_refused(tmp_path, toml, expected):
    assert expected in _refused(tmp_path, toml)


def test_an_unreadable_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="cannot read config file .*missing.toml"):
        build_parser().parse_args(["serve", "--config", str(tmp_path / "missing.toml")])


def test_a_flag_added_later_is_a_key_without_a_change_to_the_merge(tmp_path):
    parser = Parser(prog="demo")
    parser.config_file = True
    parser.add_argument("--config")
    parser.add_argument("--grace-period", type=float, default=30.0)
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--peer", action="append")
    path = tmp_path / "demo.toml"
    path.write_text('grace_period = 5\ndrain = true\npeer = ["a", "b"]\n')
    args = parser.parse_args(["--config", str(path)])
    assert args.grace_period == 5.0 and args.drain is True and args.peer == ["a", "b"]
    assert parser.parse_args(["--config", str(path), "--peer", "c"]).peer == ["c"]
    path.write_text("drain = false\n")
    assert parser.parse_args(["--config", str(path)]).drain is False
