"""The records' queries (businesses, principals and roles, credentials and their reminders),
written once for both engines (see engine.py: ``?`` placeholders, ``ON CONFLICT``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import Aborted
from mcagent.agent.domain.model import Business, Credential, Principal, Reminder, RoleGrant
from mcagent.agent.domain.policy import Role
from mcagent.agent.storage import rows
from mcagent.agent.storage.queries import Queries
from mcagent.agent.storage.rows import ts

_CREDENTIAL_SELECT = (
    "SELECT c.*, p.name AS holder_name FROM credential c LEFT JOIN principal p ON p.id = c.holder_id"
)
_CREDENTIAL_INSERTED = ("id", "abn", "name", "status", "key_type", "backend", "key_uri", "created_at", "created_by",
                        "terms_version", "holder_id", "permissions")


class RecordQueries(Queries):
    """Businesses, principals, roles and credentials of `SqlRecords` (a mixin: it runs its
    statements through the engine's `_execute`, `_one` and `_all`)."""

    # -- businesses ---------------------------------------------------------------------

    def insert_business(self, business: Business) -> bool:
        """Insert a business; False when the ABN is already registered."""
        cursor = self._execute(
            "INSERT INTO business (abn, name, registered_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (business.abn, business.name, ts(business.registered_at)),
        )
        return cursor.rowcount == 1

    def get_business(self, abn: str) -> Business | None:
        """The business with this ABN, or None."""
        row = self._one("SELECT * FROM business WHERE abn = ?", (abn,))
        return None if row is None else rows.business(row)

    def list_businesses(self) -> list[Business]:
        """Every business, by ABN."""
        return [rows.business(r) for r in self._all("SELECT * FROM business ORDER BY abn")]

    # -- principals and roles -------------------------------------------------------------

    def insert_principal(self, principal: Principal, token_hash: str, created_by: str) -> None:
        """Insert a principal with the hash of its bearer token."""
        self._execute(
            "INSERT INTO principal (id, name, uid, certificate_subject, token_hash, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (principal.id, principal.name, principal.uid, principal.certificate_subject, token_hash,
             ts(principal.created_at), created_by),
        )

    def principal_where(self, column: str, value: Any) -> Principal | None:
        """The principal whose `column` (name, uid, certificate_subject, token_hash, id) is `value`."""
        if column not in ("id", "name", "uid", "certificate_subject", "token_hash"):
            raise ValueError(column)
        row = self._one(f"SELECT * FROM principal WHERE {column} = ?", (value,))
        return None if row is None else rows.principal(row)

    def list_principals(self) -> list[Principal]:
        """Every principal, by name."""
        return [rows.principal(r) for r in self._all("SELECT * FROM principal ORDER BY name")]

    def grant_role(self, abn: str, principal_id: str, role: Role, at: dt.datetime, by: str) -> bool:
        """Grant a role; False if it was held already."""
        cursor = self._execute(
            "INSERT INTO role_grant (abn, principal_id, role, granted_at, granted_by) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (abn, principal_id, role.value, ts(at), by),
        )
        return cursor.rowcount == 1

    def remove_role(self, abn: str, principal_id: str, role: Role) -> bool:
        """Remove a role; False if it was not held."""
        cursor = self._execute(
            "DELETE FROM role_grant WHERE abn = ? AND principal_id = ? AND role = ?", (abn, principal_id, role.value)
        )
        return cursor.rowcount == 1

    def roles_of(self, abn: str, principal_id: str) -> set[Role]:
        """The roles `principal_id` holds in `abn`."""
        found = self._all("SELECT role FROM role_grant WHERE abn = ? AND principal_id = ?", (abn, principal_id))
        return {Role(r["role"]) for r in found}

    def role_grants(self, abn: str | None = None, principal_id: str | None = None) -> list[RoleGrant]:
        """Role grants of a business and/or a principal."""
        query = ("SELECT g.*, p.name AS principal_name FROM role_grant g JOIN principal p ON p.id = g.principal_id"
                 " WHERE 1=1")
        params: list[Any] = []
        if abn is not None:
            query += " AND g.abn = ?"
            params.append(abn)
        if principal_id is not None:
            query += " AND g.principal_id = ?"
            params.append(principal_id)
        return [rows.role_grant(r) for r in self._all(query + " ORDER BY g.abn, g.role, p.name", params)]

    # -- credentials --------------------------------------------------------------------

    def insert_credential(self, credential: Credential) -> None:
        """Insert a credential record and the terms acceptance it was created under."""
        values = rows.credential_columns(credential, _CREDENTIAL_INSERTED)
        self._execute(f"INSERT INTO credential ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                           tuple(values.values()))
        self._execute(
            "INSERT INTO terms_acceptance (accepted_by, version, accepted_at, credential_id) VALUES (?, ?, ?, ?)",
            (credential.created_by, credential.terms_version, ts(credential.created_at), credential.id),
        )

    def update_credential(self, credential_id: str, expected_status: CredentialStatus, **fields: Any) -> None:
        """Change fields of a credential that is still in `expected_status`.

        Raises:
            Aborted: the credential is not (or no longer) in that status: a concurrent change
                got there first; the caller's transaction should be rolled back and retried.
        """
        encoded = {name: rows.credential_column(name, value) for name, value in fields.items()}
        assignments = ", ".join(f"{name} = ?" for name in encoded)
        cursor = self._execute(
            f"UPDATE credential SET {assignments} WHERE id = ? AND status = ?",
            (*encoded.values(), credential_id, expected_status.value),
        )
        if cursor.rowcount != 1:
            raise Aborted(f"credential {credential_id} changed while being updated (it is no longer "
                          f"{expected_status.value}); nothing was changed, look at it again and retry")

    def delete_credential(self, credential_id: str) -> None:
        """Remove a credential record (only used to undo a create that failed)."""
        self._execute("DELETE FROM terms_acceptance WHERE credential_id = ?", (credential_id,))
        self._execute("DELETE FROM credential WHERE id = ?", (credential_id,))

    def get_credential(self, credential_id: str) -> Credential | None:
        """The credential with this id, or None."""
        row = self._one(_CREDENTIAL_SELECT + " WHERE c.id = ?", (credential_id,))
        return None if row is None else rows.credential(row)

    def list_credentials(
        self,
        abn: str | None = None,
        status: CredentialStatus | None = None,
        holder_id: str | None = None,
        abns: list[str] | None = None,
        name: str | None = None,
        key_destroyed: bool | None = None,
        page: tuple[tuple[str, str] | None, int] | None = None,
    ) -> list[Credential]:
        """Credentials, oldest first, filtered by whichever arguments are given.

        Args:
            page: (after, limit): only credentials after (created_at, id) `after`, at most `limit`.
        """
        query, params = _CREDENTIAL_SELECT + " WHERE 1=1", []
        for column, value in (("c.abn", abn), ("c.status", status.value if status else None),
                              ("c.holder_id", holder_id), ("c.name", name),
                              ("c.key_destroyed", None if key_destroyed is None else int(key_destroyed))):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        if abns is not None:
            query += f" AND c.abn IN ({', '.join('?' * len(abns))})"
            params.extend(abns)
        query += " AND c.status != 'creating'" if page is not None else ""
        suffix = ""
        if page is not None:
            after, limit = page
            if after is not None:
                query += " AND (c.created_at, c.id) > (?, ?)"
                params.extend(after)
            suffix = f" LIMIT {int(limit)}"
        return [rows.credential(row) for row in self._all(query + " ORDER BY c.created_at, c.id" + suffix, params)]

    def insert_reminder(self, reminder: Reminder) -> bool:
        """Record a reminder once; False if that day's reminder was already recorded."""
        cursor = self._execute(
            "INSERT INTO reminder (credential_id, day, recorded_at, recipients) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            rows.reminder_values(reminder),
        )
        return cursor.rowcount == 1

    def reminders(self, credential_id: str) -> list[Reminder]:
        """Reminders recorded for a credential, by day."""
        return [rows.reminder(r)
                for r in self._all("SELECT * FROM reminder WHERE credential_id = ? ORDER BY day", (credential_id,))]

    def delete_reminders(self, credential_id: str) -> None:
        """Forget reminders (a claimed credential starts afresh if unassigned again)."""
        self._execute("DELETE FROM reminder WHERE credential_id = ?", (credential_id,))

    # -- credentials' revocation ---------------------------------------------------------

    def revoked_among(self, credential_ids: set[str]) -> set[str]:
        """Which of these credentials are revoked (read in the caller's transaction, if any)."""
        if not credential_ids:
            return set()
        ids = sorted(credential_ids)
        found = self._all(f"SELECT id FROM credential WHERE status = 'revoked' AND id IN ({', '.join('?' * len(ids))})",
                          ids)
        return {row["id"] for row in found}
