"""How refusals of callers nobody knows are audited without letting them flood the log.

A caller with no valid credentials can send requests as fast as the network allows; each
refusal written as its own durable entry would let it fill the disk and load the database.
Within each window, the first few refusals per action are written in full; the rest are
counted, and one summary entry per action records how many there were (and from whom) when
the window closes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass, field

WINDOW = dt.timedelta(seconds=60)
FULL_ENTRIES_PER_WINDOW = 20
MAX_SOURCES_NAMED = 20


@dataclass
class _Window:
    started: dt.datetime
    written: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)


class RefusalThrottle:
    """Decides which refusals of unauthenticated callers get an entry of their own."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, action: str, source: str, now: dt.datetime) -> tuple[bool, list[tuple[str, dict]]]:
        """Whether this refusal gets its own entry, and the summaries of windows that closed.

        Returns:
            (write it, [(action, summary detail), ...]) — write the summaries too.
        """
        with self._lock:
            closed = self._close(now)
            window = self._windows.setdefault(action, _Window(now))
            if window.written < FULL_ENTRIES_PER_WINDOW:
                window.written += 1
                return True, closed
            window.suppressed[source] += 1
            return False, closed

    def flush(self, now: dt.datetime, force: bool = False) -> list[tuple[str, dict]]:
        """Summaries of the windows that have closed (all of them with `force`)."""
        with self._lock:
            return self._close(now, force)

    def _close(self, now: dt.datetime, force: bool = False) -> list[tuple[str, dict]]:
        summaries = []
        for action, window in list(self._windows.items()):
            if force or now - window.started >= WINDOW:
                del self._windows[action]
                if window.suppressed:
                    summaries.append((action, {
                        "refusals_not_written": sum(window.suppressed.values()),
                        "window_start": window.started.isoformat(),
                        "window_end": now.isoformat(),
                        "by": dict(window.suppressed.most_common(MAX_SOURCES_NAMED)),
                        "by_others": sum(n for _, n in window.suppressed.most_common()[MAX_SOURCES_NAMED:]),
                    }))
        return summaries
