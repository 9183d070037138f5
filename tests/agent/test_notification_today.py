""""Today" for a notification's start date is the day in Australia/Sydney, on an injected clock.

RAM: "start date – this can't be back dated"; DESIGN: start date "not in the past", end date
"if given, not before the start". The agent decides "today" where the businesses are
(Australia/Sydney unless configured). In March Sydney keeps daylight time (UTC+11), so its
day begins at 13:00 UTC: from then until midnight UTC the two calendars disagree.
"""

from __future__ import annotations

import datetime as dt

import pytest
from mcagent.agent.domain.errors import InvalidArgument
from mcagent.agent.domain.policy import Role

from tests.agent.clocked import make_agent

CLIENT = "51824753556"
DSP = "53004085616"
SOFTWARE_ID = "1234567890"
SYDNEY_MIDNIGHT = dt.datetime(2026, 3, 1, 13, 0, tzinfo=dt.UTC)  # 2026-03-02T00:00+11:00
AFTERNOON_UTC = dt.datetime(2026, 3, 1, 14, 30, tzinfo=dt.UTC)  # 2026-03-02T01:30 in Sydney


def _agent(tmp_path, now, **options):
    agent = make_agent(tmp_path, now, **options)
    alice = agent.business(CLIENT, "Acme Pty Ltd", "alice")
    agent.grant(alice, CLIENT, "aaron", Role.AUTHORISATION_ADMINISTRATOR)
    agent.business(DSP, "Cloud Payroll Pty Ltd", "dora")
    return agent


@pytest.fixture
def agent(tmp_path):
    agent = _agent(tmp_path, AFTERNOON_UTC)
    yield agent
    agent.close()


def _add(agent, start, end=None, by="alice"):
    return agent.service.add_notification(agent.callers[by], abn=CLIENT, dsp_abn=DSP, software_ids=[SOFTWARE_ID],
                                          start=start, end=end, agencies=["osir"], declaration=True)


def _request(agent, start, end=None):
    return agent.service.request_notification(agent.callers["dora"], dsp_abn=DSP, abn=CLIENT,
                                              software_ids=[SOFTWARE_ID], start=start, end=end, agencies=["osir"])


def test_sydney_today_is_accepted_while_utc_still_says_yesterday(agent):
    assert agent.clock().date() == dt.date(2026, 3, 1)
    assert agent.service.today() == dt.date(2026, 3, 2)
    view = _add(agent, "2026-03-02")
    assert view.status == "active" and view.notification.start_date == dt.date(2026, 3, 2)
    assert _request(agent, "2026-03-02").status == "pending"


def test_utc_today_is_refused_once_sydney_is_a_day_ahead(agent):
    for attempt in (lambda: _add(agent, "2026-03-01"), lambda: _request(agent, "2026-03-01")):
        with pytest.raises(InvalidArgument) as caught:
            attempt()
        assert str(caught.value) == ("start date 2026-03-01 is in the past; it cannot be back-dated "
                                     "(today is 2026-03-02)")
    assert agent.service.list_notifications(agent.callers["alice"], CLIENT, None) == []


@pytest.mark.parametrize(("now", "today"), [
    (SYDNEY_MIDNIGHT - dt.timedelta(seconds=1), dt.date(2026, 3, 1)),  # 23:59:59 in Sydney
    (SYDNEY_MIDNIGHT, dt.date(2026, 3, 2)),                              # 00:00:00 in Sydney
])
def test_the_day_turns_at_sydney_midnight(tmp_path, now, today):
    agent = _agent(tmp_path, now)
    try:
        assert agent.service.today() == today
        assert now.date() == dt.date(2026, 3, 1)  # UTC is on the 1st either side
        yesterday = (today - dt.timedelta(days=1)).isoformat()
        with pytest.raises(InvalidArgument, match=f"start date {yesterday} is in the past"):
            _add(agent, yesterday)
        assert _add(agent, today.isoformat()).notification.start_date == today
    finally:
        agent.close()


def test_the_business_timezone_is_configurable(tmp_path):
    agent = _agent(tmp_path, AFTERNOON_UTC, timezone="UTC")
    try:
        assert agent.service.today() == dt.date(2026, 3, 1)
        assert _add(agent, "2026-03-01").notification.start_date == dt.date(2026, 3, 1)
    finally:
        agent.close()


def test_unknown_timezone_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="unknown time zone 'Mars/Olympus'; use an IANA name"):
        make_agent(tmp_path, AFTERNOON_UTC, timezone="Mars/Olympus")


def test_end_on_the_start_date_is_accepted(agent):
    view = _add(agent, "2026-03-02", "2026-03-02")
    assert view.notification.end_date == view.notification.start_date == dt.date(2026, 3, 2)


def test_end_before_the_start_is_refused(agent):
    with pytest.raises(InvalidArgument) as caught:
        _add(agent, "2026-03-05", "2026-03-04")
    assert str(caught.value) == "end date 2026-03-04 is before the start date 2026-03-05"


def test_no_end_date_by_default(agent):
    assert _add(agent, "2026-03-02").notification.end_date is None


def test_accepting_a_request_whose_start_has_passed_is_refused(agent):
    pending = _request(agent, "2026-03-02").notification
    agent.clock.advance(days=1)  # now 2026-03-03 in Sydney
    with pytest.raises(InvalidArgument, match="start date 2026-03-02 is in the past"):
        agent.service.accept_notification(agent.callers["aaron"], pending.id, declaration=True)


def test_a_notification_ends_after_its_end_date_in_sydney(agent):
    view = _add(agent, "2026-03-02", "2026-03-02")
    agent.clock.now = dt.datetime(2026, 3, 2, 12, 59, 59, tzinfo=dt.UTC)  # 23:59:59 on the 2nd in Sydney
    assert agent.service.get_notification(agent.callers["alice"], view.notification.id).status == "active"
    agent.clock.now = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)  # the 3rd in Sydney, still the 2nd in UTC
    assert agent.service.get_notification(agent.callers["alice"], view.notification.id).status == "ended"


def test_an_unchanged_start_may_lie_in_the_past_when_editing(agent):
    view = _add(agent, "2026-03-02")
    agent.clock.advance(days=10)
    edited = agent.service.edit_notification(agent.callers["aaron"], view.notification.id,
                                             software_ids=["0987654321"], start=None, end=None, no_end=False,
                                             declaration=True)
    assert edited.notification.start_date == dt.date(2026, 3, 2)
    with pytest.raises(InvalidArgument, match="start date 2026-03-02 is in the past"):
        agent.service.edit_notification(agent.callers["aaron"], view.notification.id, software_ids=None,
                                        start="2026-03-02", end=None, no_end=False, declaration=True)
