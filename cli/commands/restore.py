"""`mcagent restore BACKUP --data-dir DIR`: a backup made by `mcagent backup`, into a new data folder.

Offline (no daemon): the copy becomes DIR/mcagent.db, brought to this release's schema, and
the key URIs of its records are pointed at where the key store files now are (records name a
key by its file's absolute path): the backup's default key store file becomes DIR's, others
move as `--move OLD=NEW` says. The move is written to the audit log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
from typing import Any

from mcagent.agent.api.defaults import KEYSTORE_NAME, default_data_dir
from mcagent.cli.commands import Context, leaf
from mcagent.cli.errors import CommandFailed, UsageError
from mcagent.cli.files import read_file, write_private_file


def restore(ctx: Context) -> None:
    from mcagent.agent.storage import Storage
    from mcagent.agent.storage.backup import key_store_paths, move_key_stores

    args = ctx.args
    data_dir = os.path.abspath(args.data_dir or default_data_dir())
    database = os.path.join(data_dir, "mcagent.db")
    if os.path.exists(database):
        raise CommandFailed(f"{database} exists: a restore goes into a new data folder (or move that file away)")
    moves = {}
    for spec in args.move or []:
        old, sep, new = spec.partition("=")
        if not sep or not os.path.isabs(old) or not new:
            raise UsageError(f"mcagent restore: error: --move {spec!r} must be OLD=NEW with an absolute OLD path")
        moves[old] = os.path.abspath(new)
    try:
        named = key_store_paths(args.backup)
    except sqlite3.Error as exc:
        raise CommandFailed(f"{args.backup} is not a backup made by `mcagent backup`: {exc}") from None
    defaults = [path for path in named - moves.keys() if os.path.basename(path) == KEYSTORE_NAME]
    if len(defaults) == 1:
        moves[defaults[0]] = os.path.join(data_dir, KEYSTORE_NAME)
    unplaced = sorted(named - moves.keys())
    if unplaced:
        raise CommandFailed("the backup's records name key store files with no new place: "
                            + ", ".join(unplaced) + "; give --move OLD=NEW for each")
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    write_private_file(database, read_file(args.backup, "the backup"))
    storage = Storage(database)  # migrates a backup of an older release
    try:
        moved = {old: new for old, new in moves.items() if old != new}
        changed = move_key_stores(storage, moved, at=dt.datetime.now(dt.UTC), actor="mcagent restore") if moved else 0
    finally:
        storage.close()
    copies = "; ".join(f"{old} -> {new}" for old, new in sorted(moves.items()))
    if ctx.out.json:
        ctx.out.document({"data_dir": data_dir, "key_references_moved": changed, "key_stores": moves})
        return
    ctx.out.line(f"restored into {data_dir} ({changed} key references moved). Now copy the key store file(s) "
                 f"made after the backup: {copies or 'none named'}; then start the agent and run "
                 "`mcagent audit verify`.")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(groups, "restore", restore, "a backup into a new data folder (offline, no daemon)", common)
    p.add_argument("backup", metavar="BACKUP", help="a file written by `mcagent backup`")
    p.add_argument("--data-dir", help="the new data folder (default: the per-user data home)/mcagent")
    p.add_argument("--move", action="append", metavar="OLD=NEW",
                   help="a key store file other than the default, from its old path to its new one (repeatable)")
