"""`mcagent backup --out FILE`: a consistent copy of the daemon's database, taken while it serves."""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.commands import Context, leaf
from mcagent.cli.errors import CommandFailed


def backup(ctx: Context) -> None:
    """Stream the copy into a temporary file beside FILE (0600), check its size and SHA-256
    against the daemon's, fsync, then rename: FILE is either the whole copy or untouched."""
    out = ctx.args.out
    directory = os.path.dirname(os.path.abspath(out))
    temporary = os.path.join(directory, f".{os.path.basename(out)}.{os.getpid()}.tmp")
    digest, size, last = hashlib.sha256(), 0, None
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CommandFailed(f"cannot write {out}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in ctx.client.admin.Backup(pb.BackupRequest()):
                if chunk.last:
                    last = chunk
                    break
                fh.write(chunk.data)
                digest.update(chunk.data)
                size += len(chunk.data)
            if last is None or last.size != size or last.sha256 != digest.hexdigest():
                raise CommandFailed("the backup arrived incomplete or damaged; nothing was written; try again")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, out)
    except OSError as exc:
        raise CommandFailed(f"cannot write {out}: {exc.strerror}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    ctx.out.result(last, f"backup written to {out}: {size} bytes, sha256 {last.sha256}, holding the audit log up to "
                         f"at least entry {last.audit_seq}. Copy the key store file(s) now, after it (token keys "
                         "stay in the token).")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(groups, "backup", backup, "a consistent copy of the agent's database, written to FILE (mode 0600); "
             "local administrator only", common)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the copy (replaced atomically)")
