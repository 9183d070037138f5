"""The daemon's log: one line per record, with nothing a caller sends able to forge a line.

Messages quote names, ids and reasons that come from clients. Control characters in them
are escaped (a newline becomes ``\\n``), each message is cut to a bounded length, and the
lines of a traceback are indented, so every line that starts with a timestamp was written
by the agent as one record.
"""

from __future__ import annotations

import logging

MAX_MESSAGE = 2000
# C0 controls, DEL and C1 controls; the line separators U+2028/U+2029 too.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127, *range(0x80, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape(text: str) -> str:
    """`text` on one line, with control characters escaped and at most MAX_MESSAGE characters."""
    text = text.translate(_ESCAPES)
    return text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE]}...[{len(text) - MAX_MESSAGE} more]"


class OneLineFormatter(logging.Formatter):
    """Escapes each message; indents traceback lines under their record."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802
        lines = super().formatException(ei).splitlines()
        return "\n".join("    | " + line.translate(_ESCAPES) for line in lines)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return "\n".join("    | " + line for line in stack_info.splitlines())


def configure(level: str) -> None:
    """Log to stderr at `level`, one escaped line per record."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
