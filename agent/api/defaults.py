"""Where the agent lives by default: shared by the daemon and its clients.

Per platform: ``$XDG_DATA_HOME/mcagent`` (else ``~/.local/share/mcagent``) on Linux,
``~/Library/Application Support/mcagent`` on macOS, ``%LOCALAPPDATA%\\mcagent`` on Windows.
The socket is runtime state: ``$XDG_RUNTIME_DIR/mcagent/mcagent.sock`` when that variable is
set, else in the data directory.
"""

import os
import sys

SOCKET_NAME = "mcagent.sock"
KEYSTORE_NAME = "keystore.mcks"


def default_data_dir() -> str:
    """The per-user data directory."""
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "mcagent")
    if sys.platform == "win32":
        return os.path.join(os.environ.get("LOCALAPPDATA", home), "mcagent")
    return os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "mcagent")


def default_socket_path(data_dir: str | None = None) -> str:
    """The daemon's Unix socket when none is named.

    For the default data directory: ``$XDG_RUNTIME_DIR/mcagent/mcagent.sock`` when
    XDG_RUNTIME_DIR is set, else inside the data directory. A daemon given its own data
    directory (`data_dir`) keeps its socket in it, so two agents never share a socket path.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if data_dir is None and runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "mcagent", SOCKET_NAME)
    return os.path.join(data_dir or default_data_dir(), SOCKET_NAME)
