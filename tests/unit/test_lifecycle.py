"""The machine credential life cycle: every transition, allowed or refused, and the dated rules."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from mcagent.agent.domain.credential import (
    GRACE_PERIOD,
    CredentialStatus,
    Transition,
    check_usable,
    display_status,
    next_status,
    reminders_due,
    window_end,
)
from mcagent.agent.domain.errors import FailedPrecondition

S = CredentialStatus
T = Transition

# The only allowed changes; every other (status, transition) pair is refused.
ALLOWED = {
    (S.CREATING, T.ACTIVATE): S.ACTIVE,      # key generated and record saved
    (S.ACTIVE, T.UNASSIGN): S.UNASSIGNED,    # RAM: the holder's MCA role is removed
    (S.UNASSIGNED, T.CLAIM): S.ACTIVE,       # RAM: another MCA claims it; "status of Active"
    (S.ACTIVE, T.REVOKE): S.REVOKED,         # RAM: "show a status of revoked"
    (S.UNASSIGNED, T.REVOKE): S.REVOKED,
}
REFUSED = [pair for pair in itertools.product(S, T) if pair not in ALLOWED]
UNASSIGNED_AT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("status", "transition"), list(ALLOWED), ids=lambda v: v.value)
def test_allowed_transition(status, transition):
    assert next_status("c1", status, transition) is ALLOWED[(status, transition)]


@pytest.mark.parametrize(("status", "transition"), REFUSED, ids=lambda v: v.value)
def test_refused_transition_says_why(status, transition):
    with pytest.raises(FailedPrecondition) as caught:
        next_status("c1", status, transition)
    message = str(caught.value)
    assert "credential c1" in message
    if status is S.REVOKED:
        assert "is revoked; it cannot be used or reinstated" in message
    else:
        assert f"is {status.value}; it cannot {transition.value}" in message


def test_revoked_is_final():
    assert all((S.REVOKED, t) not in ALLOWED for t in T)
    for transition in T:
        with pytest.raises(FailedPrecondition, match="cannot be used or reinstated"):
            next_status("c1", S.REVOKED, transition)


def test_refused_pairs_cover_the_rest():
    assert len(ALLOWED) + len(REFUSED) == len(S) * len(T) == 16
    assert (S.ACTIVE, T.CLAIM) in REFUSED and (S.CREATING, T.REVOKE) in REFUSED
    assert (S.UNASSIGNED, T.UNASSIGN) in REFUSED and (S.ACTIVE, T.ACTIVATE) in REFUSED


def test_grace_period_is_sixty_days_from_removal():
    assert GRACE_PERIOD == dt.timedelta(days=60)
    assert window_end(UNASSIGNED_AT) == dt.datetime(2026, 4, 30, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("after", "due"), [
    (dt.timedelta(0), []),
    (dt.timedelta(days=30) - dt.timedelta(microseconds=1), []),
    (dt.timedelta(days=30), [30]),
    (dt.timedelta(days=53) - dt.timedelta(microseconds=1), [30]),
    (dt.timedelta(days=53), [30, 53]),
    (dt.timedelta(days=59), [30, 53]),
])
def test_reminders_fall_due_at_30_and_53_days(after, due):
    assert reminders_due(UNASSIGNED_AT, UNASSIGNED_AT + after) == due


def test_usable_while_active_or_within_the_window():
    check_usable("c1", S.ACTIVE, None, UNASSIGNED_AT)
    check_usable("c1", S.UNASSIGNED, UNASSIGNED_AT, UNASSIGNED_AT)
    check_usable("c1", S.UNASSIGNED, UNASSIGNED_AT, window_end(UNASSIGNED_AT) - dt.timedelta(microseconds=1))


def test_unusable_from_the_end_of_the_window():
    with pytest.raises(FailedPrecondition) as caught:
        check_usable("c1", S.UNASSIGNED, UNASSIGNED_AT, window_end(UNASSIGNED_AT))
    assert str(caught.value) == ("credential c1 was unassigned on 2026-03-01 and not claimed within 60 days; "
                                 "it stopped working on 2026-04-30")


@pytest.mark.parametrize(("status", "message"), [
    (S.REVOKED, "credential c1 is revoked; it cannot be used or reinstated"),
    (S.CREATING, "credential c1 is creating"),
])
def test_unusable_when_revoked_or_still_being_created(status, message):
    with pytest.raises(FailedPrecondition) as caught:
        check_usable("c1", status, None, UNASSIGNED_AT)
    assert str(caught.value) == message


def test_unassigned_shows_as_suspended():
    within = display_status(S.UNASSIGNED, UNASSIGNED_AT, UNASSIGNED_AT + dt.timedelta(days=1))
    assert within == "suspended (unassigned; works until 2026-04-30 unless claimed)"
    after = display_status(S.UNASSIGNED, UNASSIGNED_AT, window_end(UNASSIGNED_AT))
    assert after == "suspended (unclaimed; stopped working 2026-04-30)"


@pytest.mark.parametrize("status", [S.ACTIVE, S.REVOKED])
def test_other_statuses_show_as_they_are(status):
    assert display_status(status, None, UNASSIGNED_AT) == status.value
