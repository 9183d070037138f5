"""A SoftHSM2 token in a temporary folder for the measurement scripts (many_keys,
concurrent_create), which run outside pytest and its fixtures."""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import subprocess
import tempfile

PIN = "1234"


def scratch_token(label: str) -> None:
    """Make an empty token labelled `label` (user PIN `PIN`) in a new temporary folder, removed
    when the process exits, and point SOFTHSM2_CONF at it for this process."""
    root = pathlib.Path(tempfile.mkdtemp(prefix=f"mcagent-{label}-"))
    atexit.register(shutil.rmtree, root, True)
    (root / "tokens").mkdir()
    (root / "softhsm2.conf").write_text(f"directories.tokendir = {root / 'tokens'}\n"
                                        "objectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(root / "softhsm2.conf")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
                    "--so-pin", "5678"], check=True, capture_output=True)
