"""The machine credential life cycle: one state machine, its dated rules in one place.

    creating --activate--> active --unassign--> unassigned --claim--> active
    active | unassigned --revoke--> revoked            (final: never used or reinstated)

`unassigned` (shown as "Suspended") happens when the holder loses the machine credential
administrator role. The credential keeps working for GRACE_PERIOD from that moment; another
MCA may claim it meanwhile; reminders to claim fall due at REMINDER_DAYS.
"""

from __future__ import annotations

import datetime as dt
import enum

from mcagent.agent.domain.errors import FailedPrecondition

GRACE_PERIOD = dt.timedelta(days=60)
REMINDER_DAYS = (30, 53)


class CredentialStatus(enum.Enum):
    """Stored status of a credential record.

    ``creating`` marks a record whose key is being generated; it is never shown to callers
    and is cleaned up at start-up if the agent stopped halfway (no key without its record).
    """

    CREATING = "creating"
    ACTIVE = "active"
    UNASSIGNED = "unassigned"
    REVOKED = "revoked"


class Transition(enum.Enum):
    """Named changes of status (each one is audited)."""

    ACTIVATE = "activate"
    UNASSIGN = "unassign"
    CLAIM = "claim"
    REVOKE = "revoke"


TRANSITIONS: dict[tuple[CredentialStatus, Transition], CredentialStatus] = {
    (CredentialStatus.CREATING, Transition.ACTIVATE): CredentialStatus.ACTIVE,
    (CredentialStatus.ACTIVE, Transition.UNASSIGN): CredentialStatus.UNASSIGNED,
    (CredentialStatus.UNASSIGNED, Transition.CLAIM): CredentialStatus.ACTIVE,
    (CredentialStatus.ACTIVE, Transition.REVOKE): CredentialStatus.REVOKED,
    (CredentialStatus.UNASSIGNED, Transition.REVOKE): CredentialStatus.REVOKED,
}


def next_status(credential_id: str, status: CredentialStatus, transition: Transition) -> CredentialStatus:
    """The status after `transition`.

    Raises:
        FailedPrecondition: the transition is not allowed from `status`; says why.
    """
    target = TRANSITIONS.get((status, transition))
    if target is None:
        if status is CredentialStatus.REVOKED:
            raise FailedPrecondition(f"credential {credential_id} is revoked; it cannot be used or reinstated")
        raise FailedPrecondition(f"credential {credential_id} is {status.value}; it cannot {transition.value}")
    return target


def window_end(unassigned_at: dt.datetime) -> dt.datetime:
    """When an unassigned credential stops working unless claimed."""
    return unassigned_at + GRACE_PERIOD


def reminders_due(unassigned_at: dt.datetime, now: dt.datetime) -> list[int]:
    """Which reminder days (30, 53) have been reached by `now`."""
    return [day for day in REMINDER_DAYS if now >= unassigned_at + dt.timedelta(days=day)]


def display_status(status: CredentialStatus, unassigned_at: dt.datetime | None, now: dt.datetime) -> str:
    """The status as RAM shows it: an unassigned credential reads "Suspended"."""
    if status is CredentialStatus.UNASSIGNED and unassigned_at is not None:
        end = window_end(unassigned_at)
        if now >= end:
            return f"suspended (unclaimed; stopped working {end.date().isoformat()})"
        return f"suspended (unassigned; works until {end.date().isoformat()} unless claimed)"
    return status.value


def check_usable(credential_id: str, status: CredentialStatus, unassigned_at: dt.datetime | None,
                 now: dt.datetime) -> None:
    """Refuse to sign with a credential that is revoked or past its unassigned window.

    Raises:
        FailedPrecondition: naming the date it stopped.
    """
    if status is CredentialStatus.REVOKED:
        raise FailedPrecondition(f"credential {credential_id} is revoked; it cannot be used or reinstated")
    if status is CredentialStatus.UNASSIGNED and unassigned_at is not None and now >= window_end(unassigned_at):
        raise FailedPrecondition(
            f"credential {credential_id} was unassigned on {unassigned_at.date().isoformat()} and not claimed "
            f"within {GRACE_PERIOD.days} days; it stopped working on {window_end(unassigned_at).date().isoformat()}"
        )
    if status is not CredentialStatus.ACTIVE and status is not CredentialStatus.UNASSIGNED:
        raise FailedPrecondition(f"credential {credential_id} is {status.value}")
