"""Time for the whole engine: nothing else reads the wall clock.

`Clock` is the seam that lets the simulator, replays and tests run the same code on their own
notion of time. Monotonic time drives timeouts and rate limits; wall time in KST drives token
expiry and market sessions.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

KST = timezone(timedelta(hours=9), "KST")


class Clock:
    """The live clock. Subclass to simulate time."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current time, timezone-aware, in KST."""
        return datetime.now(KST)

    def wall(self) -> float:
        """Seconds since the epoch (for receive timestamps in recordings)."""
        return time.time()


class ManualClock(Clock):
    """A clock that moves only when told to; for tests and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 5, 9, 0, tzinfo=KST)
        self._elapsed = 0.0

    def advance(self, seconds: float) -> None:
        self._elapsed += seconds

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def wall(self) -> float:
        return self.now().timestamp()


class OffsetClock(Clock):
    """The live clock shifted by a fixed amount; lets a test jump to a token's expiry."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def now(self) -> datetime:
        return datetime.now(KST) + timedelta(seconds=self.offset_s)

    def wall(self) -> float:
        return time.time() + self.offset_s


SYSTEM_CLOCK = Clock()
