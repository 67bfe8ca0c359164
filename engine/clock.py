"""Time for the whole engine: nothing else reads the wall clock.

`Clock` is the seam that lets the simulator, replays and tests run the same code on their own
notion of time. Monotonic time drives timeouts and rate limits; wall time in KST drives token
expiry and market sessions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

KST = timezone(timedelta(hours=9), "KST")


def parse_day(text: str) -> date:
    """A "YYYY-MM-DD" date; raises ValueError for anything else. (Here, not in the trading
    calendar, so the configuration can check dates without importing engine.trading.)"""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"expected YYYY-MM-DD, got {text!r}")
    return date.fromisoformat(text)


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

    def time_ns(self) -> int:
        """Nanoseconds since the epoch: the engine's event stamps (`ts_recv`)."""
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time. Engine timers wait here, never on asyncio
        directly, so a simulated clock drives them."""
        await asyncio.sleep(seconds)


class ManualClock(Clock):
    """A clock that moves only when told to; for tests and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 5, 9, 0, tzinfo=KST)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def advance(self, seconds: float) -> None:
        """Move time on, waking every `sleep` whose deadline has come."""
        self._elapsed += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self._elapsed]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._elapsed]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    @property
    def sleeping(self) -> int:
        """Sleeps waiting for time to move on: a test waits for one before it advances, so it
        knows the code under test is waiting on this clock (and not on asyncio's)."""
        return sum(1 for _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._elapsed + seconds, fut))
        await fut

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def wall(self) -> float:
        return self.now().timestamp()

    def time_ns(self) -> int:
        return int(self.wall() * 1_000_000_000)


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

    def time_ns(self) -> int:
        return time.time_ns() + int(self.offset_s * 1_000_000_000)


stopwatch_ns: Callable[[], int] = time.perf_counter_ns
"""A high-resolution counter for measuring how long code ran (strategy time budgets,
latency figures). Real elapsed time whatever the clock: CPU spent is never simulated. The
builtin itself, not a wrapper: it is read around every strategy callback, and a Python-level
call would double its cost."""


SYSTEM_CLOCK = Clock()
