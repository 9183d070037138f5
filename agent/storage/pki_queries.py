"""The agent's CA and CRL queries (both engines)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mcagent.agent.storage import rows
from mcagent.agent.storage.queries import Queries
from mcagent.agent.storage.rows import parse_ts, ts


class PkiQueries(Queries):
    """The CA half of `SqlRecords` (a mixin: it uses the engine's execute API)."""

    def ca(self) -> dict[str, Any]:
        """The CA rows by role ('root', 'issuing'); empty before the CA exists."""
        return {row["role"]: row for row in self._all("SELECT * FROM ca")}

    def insert_ca(self, role: str, key_uri: str, key_type: str, certificate: bytes, at: dt.datetime) -> None:
        """Record a CA key and certificate (inside a transaction)."""
        self._execute("INSERT INTO ca (role, key_uri, key_type, certificate, created_at) VALUES (?, ?, ?, ?, ?)",
                           (role, key_uri, key_type, certificate, ts(at)))

    def next_crl_number(self) -> int:
        """Increment and return the issuing CA's CRL number (inside a transaction)."""
        row = self._execute(
            "UPDATE ca SET crl_number = crl_number + 1 WHERE role = 'issuing' RETURNING crl_number").fetchone()
        return row["crl_number"]

    def revoked_agent_certificates(self) -> list[tuple[int, dt.datetime]]:
        """(serial, revocation time) of revoked credentials whose certificate the agent issued.

        A certificate held by two credentials (created, then imported again) is listed once,
        revoked when the first of them was.
        """
        found = self._all("SELECT certificate_serial, MIN(revoked_at) AS revoked_at FROM credential"
                          " WHERE status = 'revoked' AND issued_by_agent = 1 AND certificate_serial IS NOT NULL"
                          " GROUP BY certificate_serial ORDER BY revoked_at")
        return [(int(r["certificate_serial"]), parse_ts(r["revoked_at"])) for r in found]

    def undecided_crl_membership(self) -> list[tuple[str, bytes]]:
        """(credential id, leaf DER) of credentials whose CRL membership is not decided yet."""
        found = self._all("SELECT id, certificate_chain FROM credential WHERE issued_by_agent = 2")
        chains = [(r["id"], rows.decode_chain(r["certificate_chain"])) for r in found]
        return [(credential_id, chain[0]) for credential_id, chain in chains if chain]

    def set_issued_by_agent(self, credential_id: str, issued_by_agent: bool) -> None:
        """Record whether the agent's CA issued the credential's certificate (inside a transaction)."""
        self._execute("UPDATE credential SET issued_by_agent = ? WHERE id = ?",
                           (int(issued_by_agent), credential_id))

