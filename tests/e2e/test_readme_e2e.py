"""README.md's walkthrough ("Using it") and its client-library example, run as written
against a real daemon: the documentation cannot drift from what the agent does."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from tests.conftest import REPO

WALKTHROUGH_MARKER = "<!-- walkthrough:"
CLIENT_MARKER = "<!-- client example:"


def _block(marker: str, language: str) -> str:
    """The fenced code block right after `marker` in README.md."""
    readme = (REPO / "README.md").read_text()
    found = re.search(rf"^{re.escape(marker)}[^\n]*\n```{language}\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    assert found, f"README.md has no {language} block right after a line starting {marker!r}"
    return found.group(1)


def test_the_readme_walkthrough_and_client_example_run(file_daemon, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(pathlib.Path(sys.executable).parent.parent)  # `. .venv/bin/activate`
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCAGENT_")}
    env["MCAGENT_SOCKET"] = file_daemon.socket

    script = "set -euo pipefail\n" + _block(WALKTHROUGH_MARKER, "sh")
    shell = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0, f"stdout:\n{shell.stdout}\nstderr:\n{shell.stderr}"
    assert "Verified OK" in shell.stdout
    assert "myID" in shell.stdout and "myGovID" not in shell.stdout  # the terms' current name
    token = (work / "alice.token").read_text().strip()
    file_daemon.secrets.append(token)
    assert oct((work / "alice.token").stat().st_mode & 0o777) == "0o600"

    python = subprocess.run([sys.executable, "-c", _block(CLIENT_MARKER, "python")], cwd=work,
                            env={**env, "MCAGENT_TOKEN": token}, capture_output=True, text=True, timeout=60)
    assert python.returncode == 0, python.stderr
    assert python.stdout.strip() == "rsa-pkcs1-sha256 256 bytes"
