"""A consistent copy of the database while the agent keeps serving (SQLite's online backup API)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from typing import BinaryIO

from mcagent.agent.domain.errors import Unavailable


def snapshot_database(path: str) -> BinaryIO:
    """Copy the database at `path` into a private temporary file beside it and open that.

    The copy is made by one `sqlite3_backup_step(-1)` on a connection of its own: one read
    transaction, so it is the database as of one commit (WAL readers see a snapshot; writers
    go on meanwhile and are not in it). The file is unlinked once open, so nothing is left on
    the disk whatever happens to the caller; closing the returned file frees it.

    Raises:
        Unavailable: the copy could not be made or does not pass SQLite's quick check.
    """
    fd, copy_path = tempfile.mkstemp(prefix=".backup-", suffix=".db", dir=os.path.dirname(path) or ".")
    os.close(fd)  # mode 0600 (mkstemp); SQLite writes it through its own connection
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(copy_path)
        try:
            source.execute("PRAGMA busy_timeout=10000")
            source.backup(target)
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise Unavailable(f"the backup copy failed SQLite's quick check ({check}); try again")
        finally:
            target.close()
            source.close()
        copy = open(copy_path, "rb")  # noqa: SIM115 (the caller closes it)
    except sqlite3.Error as exc:
        raise Unavailable(f"the database could not be copied: {exc}") from None
    finally:
        os.unlink(copy_path)
    return copy
