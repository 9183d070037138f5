"""agent/log.py: both formats stamp UTC with the offset; JSON is one object per line, whatever the message holds."""

from __future__ import annotations

import json
import logging
import sys

from mcagent.agent import log


def _record(message: str, *, exc_info=None) -> logging.LogRecord:
    record = logging.LogRecord("mcagent.test", logging.INFO, __file__, 1, "%s", (message,), exc_info)
    record.created = 1_795_852_800.123  # 2026-11-28T08:00:00.123 UTC
    return record


def test_json_records_are_one_line_objects_with_utc_times():
    hostile = "name\nWARNING forged line\r\x1b[31m\u2028end"
    line = log.JsonFormatter().format(_record(hostile))
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x1b" not in line
    document = json.loads(line)
    assert document == {"time": "2026-11-28T08:00:00.123+00:00", "level": "INFO", "logger": "mcagent.test",
                        "message": hostile}


def test_json_records_carry_the_exception_as_a_string():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        line = log.JsonFormatter().format(_record("failed", exc_info=sys.exc_info()))
    document = json.loads(line)
    assert "\n" not in line and isinstance(document["exc_info"], str)
    assert "ValueError: bad\nthing" in document["exc_info"]


def test_text_records_keep_their_escaping_and_stamp_utc():
    formatter = log.OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    line = formatter.format(_record("a\nb"))
    assert line == "2026-11-28T08:00:00.123+00:00 INFO mcagent.test: a\\nb"
