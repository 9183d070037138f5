"""SBR queries: credential aliases and the "local" flag (migration 0007), written once for both
engines (see engine.py)."""

from __future__ import annotations

import datetime as dt

from mcagent.agent.storage.queries import Queries
from mcagent.agent.storage.rows import ts


class SbrQueries(Queries):
    """Aliases and local flags of `SqlRecords` (a mixin: it runs its statements through the
    engine's `_execute`, `_one` and `_all`)."""

    def alias_target(self, alias: str) -> str | None:
        """The id of the credential the alias names now, or None."""
        row = self._one("SELECT credential_id FROM credential_alias WHERE alias = ?", (alias,))
        return None if row is None else row["credential_id"]

    def aliases_of(self, credential_ids: list[str]) -> dict[str, str]:
        """credential id -> the alias it holds, for those of `credential_ids` that hold one."""
        if not credential_ids:
            return {}
        found = self._all(f"SELECT alias, credential_id FROM credential_alias WHERE credential_id IN "
                          f"({', '.join('?' * len(credential_ids))})", list(credential_ids))
        return {r["credential_id"]: r["alias"] for r in found}

    def point_alias(self, alias: str, credential_id: str, expected: str | None, at: dt.datetime) -> bool:
        """Make the alias name `credential_id` if it still names `expected` (None: no row yet);
        False when someone else moved it first (inside a transaction)."""
        if expected is None:
            cursor = self._execute(
                "INSERT INTO credential_alias (alias, credential_id, moved_at) SELECT ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM credential_alias WHERE alias = ?)",
                (alias, credential_id, ts(at), alias))
        else:
            cursor = self._execute(
                "UPDATE credential_alias SET credential_id = ?, moved_at = ? WHERE alias = ? AND credential_id = ?",
                (credential_id, ts(at), alias, expected))
        return cursor.rowcount == 1

    def is_local(self, credential_id: str) -> bool:
        """Whether the credential is flagged local (never used with ActAs)."""
        return self._one("SELECT 1 FROM credential_local WHERE credential_id = ?", (credential_id,)) is not None

    def set_local(self, credential_id: str, local: bool, at: dt.datetime, by: str) -> None:
        """Flag the credential local, or clear the flag (inside a transaction)."""
        self._execute("DELETE FROM credential_local WHERE credential_id = ?", (credential_id,))
        if local:
            self._execute("INSERT INTO credential_local (credential_id, set_at, set_by) VALUES (?, ?, ?)",
                          (credential_id, ts(at), by))
