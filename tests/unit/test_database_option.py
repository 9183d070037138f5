"""`serve --database` / MCAGENT_DATABASE_URL: which records the daemon opens, and what is refused."""

from __future__ import annotations

import pytest
from mcagent.agent.config import DATABASE_URL_ENV, Config, ConfigError, database_url

URL = "postgresql://mcagent@db.example:5432/mcagent"


def _config(tmp_path, **options) -> Config:
    return Config.build(data_dir=str(tmp_path), socket_path=None, backend="file", keystore_path=None,
                        keystore_password_file=None, pkcs11_module=None, pkcs11_token=None, pkcs11_pin_file=None,
                        **options)


def test_sqlite_in_the_data_folder_is_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv("MCAGENT_KEYSTORE_PASSWORD", "x")
    config = _config(tmp_path)
    assert config.database is None and config.database_location() == str(tmp_path / "mcagent.db")


def test_the_flag_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MCAGENT_KEYSTORE_PASSWORD", "x")
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://other@elsewhere/db")
    assert _config(tmp_path).database_location() == "postgresql://other@elsewhere/db"
    assert _config(tmp_path, database=URL).database_location() == URL


def test_a_password_may_come_from_the_environment_but_never_the_command_line(monkeypatch):
    secret = "postgresql://mcagent:s3cret@db.example/mcagent"
    with pytest.raises(ConfigError, match="must not carry the password.*pgpass") as refusal:
        database_url(secret)
    assert "s3cret" not in str(refusal.value)
    with pytest.raises(ConfigError, match="must not carry the password"):
        database_url("postgresql://mcagent@db.example/mcagent?password=s3cret")
    monkeypatch.setenv(DATABASE_URL_ENV, secret)
    assert database_url(None) == secret


@pytest.mark.parametrize("value", ["/var/lib/mcagent/mcagent.db", "mysql://x@y/z", "sqlite:///x.db"])
def test_anything_but_a_postgresql_url_is_refused(value):
    with pytest.raises(ConfigError, match="takes a PostgreSQL URL"):
        database_url(value)


def test_config_check_shows_the_url_without_its_password(tmp_path, monkeypatch):
    from mcagent.cli.commands.config import describe

    monkeypatch.setenv("MCAGENT_KEYSTORE_PASSWORD", "x")
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://mcagent:s3cret@db.example:5433/agents")
    shown = describe({}, _config(tmp_path))["resolved"]["database"]
    assert shown == "postgresql://mcagent@db.example:5433/agents"
