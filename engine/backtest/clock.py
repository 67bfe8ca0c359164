"""The backtest's clock: time is the data's, and moves only when the run loop moves it.

Time is held as int nanoseconds since the epoch, so two runs compute the same instants bit for
bit. `Clock.sleep` waiters are kept in a heap by (deadline, arrival): the run loop wakes them
one deadline at a time, in time order, and a waiter woken at t sees `now()` == t.
"""

from __future__ import annotations

import asyncio
import heapq
from datetime import datetime

from engine.clock import KST, Clock

NS = 1_000_000_000


class BacktestClock(Clock):
    """See the module docstring. `set(ns)` moves time on (never back); `due(until_ns)` tells
    the next sleeper deadline below `until_ns`; `wake_next()` moves to it and wakes it."""

    def __init__(self, start_ns: int) -> None:
        self.ns = start_ns
        self._origin = start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = 0
        self._now_ns = -1
        self._now = datetime.fromtimestamp(0, KST)

    # --- reading -------------------------------------------------------------------------

    def monotonic(self) -> float:
        return (self.ns - self._origin) / NS

    def now(self) -> datetime:
        ns = self.ns
        if ns != self._now_ns:  # time stands still between data points: asked many times
            self._now_ns = ns
            self._now = datetime.fromtimestamp(ns // NS, KST).replace(microsecond=ns % NS // 1000)
        return self._now

    def wall(self) -> float:
        return self.ns / NS

    def time_ns(self) -> int:
        return self.ns

    # --- waiting -------------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        heapq.heappush(self._sleepers, (self.ns + round(seconds * NS), self._arrivals, fut))
        await fut

    # --- driving (the run loop) ----------------------------------------------------------

    def set(self, ns: int) -> None:
        """Move time to `ns` without waking anyone (the run loop wakes sleepers in order)."""
        if ns > self.ns:
            self.ns = ns

    def next_due(self) -> int | None:
        """The earliest deadline of a sleeper still waiting, or None."""
        heap = self._sleepers
        while heap and heap[0][2].done():  # cancelled sleeps (a timer cancelled, a race won)
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def wake_due(self, deadline: int) -> int:
        """Move time to `deadline` and wake every sleeper due at it; returns how many."""
        self.set(deadline)
        woken = 0
        heap = self._sleepers
        while heap and heap[0][0] <= deadline:
            _, _, fut = heapq.heappop(heap)
            if not fut.done():
                fut.set_result(None)
                woken += 1
        return woken

    @property
    def sleeping(self) -> int:
        return sum(1 for *_, f in self._sleepers if not f.done())
