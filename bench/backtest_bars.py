"""Backtest on bars: an SMA crossover (bench/backtest_strategies.py) over the same 1-minute
bars in our backtest (`engine.backtest`, the store read by `iter_events`, the whole engine:
bus, host, OMS, risk, portfolio, journal) and in backtrader (the peer, `bench` group): the
same trades (count and prices shown), and our bars/s against backtrader's. Goal >= 3x.

The bars are a seeded random walk written straight into a scratch store with engine/data's
writer (and a CSV for backtrader). Fees 0 on both sides; market orders fill at the next
bar's open on both. Each side's time is its best of ROUNDS rounds, run alternately.
Usage: ``uv run --group bench python -m bench.backtest_bars [BARS]`` (default 200,000).
"""

from __future__ import annotations

import csv
import logging
import random
import sys
import tempfile
import time
from collections import deque
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.backtest_strategies import LAST_BAR, SLOW, signal
from bench.results import emit
from engine import logs
from engine.backtest.run import run_backtest
from engine.clock import KST
from engine.config import load
from engine.data.layout import partition_of
from engine.data.store import Store
from engine.models import Candle
from engine.plugins import load_all
from engine.trading.krx import round_to_tick

SYMBOL = "005930"
PER_DAY = 380
ROUNDS = 2


def bars(n: int) -> list[Candle]:
    rng = random.Random(16)
    out: list[Candle] = []
    d = date(2020, 1, 2)
    price = 50_000
    while len(out) < n:
        if d.weekday() < 5:
            t = datetime.combine(d, datetime.min.time(), KST) + timedelta(hours=9)
            for _ in range(min(PER_DAY, n - len(out))):
                path = [price]
                for _ in range(4):
                    step = path[-1] + rng.randint(-2, 2) * 50
                    path.append(round_to_tick(min(max(step, 40_000), 60_000)))
                out.append(
                    Candle(t, path[0], max(path), min(path), path[-1], rng.randint(400, 900))
                )
                price = path[-1]
                t += timedelta(minutes=1)
        d += timedelta(days=1)
    return out


def store(root: Path, rows: list[Candle]) -> None:
    s = Store(root)
    parts: dict[str, list[Candle]] = {}
    keys = {}
    for c in rows:
        p = partition_of("1m", c.at.date())
        keys[p.key] = p
        parts.setdefault(p.key, []).append(c)
    for key, rs in parts.items():
        span = (rs[0].at.date(), rs[-1].at.date())
        s.write("1m", SYMBOL, keys[key], span, rs, whole_until=span[1])


def ours(tmp: Path, rows: list[Candle]) -> tuple[float, list[tuple[str, int]]]:
    cfg_path = tmp / "config.toml"
    cfg_path.write_text(
        f"""
[backtest]
kinds = ["bars_1m"]
latency_ms = 0
[portfolio]
commission_bp = 0.0
sell_tax_bp = 0.0
[[strategies]]
name = "sma"
path = "{Path(__file__).with_name("backtest_strategies.py")}"
class = "SmaCross"
symbols = ["{SYMBOL}"]
bars = ["1m"]
"""
    )
    cfg = load(cfg_path, env={})
    strategies, problems = load_all(cfg)
    assert not problems, problems
    import pyarrow.parquet  # noqa: F401  (imports are not the run's: warm them as the peer's)

    import engine.host  # noqa: F401

    t0 = time.perf_counter()
    res = run_backtest(cfg, strategies, tmp / "data", rows[0].at.date(), rows[-1].at.date())
    wall = time.perf_counter() - t0
    return wall, [(f.side.value, f.price) for f in res.fills]


def peer(tmp: Path, rows: list[Candle]) -> tuple[float, list[tuple[str, int]]] | None:
    try:
        import backtrader as bt
    except ImportError:
        return None

    path = tmp / "bars.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        for c in rows:
            w.writerow(
                [c.at.strftime("%Y-%m-%d %H:%M:%S"), c.open, c.high, c.low, c.close, c.volume]
            )
    fills: list[tuple[str, int]] = []

    class Sma(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.closes: deque[int] = deque(maxlen=SLOW)
            self.f = self.s = 0.0
            self.pending = None

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                side = "buy" if order.isbuy() else "sell"
                fills.append((side, int(order.executed.price)))
            if order.status in (order.Completed, order.Canceled, order.Rejected, order.Margin):
                self.pending = None

        def next(self) -> None:
            self.closes.append(int(self.data.close[0]))
            if len(self.closes) < SLOW:
                return
            cross, self.f, self.s = signal(self.closes, self.f, self.s)
            t = self.data.datetime.datetime(0)
            if (t.hour, t.minute) == LAST_BAR or self.pending is not None:
                return
            held = self.position.size
            if cross > 0 and not held:
                self.pending = self.buy(size=1)
            elif cross < 0 and held:
                self.pending = self.sell(size=held)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000_000)
    data = bt.feeds.GenericCSVData(
        dataname=str(path), dtformat="%Y-%m-%d %H:%M:%S", timeframe=bt.TimeFrame.Minutes,
        datetime=0, open=1, high=2, low=3, close=4, volume=5, openinterest=-1, headers=False,
    )  # fmt: skip
    cerebro.adddata(data)
    cerebro.addstrategy(Sma)
    t0 = time.perf_counter()
    cerebro.run()
    return time.perf_counter() - t0, fills


def main(n: int) -> None:
    logs.setup("warning", "console")
    logging.disable(logging.WARNING)
    rows = bars(n)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store(tmp / "data", rows)
        # Rounds alternate ours and the peer, and each side keeps its best time: the
        # machine's speed drifts over a minute, and one slow stretch on one side alone
        # moved the ratio by 10 %.
        ours_s, our_fills = ours(tmp, rows)
        got = peer(tmp, rows)
        for _ in range(ROUNDS - 1):
            again, fills = ours(tmp, rows)
            assert fills == our_fills, "the same run gave other fills"
            ours_s = min(ours_s, again)
            if got is not None:
                more = peer(tmp, rows)
                assert more is not None
                got = (min(got[0], more[0]), got[1])
    print(f"{n} bars, {len(rows) // PER_DAY} days, best of {ROUNDS} alternating rounds")
    print(f"ours:       {ours_s:.2f} s, {n / ours_s:,.0f} bars/s, {len(our_fills)} fills")
    if got is None:
        print("backtrader is not installed (the peer; `uv pip install backtrader`)")
        emit("backtest_bars_per_s", n / ours_s, "bars/s", None, "backtrader (absent)", ">= 3x")
        return
    peer_s, peer_fills = got
    same = our_fills == peer_fills
    print(f"backtrader: {peer_s:.2f} s, {n / peer_s:,.0f} bars/s, {len(peer_fills)} fills")
    print(f"first fills ours {our_fills[:4]}, backtrader {peer_fills[:4]}")
    print(f"same fills (side and price, in order): {same}")
    if not same:
        pairs = zip(our_fills, peer_fills, strict=False)
        i = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        i = min(len(our_fills), len(peer_fills)) if i is None else i
        print(
            f"first difference at fill {i}: ours {our_fills[i : i + 2]}, peer {peer_fills[i : i + 2]}"
        )
    emit("backtest_bars_per_s", n / ours_s, "bars/s", n / peer_s, "backtrader", ">= 3x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
