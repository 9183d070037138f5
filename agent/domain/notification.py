"""Cloud software notifications ("My cloud software services"): their rules in one place.

A notification tells government agencies which cloud SBR software a business uses. It
grants no authority of its own; one rule reads it: a provider's credential may act for the
business (ActAs in an STS request) only while an active notification names that provider
(agent.domain.sts.Sts.check_act_as).

    (add, by the business)   -> active
    (request, by a DSP)      -> pending --accept--> active
    active | pending --remove--> removed      (kept in the history)

An active notification whose end date has passed is shown as ``ended``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from dataclasses import dataclass
from importlib import resources

from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument

# fullmatch and [0-9]: `$` would let a trailing newline through, `\d` would let other scripts' digits in.
SOFTWARE_ID = re.compile(r"[0-9]{10}")
# "Today" for start dates is the businesses' day: Australian Eastern time unless configured.
DEFAULT_TIMEZONE = "Australia/Sydney"


def _load_agencies() -> dict[str, str]:
    text = resources.files("mcagent.agent.domain").joinpath("data/agencies.json").read_text(encoding="utf-8")
    return {a["id"]: a["name"] for a in json.loads(text)["agencies"]}


AGENCIES: dict[str, str] = _load_agencies()


class NotificationStatus(enum.Enum):
    """Stored status of a notification (``ended`` is derived from the end date)."""

    PENDING = "pending"
    ACTIVE = "active"
    REMOVED = "removed"


ENDED = "ended"
LISTABLE_STATUSES = ("pending", "active", "removed", ENDED)


@dataclass(frozen=True)
class Notification:
    """A notification of cloud software use.

    Attributes:
        abn: the business that uses the software.
        dsp_abn: the digital service provider whose software it is.
        end_date: None means "no end date".
        requested_by: the DSP principal who requested it, or None when the business added it.
    """

    id: str
    abn: str
    dsp_abn: str
    software_ids: tuple[str, ...]
    start_date: dt.date
    end_date: dt.date | None
    agencies: tuple[str, ...]
    status: NotificationStatus
    created_at: dt.datetime
    created_by: str
    requested_by: str | None = None
    declaration_by: str | None = None
    declaration_at: dt.datetime | None = None
    removed_at: dt.datetime | None = None
    removed_by: str | None = None


def shown_status(notification: Notification, today: dt.date) -> str:
    """The status as listed: an active notification past its end date is ``ended``."""
    if (notification.status is NotificationStatus.ACTIVE and notification.end_date is not None
            and notification.end_date < today):
        return ENDED
    return notification.status.value


def in_force(notification: Notification, today: dt.date) -> bool:
    """Active, started and not ended on `today`: a notification that backs ActAs."""
    return shown_status(notification, today) == NotificationStatus.ACTIVE.value and notification.start_date <= today


def check_software_ids(ids: list[str]) -> tuple[str, ...]:
    """At least one software ID, each exactly 10 digits, no repeats.

    Raises:
        InvalidArgument: naming the offending ID.
    """
    if not ids:
        raise InvalidArgument("give at least one software ID (--software-id, 10 digits)")
    for software_id in ids:
        if not SOFTWARE_ID.fullmatch(software_id):
            raise InvalidArgument(
                f"software ID {software_id!r} must be exactly 10 digits, 0-9 (it has {len(software_id)} characters)"
            )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidArgument(f"software ID {', '.join(repeated)} is given more than once")
    return tuple(ids)


def parse_date(text: str, what: str) -> dt.date:
    """A YYYY-MM-DD date.

    Raises:
        InvalidArgument: not such a date.
    """
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{what} {text!r} is not a date in the form YYYY-MM-DD") from None


def check_dates(start: dt.date, end: dt.date | None, today: dt.date, *, start_changed: bool = True) -> None:
    """The start may not be back-dated (when set now); the end may not be before the start.

    Raises:
        InvalidArgument: saying which date is wrong and why.
    """
    if start_changed and start < today:
        raise InvalidArgument(f"start date {start.isoformat()} is in the past; it cannot be back-dated "
                              f"(today is {today.isoformat()})")
    if end is not None and end < start:
        raise InvalidArgument(f"end date {end.isoformat()} is before the start date {start.isoformat()}")


def check_agencies(ids: list[str]) -> tuple[str, ...]:
    """Agencies from the agency list, at least one.

    Raises:
        InvalidArgument: unknown agency (the message lists the known ones).
    """
    if not ids:
        raise InvalidArgument("choose at least one agency to notify (--agency)")
    known = ", ".join(f"{key} ({name})" for key, name in AGENCIES.items())
    for agency in ids:
        if agency not in AGENCIES:
            raise InvalidArgument(f"unknown agency {agency!r}; agencies that can be notified: {known}")
    return tuple(sorted(set(ids)))


def check_declaration(accepted: bool) -> None:
    """The declaration must be accepted.

    Raises:
        FailedPrecondition: it was not.
    """
    if not accepted:
        raise FailedPrecondition(
            "the declaration must be accepted (--accept-declaration): the details are correct, and the "
            "notification does not authorise the provider to act for the business"
        )
