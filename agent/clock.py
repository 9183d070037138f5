"""Time for the agent, injectable so that tests of dated rules need not wait."""

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """Now, in UTC (follows the process clock, so faketime moves it too)."""
    return dt.datetime.now(dt.UTC)
