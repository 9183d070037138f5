"""The daemon's log: one line per record, with nothing a caller sends able to forge a line.

Messages quote names, ids and reasons that come from clients. Control characters in them
are escaped (a newline becomes ``\\n``), each message is cut to a bounded length, and the
lines of a traceback are indented, so every line that starts with a timestamp was written
by the agent as one record.

Two formats (`serve --log-format`): `text`, that escaped line, and `json`, one object per line
with `time`, `level`, `logger`, `message` and, for an exception, `exc_info` (JSON escapes
control characters itself). Both stamp records in UTC with the offset written out, ISO 8601
to the millisecond: `2026-11-28T08:00:00.123+00:00`.
"""

from __future__ import annotations

import datetime
import json
import logging

MAX_MESSAGE = 2000
# C0 controls, DEL and C1 controls; the line separators U+2028/U+2029 too.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127, *range(0x80, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape(text: str) -> str:
    """`text` on one line, with control characters escaped and at most MAX_MESSAGE characters."""
    return _cut(text.translate(_ESCAPES))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE]}...[{len(text) - MAX_MESSAGE} more]"


def utc_time(record: logging.LogRecord) -> str:
    """The record's time in UTC, ISO 8601 with milliseconds and the offset: 2026-11-28T08:00:00.123+00:00."""
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


class OneLineFormatter(logging.Formatter):
    """Escapes each message; indents traceback lines under their record; UTC timestamps."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return utc_time(record)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802
        lines = super().formatException(ei).splitlines()
        return "\n".join("    | " + line.translate(_ESCAPES) for line in lines)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return "\n".join("    | " + line for line in stack_info.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; the message is cut like the text format's."""

    def format(self, record: logging.LogRecord) -> str:
        document = {"time": utc_time(record), "level": record.levelname, "logger": record.name,
                    "message": _cut(record.getMessage())}
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(document)  # ASCII only: no control or separator character survives


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr at `level` in `log_format` (`text` or `json`), one line per record."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
