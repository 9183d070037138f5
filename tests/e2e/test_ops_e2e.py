"""Running it like a service: a config file, JSON logs, `config check`, JSON errors, the token notice."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

from tests.conftest import KEYSTORE_PASSWORD
from tests.e2e.conftest import MCAGENT

ABN = "51824753556"


def _password_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "keystore-password"
    path.write_text(KEYSTORE_PASSWORD + "\n")
    path.chmod(0o600)
    return path


def _config(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "mcagent.toml"
    path.write_text(text)
    return path


def _mcagent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCAGENT_")}
    return subprocess.run([MCAGENT, *args], capture_output=True, text=True, timeout=60,
                          env={**environment, **(env or {})})


def test_a_daemon_from_a_config_file_logs_json_lines_in_utc(start_daemon, tmp_path):
    config = _config(tmp_path, f"""
        keystore_password_file = "{_password_file(tmp_path)}"
        log_format = "json"
        store = ["desk={tmp_path}/desk.mcks"]
        max_connections_per_uid = 32
    """)
    daemon = start_daemon("--config", str(config), env={"MCAGENT_KEYSTORE_PASSWORD": ""},
                          secrets=[KEYSTORE_PASSWORD])
    pa = daemon.new_business(ABN, "alice")
    pa.new_principal("carol")
    pa.ok("role", "grant", "--abn", ABN, "--principal", "carol", "--role", "machine-credential-administrator")
    created = json.loads(pa.ok("credential", "create", "--abn", ABN, "--name", "desk-1", "--store", "desk",
                               "--key-type", "ec-p256", "--accept-terms", "--json"))
    assert created["key_uri"].startswith(f"file://{tmp_path}/desk.mcks")
    assert daemon.stop() == 0
    records = [json.loads(line) for line in daemon.log().splitlines()]  # every line is one JSON object
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert record["time"].endswith("+00:00") and len(record["time"]) == len("2026-11-28T08:00:00.123+00:00")
    messages = [r["message"] for r in records if r["level"] == "INFO"]
    for expected in ("principal alice created by local-administrator", "principal carol created",
                     f"business {ABN} (Example Pty Ltd) registered by local-administrator",
                     f"role machine-credential-administrator in business {ABN} granted to carol by alice",
                     "created the agent's CA", "credential.create: credential"):
        assert any(expected in m for m in messages), (expected, messages)


def test_text_logs_are_stamped_in_utc_with_the_offset(file_daemon):
    file_daemon.new_principal("alice")
    first = file_daemon.log().splitlines()[0]
    stamp = first.split(" ", 1)[0]
    assert stamp.endswith("+00:00") and "T" in stamp, first


def test_config_check_prints_the_effective_configuration_without_secrets(tmp_path):
    password = _password_file(tmp_path)
    config = _config(tmp_path, f"""
        data_dir = "{tmp_path}/data"
        keystore_password_file = "{password}"
        store = ["desk={tmp_path}/desk.mcks"]
        idle_timeout = 60
    """)
    checked = _mcagent("config", "check", str(config), "--json")
    assert checked.returncode == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert document["valid"] is True
    assert document["options"]["idle_timeout"] == 60 and document["options"]["store"] == [f"desk={tmp_path}/desk.mcks"]
    assert document["resolved"]["keystore_password"] == f"file {password}"
    assert document["resolved"]["keystore_files"] == {"default": f"{tmp_path}/data/keystore.mcks",
                                                      "desk": f"{tmp_path}/desk.mcks"}
    assert document["resolved"]["socket_path"] == f"{tmp_path}/data/mcagent.sock"
    assert KEYSTORE_PASSWORD not in checked.stdout + checked.stderr
    assert not (tmp_path / "data").exists()  # nothing started, nothing created
    text = _mcagent("config", "check", str(config))
    assert text.returncode == 0 and "idle_timeout = 60" in text.stdout and "valid" in text.stderr
    assert KEYSTORE_PASSWORD not in text.stdout + text.stderr


def test_config_check_refuses_what_serve_would_refuse(tmp_path):
    password = _password_file(tmp_path)
    for toml, expected in [
        ("max_conections = 3", "unknown key 'max_conections'; did you mean 'max_connections'?"),
        (f'keystore_password = "{KEYSTORE_PASSWORD}"', "use keystore_password_file = "),
        (f'keystore_password_file = "{password}"\nlisten = "0.0.0.0:7443"', "refusing plain TCP on 0.0.0.0:7443"),
        ('keystore_backend = "file"', "no key store password"),
    ]:
        result = _mcagent("config", "check", str(_config(tmp_path, toml)), "--json")
        assert result.returncode == 1, (toml, result.stdout, result.stderr)
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "INVALID_CONFIG" and expected in error["message"], (toml, error)
        assert KEYSTORE_PASSWORD not in result.stdout + result.stderr


def test_serve_refuses_a_bad_config_file_before_starting(tmp_path):
    result = _mcagent("serve", "--data-dir", str(tmp_path / "data"),
                      "--config", str(_config(tmp_path, 'keystore-backend = "file"')))
    assert result.returncode == 2
    assert "unknown key 'keystore-backend'; did you mean 'keystore_backend'?" in result.stderr


def test_a_refusal_under_json_is_an_error_document(file_daemon):
    pa = file_daemon.new_business(ABN, "alice")
    result = pa.cli("credential", "show", "no-such-credential", "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "NOT_FOUND" and "no-such-credential" in error["message"]
    assert b"mcagent: error: NOT_FOUND" in result.stderr
    outsider = file_daemon.new_principal("mallory")
    error = json.loads(outsider.cli("credential", "create", "--abn", ABN, "--name", "x", "--accept-terms",
                                     "--json").stdout)["error"]
    assert error["code"] == "PERMISSION_DENIED"


def test_a_redirected_token_is_announced_in_plain_words(file_daemon):
    result = file_daemon.cli("principal", "create", "alice")
    assert result.returncode == 0
    token = result.stdout.decode().strip()
    file_daemon.secrets.append(token)
    assert token.startswith("mcat_")
    notice = result.stderr.decode()
    assert "bearer token was written to standard output" in notice and "keep it secret" in notice
    assert "above" not in notice and token not in notice
