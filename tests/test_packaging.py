"""The wheel installs one top-level package, `mcagent`, with its data files and entry point."""

from __future__ import annotations

import configparser
import pathlib
import subprocess
import sys
import tomllib
import zipfile

from tests.conftest import REPO


def test_the_wheel_holds_only_mcagent_with_its_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mcagent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"mcagent", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for expected in ("mcagent/agent/domain/data/permissions.json",
                     "mcagent/agent/storage/migrations/0001_businesses_credentials_terms.sql",
                     "mcagent/agent/api/v1/agent_pb2.py", "mcagent/hsm/pkcs11/backend.py",
                     "mcagent/cli/commands/credential.py", "mcagent/client/__init__.py",
                     "mcagent/agent/api/v1/agent.proto"):
        assert expected in names
    # The contract ships byte for byte as written in proto/.
    assert zipfile.ZipFile(wheel).read("mcagent/agent/api/v1/agent.proto") == \
        (REPO / "proto/mcagent/agent/api/v1/agent.proto").read_bytes()
    # The client library's source sits in agent/client/ but installs as mcagent.client, not mcagent.agent.client.
    assert not any(n.startswith("mcagent/agent/client/") for n in names)
    packages = {pathlib.Path(n).parent.as_posix() for n in names if n.endswith("/__init__.py")}
    sources = {_installed_path(p.parent) for folder in ("agent", "hsm", "cli")
               for p in (REPO / folder).rglob("__init__.py")}
    assert sources <= packages, f"packages missing from pyproject.toml: {sorted(sources - packages)}"
    entry_points = configparser.ConfigParser()
    entry_points.read_string(zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode())
    assert entry_points["console_scripts"]["mcagent"] == "mcagent.cli.main:main"


def _installed_path(source: pathlib.Path) -> str:
    """Where a source folder lands in the wheel, by the longest package-dir mapping that holds it."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    relative = source.relative_to(REPO).as_posix()
    package, folder = max(((p, f) for p, f in mapping.items() if relative == f or relative.startswith(f + "/")),
                          key=lambda item: len(item[1]))
    return (package.replace(".", "/") + relative.removeprefix(folder)).rstrip("/")
