"""Work the agent does by itself: reminders to claim unassigned credentials, clean-up after faults."""

from __future__ import annotations

import datetime as dt
import logging
from typing import BinaryIO

from mcagent.agent.domain import credential as lifecycle
from mcagent.agent.domain.audit import AuditEntry
from mcagent.agent.domain.calls import (
    SYSTEM_ACTOR,
    Caller,
)
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import FailedPrecondition
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Reminder
from mcagent.agent.domain.policy import MCA, PA

log = logging.getLogger(__name__)
#: A creation still "creating" this long after it began was interrupted (no creation takes so long).
INTERRUPTED_AFTER = dt.timedelta(minutes=10)


class Upkeep(ServiceBase):
    """Reminders and the clean-up of interrupted work (start-up, then each minute)."""

    def record_due_reminders(self) -> int:
        """Record the 30- and 53-day reminders to claim unassigned credentials that are due.

        Recipients are the business's MCAs, else its PA. Returns how many were recorded.
        """
        now = self._clock()
        recorded = 0
        for credential in self._records.list_credentials(status=CredentialStatus.UNASSIGNED):
            if credential.unassigned_at is None or now >= lifecycle.window_end(credential.unassigned_at):
                continue
            already = {r.day for r in self._records.reminders(credential.id)}
            for day in lifecycle.reminders_due(credential.unassigned_at, now):
                if day in already:
                    continue
                grants = self._records.role_grants(abn=credential.abn)
                recipients = sorted({g.principal_name for g in grants if g.role is MCA}) or sorted(
                    {g.principal_name for g in grants if g.role is PA})
                with self._records.transaction():
                    if self._records.insert_reminder(Reminder(credential.id, day, now, tuple(recipients))):
                        self._audit(SYSTEM_ACTOR, "credential.reminder", abn=credential.abn, target=credential.id,
                                    detail={"day": day, "recipients": recipients})
                        recorded += 1
        return recorded


    # -- start-up -----------------------------------------------------------------------------

    def finish_interrupted_work(self, started_before: dt.timedelta = INTERRUPTED_AFTER) -> None:
        """Remove credentials whose creation was interrupted (and their keys), and destroy
        the keys of revoked credentials whose destruction did not complete.

        Args:
            started_before: only creations older than this are taken as interrupted, at
                start-up too: another instance on the same database may be creating one now.
        """
        for credential in self._records.list_credentials(status=CredentialStatus.CREATING):
            if self._clock() - credential.created_at < started_before:
                continue
            with self._records.transaction():
                self._records.lock("interrupted-work")  # one instance removes it, the others find it gone
                current = self._records.get_credential(credential.id)
                if current is None or current.status is not CredentialStatus.CREATING:
                    continue
                removed = self._custody.delete_key(credential.key_uri)
                self._records.delete_credential(credential.id)
            log.warning("removed credential %s whose creation was interrupted (%d key objects destroyed)",
                        credential.id, removed)
        for credential in self._records.list_credentials(status=CredentialStatus.REVOKED, key_destroyed=False):
            self._destroy_revoked_key(credential)

    def backup(self, caller: Caller) -> tuple[AuditEntry, BinaryIO]:
        """A consistent copy of every record, made while the agent keeps serving (local
        administrator only).

        The ``backup`` audit entry is written first, so the copy holds the record of its own
        making. Key custody is not copied: token keys never leave the token, and key store
        files are the operator's to copy beside the database (after it, so that every key a
        copied record names is in them).

        Returns:
            The audit entry, and the copy as an open file (a whole SQLite database) for the
            caller to stream and close.

        Raises:
            FailedPrecondition: the records are in PostgreSQL (backed up with pg_dump).
            PermissionDenied: the caller is not the local administrator.
            Unavailable: the entry could not be written or the copy made.
        """
        with self._audited(caller, "backup"):
            self._require_admin(caller, "back up the agent's records")
            if self._records.engine != "sqlite":
                raise FailedPrecondition("the agent's records are in PostgreSQL: back them up with PostgreSQL's "
                                         "own tools (pg_dump, or base backups and WAL archiving), not `mcagent backup`")
        with self._records.transaction(changes_state=False):
            entry = self._audit(caller, "backup", detail={"what": "database"})
        return entry, self._records.snapshot()
