"""The house's import rules, read from the source: arrows only point down.

server → domain → ports; adapters (storage, keys) implement ports; the composition root
(agent.app) wires them; hsm knows nothing of the agent; nothing but the CLI's `serve`
imports the daemon from cli/.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

# package (folder) -> module prefixes it must never import
FORBIDDEN = {
    "agent/domain": ["mcagent.agent.storage", "mcagent.agent.server", "mcagent.agent.keys", "mcagent.agent.app",
                     "mcagent.agent.config", "mcagent.agent.api", "grpc", "sqlite3", "psycopg", "mcagent.cli",
                     "prometheus_client"],
    "agent/storage": ["mcagent.agent.server", "mcagent.agent.app", "mcagent.agent.keys", "grpc", "mcagent.cli",
                      "prometheus_client"],
    "agent/keys.py": ["mcagent.agent.server", "mcagent.agent.app", "mcagent.agent.storage", "grpc", "mcagent.cli"],
    "agent/server": ["mcagent.cli"],
    "hsm": ["mcagent.agent", "mcagent.cli", "grpc"],
    # the installed names only: a bare `agent`, `hsm` or `cli` import works only from a checkout
    "agent": ["agent", "hsm", "cli"],
    "cli": ["agent", "hsm", "cli"],
    "hsm/": ["agent", "hsm", "cli"],
    "tests": ["agent", "hsm", "cli"],
    "bench": ["agent", "hsm", "cli"],
    # the client library (installed as mcagent.client) needs only the API: it ships to callers' machines
    "agent/client": ["mcagent.agent.domain", "mcagent.agent.server", "mcagent.agent.storage", "mcagent.agent.app",
                     "mcagent.agent.keys", "mcagent.agent.config", "mcagent.hsm", "mcagent.cli"],
    # its installed name only: `mcagent.agent.client` resolves in an editable install but not in the wheel
    "agent/": ["mcagent.agent.client"],
    "cli/": ["mcagent.agent.client"],
}


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _files(where: str) -> list[pathlib.Path]:
    path = REPO / where.rstrip("/")
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_no_upward_import(where):
    files = _files(where)
    assert files, f"{where} holds no Python file: the rule guards nothing"
    broken = [f"{path.relative_to(REPO)}:{line} imports {name}"
              for path in files for line, name in _imports(path)
              for banned in FORBIDDEN[where] if name == banned or name.startswith(banned + ".")]
    assert not broken, "\n".join(broken)


def test_the_rule_sees_a_violation(tmp_path):
    """The parser is not blind: a planted upward import is found."""
    planted = tmp_path / "x.py"
    planted.write_text("import sqlite3\nfrom mcagent.agent.storage import Storage\nimport hsm.base\n")
    assert [name for _, name in _imports(planted)] == ["sqlite3", "mcagent.agent.storage", "hsm.base"]


def test_no_module_over_400_lines_in_agent_or_cli():
    long = [f"{path.relative_to(REPO)}: {n} lines" for where in ("agent", "cli") for path in _files(where)
            if "api/v1" not in str(path) and (n := len(path.read_text().splitlines())) > 400]
    assert not long, "\n".join(long)
