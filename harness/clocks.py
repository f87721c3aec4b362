"""A wall clock a test moves by hand, for code that takes a `clock` (never a sleep in a test)."""

from __future__ import annotations

import datetime as dt


class ManualClock:
    """`clock()` returns `now`; `advance()` moves it. Starts at the current second (UTC)."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
