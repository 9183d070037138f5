"""Notification field rules: software IDs (exactly ten ASCII digits) and the start/end dates."""

from __future__ import annotations

import datetime as dt

import pytest
from mcagent.agent.domain.errors import InvalidArgument
from mcagent.agent.domain.notification import check_dates, check_software_ids

TODAY = dt.date(2026, 3, 2)


@pytest.mark.parametrize("software_id", ["1234567890", "0000000000", "0987654321"])
def test_ten_digits_are_a_software_id(software_id):
    assert check_software_ids([software_id]) == (software_id,)


@pytest.mark.parametrize("software_id", [
    "123456789",             # 9 digits
    "12345678901",           # 11 digits
    "12345abcde",            # not digits
    "12345 6789",
    "+123456789",
    "1234567890\n",          # `re.match` with `$` accepted this
    "\n1234567890",
    " 1234567890",
    "1234567890 ",
    "١٢٣٤٥٦٧٨٩٠",            # Arabic-Indic digits: `\d` would accept them
    "１２３４５６７８９０",  # fullwidth digits
    "",
])
def test_anything_else_is_refused_naming_it(software_id):
    with pytest.raises(InvalidArgument) as caught:
        check_software_ids([software_id])
    assert f"software ID {software_id!r} must be exactly 10 digits" in str(caught.value)


def test_one_bad_id_among_good_ones_is_refused():
    with pytest.raises(InvalidArgument, match="'1234567890\\\\n' must be exactly 10 digits"):
        check_software_ids(["0987654321", "1234567890\n"])


def test_at_least_one_and_no_repeats():
    with pytest.raises(InvalidArgument, match="at least one software ID"):
        check_software_ids([])
    with pytest.raises(InvalidArgument, match="software ID 1234567890 is given more than once"):
        check_software_ids(["1234567890", "0987654321", "1234567890"])


def test_start_today_or_later_end_on_or_after_start():
    check_dates(TODAY, None, TODAY)
    check_dates(TODAY, TODAY, TODAY)  # end == start: a one-day notification
    check_dates(TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=400), TODAY)


def test_start_in_the_past_is_refused():
    with pytest.raises(InvalidArgument) as caught:
        check_dates(TODAY - dt.timedelta(days=1), None, TODAY)
    assert str(caught.value) == ("start date 2026-03-01 is in the past; it cannot be back-dated "
                                 "(today is 2026-03-02)")


def test_unchanged_past_start_is_kept_on_edit():
    check_dates(TODAY - dt.timedelta(days=10), TODAY, TODAY, start_changed=False)


def test_end_before_start_is_refused():
    with pytest.raises(InvalidArgument) as caught:
        check_dates(TODAY + dt.timedelta(days=1), TODAY, TODAY)
    assert str(caught.value) == "end date 2026-03-02 is before the start date 2026-03-03"


def test_ten_non_ascii_digits_are_refused_saying_which_digits():
    with pytest.raises(InvalidArgument) as caught:
        check_software_ids(["١٢٣٤٥٦٧٨٩٠"])
    assert "must be exactly 10 digits, 0-9 (it has 10 characters)" in str(caught.value)
