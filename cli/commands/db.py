"""`mcagent db upgrade`: bring the agent's database to this release's schema, without a daemon.

The daemon migrates at start-up too; this lets an operator do it first, on its own (e.g.
before rolling a new release over several instances on one PostgreSQL database). Safe while
other instances start or run: migrating processes queue on a lock (agent/storage/migrate.py,
postgres_migrate.py).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from mcagent.agent.api.defaults import default_data_dir
from mcagent.cli.commands import Context, group, leaf
from mcagent.cli.errors import CommandFailed


def upgrade(ctx: Context) -> None:
    from mcagent.agent.config import ConfigError, database_url
    from mcagent.agent.storage.migrate import SchemaTooNew, migrate, migrations

    args = ctx.args
    try:
        url = database_url(args.database)
    except ConfigError as exc:
        raise CommandFailed(str(exc)) from None
    try:
        if url:
            import psycopg
            from mcagent.agent.storage.postgres_migrate import migrate_postgresql, redacted

            where = redacted(url)
            try:
                applied = migrate_postgresql(url)
            except psycopg.OperationalError as exc:
                raise CommandFailed(f"cannot reach the PostgreSQL database {where}: {str(exc).strip()}") from None
        else:
            where = os.path.join(os.path.abspath(args.data_dir or default_data_dir()), "mcagent.db")
            if not os.path.exists(where):
                raise CommandFailed(f"no database at {where} (`mcagent serve` creates it; or give --data-dir)")
            applied = migrate(where)
    except (SchemaTooNew, RuntimeError) as exc:
        raise CommandFailed(str(exc)) from None
    total = len(migrations("postgresql" if url else "sqlite"))
    if ctx.out.json:
        ctx.out.document({"database": where, "applied": applied, "migrations": total})
        return
    ctx.out.line(f"{where}: applied {', '.join(applied)}" if applied
                 else f"{where}: up to date ({total} migrations)")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "db", "the agent's database (offline operations, no daemon)")
    p = leaf(verbs, "upgrade", upgrade, "bring the database to this release's schema (the daemon also does "
             "at start-up)", common)
    p.add_argument("--database", metavar="URL", help="postgresql://USER@HOST/DB (else env MCAGENT_DATABASE_URL; "
                   "else SQLite in --data-dir)")
    p.add_argument("--data-dir", help="the data folder holding mcagent.db (default: the per-user data home)/mcagent")
