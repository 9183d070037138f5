"""A consistent copy of the database while the agent keeps serving (SQLite's online backup API)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import tempfile
from typing import TYPE_CHECKING, BinaryIO

from mcagent.agent.domain.errors import Unavailable
from mcagent.hsm.uri import FileURI

if TYPE_CHECKING:  # sqlite.py imports this module
    from mcagent.agent.storage.sqlite import Storage


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


def key_store_paths(path: str) -> set[str]:
    """The key store files the records at `path` name (the paths in their `file:` key URIs)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        uris = [row[0] for row in conn.execute("SELECT key_uri FROM credential UNION SELECT key_uri FROM ca")]
    return {FileURI.parse(uri).path for uri in uris if uri.startswith("file:")}


def move_key_stores(storage: Storage, moves: dict[str, str], *, at: dt.datetime, actor: str) -> int:
    """Point every key URI naming a key store file in `moves` at its new path, with an audit entry.

    For a restore into another folder: records name a key by its file's absolute path.

    Returns:
        How many records were changed.
    """
    changed = 0
    with storage.transaction() as conn:
        for table in ("credential", "ca"):
            for key, uri in conn.execute(f"SELECT rowid, key_uri FROM {table} WHERE key_uri LIKE 'file:%'").fetchall():
                parsed = FileURI.parse(uri)
                if parsed.path in moves:
                    moved = str(FileURI(moves[parsed.path], parsed.label))
                    conn.execute(f"UPDATE {table} SET key_uri = ? WHERE rowid = ?", (moved, key))
                    changed += 1
        storage.append_audit(at=at, actor=actor, action="restore.move-key-stores", outcome="allowed",
                             detail={"moved": moves, "records": changed})
    return changed
