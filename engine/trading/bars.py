"""OHLCV bars built from trades, and the warm-up history they continue.

A bar covers [start, start + interval) in exchange time (KST, from the trade's own stamp and
the clock's date). It closes on the clock: at its end plus `CLOSE_GRACE` (late prints stamped
inside it still count), so the day's last bar closes that day and a quiet minute does not hold
a bar open; or earlier, when a print of a later bar arrives (the feed is in time order per
symbol: nothing of the old bar can follow it). Live and backtest use this one rule; the
strategy host drives the clock side (`next_close`, `close_due`). A daily bar ends with KRX's
last session (18:00). Intervals are "Nm" (N minutes, dividing an hour or a day: 1, 3, 5, 10,
15, 30, 60) or "1d".
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from engine.clock import KST
from engine.events import Bar, Trade

_INTERVAL = re.compile(r"([0-9]+)([md])")
MINUTE_INTERVALS = (1, 3, 5, 10, 15, 30, 60)
CLOSE_GRACE = timedelta(seconds=1)
"""How long after its end a bar waits for late prints before it closes on the clock."""
DAY_BAR_END = time(18, 0)
"""A daily bar's end: the end of KRX's last session (engine/trading/krx.py)."""
MAX_BARS_KEPT = 10_000
"""Bars kept per symbol and interval (history plus live): a day of 1m bars is under 600."""


def parse_interval(text: str) -> tuple[int, str]:
    """("1m" -> (1, "m"), "1d" -> (1, "d")). Raises ValueError naming what is allowed."""
    m = _INTERVAL.fullmatch(text)  # not match: `$` would let "1m\n" through
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if (unit == "m" and n in MINUTE_INTERVALS) or (unit == "d" and n == 1):
            return n, unit
    allowed = ", ".join(f"{n}m" for n in MINUTE_INTERVALS)
    raise ValueError(f"bar interval must be one of {allowed}, 1d; got {text!r}")


def _hhmmss(value: int) -> time:
    return time(value // 10000 % 24, value // 100 % 100 % 60, value % 100 % 60)


class BarBuilder:
    """Bars of one symbol at one interval. `on_trade` returns the bar a trade closed, if any."""

    def __init__(self, symbol: str, interval: str) -> None:
        self.symbol = symbol
        self.interval = interval
        self._n, self._unit = parse_interval(interval)
        self.history: deque[Bar] = deque(maxlen=MAX_BARS_KEPT)
        self._start: datetime | None = None
        self._open = False
        """A bar is being built (`_start` is kept after a close: older prints are late)."""
        self._o = self._h = self._l = self._c = self._v = 0

    def _bucket(self, day: date, t: time) -> datetime:
        if self._unit == "d":
            return datetime.combine(day, time(0), KST)
        minute = (t.hour * 60 + t.minute) // self._n * self._n
        return datetime.combine(day, time(minute // 60, minute % 60), KST)

    def on_trade(self, trade: Trade, day: date) -> Bar | None:
        start = self._bucket(day, _hhmmss(trade.time))
        price, qty = trade.price, abs(trade.qty)
        closed = None
        if self._open and self._start is not None and start > self._start:
            closed = self._close()
        if self._start is None or start > self._start:
            self._start = start
            self._open = True
            self._o = self._h = self._l = self._c = price
            self._v = qty
        elif start == self._start and self._open:
            self._h = max(self._h, price)
            self._l = min(self._l, price)
            self._c = price
            self._v += qty
        # A trade stamped before the open bar (out of order), or in a bar the clock closed
        # (later than the grace), is ignored for bars.
        return closed

    def end(self, start: datetime) -> datetime:
        """When the bar starting at `start` ends (before the grace)."""
        if self._unit == "d":
            return datetime.combine(start.date(), DAY_BAR_END, KST)
        return start + timedelta(minutes=self._n)

    def next_close(self, now: datetime) -> datetime:
        """The next instant after `now` at which a bar of this interval closes on the clock
        (whether or not one is open)."""
        t = now - CLOSE_GRACE
        close = self.end(self._bucket(t.date(), t.timetz())) + CLOSE_GRACE
        if close <= now:  # a daily bar after its end: tomorrow's
            tomorrow = t.date() + timedelta(days=1)
            close = self.end(self._bucket(tomorrow, time(0))) + CLOSE_GRACE
        return close

    @property
    def closes_at(self) -> datetime | None:
        """When the open bar closes on the clock (its end plus the grace); None: none open."""
        if not self._open or self._start is None:
            return None
        return self.end(self._start) + CLOSE_GRACE

    def close_due(self, now: datetime) -> Bar | None:
        """Close the open bar if its end plus the grace has come by `now`."""
        if self._open and self._start is not None and now >= self.end(self._start) + CLOSE_GRACE:
            return self._close()
        return None

    def _close(self) -> Bar:
        assert self._start is not None
        self._open = False
        bar = Bar(
            self.symbol, self.interval, self._start, self._o, self._h, self._l, self._c, self._v
        )
        self.history.append(bar)
        return bar

    def seed(self, bars: Iterable[Bar], now: datetime) -> int:
        """Load warm-up history (any order; kept oldest first). A bar still open at `now` is
        left out: the live builder makes that one. Returns how many were kept."""
        length = bar_length(self.interval)
        kept = 0
        for bar in sorted(bars, key=lambda b: b.start):
            if bar.start + length > now:
                continue
            kept += 1
            self.history.append(bar)
        return kept

    def bars(self) -> list[Bar]:
        return list(self.history)


def bar_length(interval: str) -> timedelta:
    n, unit = parse_interval(interval)
    return timedelta(days=1) if unit == "d" else timedelta(minutes=n)
