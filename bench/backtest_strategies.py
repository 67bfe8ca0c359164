"""The SMA crossover both backtests run (bench/backtest_bars.py): one share, long only; a
signal on a day's last bar is skipped, since KRX ends the day's orders at its close."""

from __future__ import annotations

from collections import deque
from typing import Any

from engine.events import Bar
from engine.strategy import Strategy
from engine.trading.krx import round_to_tick

FAST, SLOW = 10, 30
LAST_BAR = (15, 19)
"""The start (hour, minute) of the last of a day's 380 one-minute bars from 09:00."""


def signal(closes: deque[int], fast_prev: float, slow_prev: float) -> tuple[int, float, float]:
    """(+1 cross up, -1 cross down, 0), and the new averages."""
    f = sum(list(closes)[-FAST:]) / FAST
    s = sum(closes) / SLOW
    cross = 0
    if fast_prev and slow_prev:
        if fast_prev <= slow_prev and f > s:
            cross = 1
        elif fast_prev >= slow_prev and f < s:
            cross = -1
    return cross, f, s


class SmaCross(Strategy):
    def on_start(self) -> None:
        self.closes: deque[int] = deque(maxlen=SLOW)
        self.f = self.s = 0.0

    def on_bar(self, bar: Bar) -> None:
        self.closes.append(bar.close)
        if len(self.closes) < SLOW:
            return
        cross, self.f, self.s = signal(self.closes, self.f, self.s)
        if (bar.start.hour, bar.start.minute) == LAST_BAR or self.orders():
            return
        held = self.position(bar.symbol)
        if cross > 0 and not held:
            self.buy(bar.symbol, 1)
        elif cross < 0 and held:
            self.sell(bar.symbol, held)


class Resting(Strategy):
    """Keeps one limit buy resting far below the market (every print meets it), and reads
    every trade."""

    def on_start(self) -> None:
        self.seen = 0

    def on_trade(self, trade: Any) -> None:
        self.seen += 1
        if not self.orders():
            self.buy(trade.symbol, 1, round_to_tick(trade.price * 97 // 100, "up"))


class RssProbe(Resting):
    """`Resting`, sampling the process's resident memory (after a collection) every
    `params["every"]` trades; it writes (trades seen, MB) lines to `params["out"]` at stop."""

    def on_start(self) -> None:
        super().on_start()
        self.samples: list[tuple[int, float]] = []

    def on_trade(self, trade: Any) -> None:
        super().on_trade(trade)
        if self.seen % self.params["every"] == 0:
            import gc
            import os

            gc.collect()
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
            self.samples.append((self.seen, pages * os.sysconf("SC_PAGE_SIZE") / 2**20))

    def on_stop(self) -> None:
        with open(self.params["out"], "w") as f:
            f.writelines(f"{n} {mb:.2f}\n" for n, mb in self.samples)
