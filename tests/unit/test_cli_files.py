"""cli/files.py: an output path that is not a regular file is written to, never replaced."""

from __future__ import annotations

import os
import stat
import threading

from mcagent.cli.files import write_private_file


def test_a_fifo_is_written_to_not_replaced(tmp_path):
    """As /dev/null would be: a rename over it (as root) would put a file where the device was."""
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_private_file(str(fifo), b"signature")
    reader.join(10)
    assert received == [b"signature"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["out"]  # no temporary file left beside it


def test_a_regular_file_is_replaced_whole_with_mode_0600(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old and longer")
    target.chmod(0o644)
    write_private_file(str(target), b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600
