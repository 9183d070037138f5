"""OpenSC's pkcs11-tool as an independent view of the test token."""

from __future__ import annotations

import subprocess

from tests.conftest import SoftHSM, require_tool


def pkcs11_tool(softhsm: SoftHSM, *args: str) -> subprocess.CompletedProcess:
    """Run pkcs11-tool logged in to the test token."""
    tool = require_tool("pkcs11-tool", "opensc")
    return subprocess.run(
        [tool, "--module", softhsm.module, "--token-label", softhsm.token, "--login", "--pin", softhsm.pin, *args],
        capture_output=True, text=True,
    )


def list_objects(softhsm: SoftHSM) -> str:
    """`pkcs11-tool --list-objects` output."""
    result = pkcs11_tool(softhsm, "--list-objects")
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects_by_label(listing: str, label: str) -> list[str]:
    """The object blocks of a listing whose label is `label`."""
    blocks, current = [], []
    for line in listing.splitlines():
        if line and not line.startswith(" "):
            if current:
                blocks.append("\n".join(current))
            current = [line]
        elif current:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return [b for b in blocks if f"label:      {label}\n" in b + "\n"]
