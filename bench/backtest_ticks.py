"""Backtest on ticks: trades from the Parquet store through the whole engine with one
strategy that keeps an order resting (every print meets it), against the floor of reading the
same files into event objects alone (`iter_events`). Goals: >= 0.3 of the floor and >= 150k
events/s on this machine.

The ticks are a seeded random walk written straight into a scratch store (the simulator
serves only a few intraday days). Usage: ``uv run python -m bench.backtest_ticks [TICKS]``
(default 1,000,000). Quotes are not generated: the tick dataset has none.
"""

from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bench.results import emit
from engine import logs
from engine.backtest.run import run_backtest
from engine.clock import KST
from engine.config import load
from engine.data.layout import partition_of
from engine.data.reader import iter_events
from engine.data.store import Store
from engine.models import Candle
from engine.plugins import load_all
from engine.trading.krx import round_to_tick

SYMBOL = "005930"
PER_DAY = 50_000


def write(root: Path, n: int) -> tuple[date, date]:
    rng = random.Random(16)
    store = Store(root)
    d = date(2026, 1, 5)
    first = d
    price = 50_000
    left = n
    while left > 0:
        if d.weekday() < 5:
            k = min(PER_DAY, left)
            t0 = datetime.combine(d, datetime.min.time(), KST) + timedelta(hours=9)
            rows = []
            for i in range(k):
                price = round_to_tick(min(max(price + rng.randint(-1, 1) * 50, 40_000), 60_000))
                at = t0 + timedelta(microseconds=i * 450_000)  # 50k in 6h15m
                rows.append(Candle(at, price, price, price, price, rng.randint(1, 300)))
            part = partition_of("tick", d)
            store.write("tick", SYMBOL, part, (d, d), rows, whole_until=d)
            left -= k
            last = d
        d += timedelta(days=1)
    return first, last


def main(n: int) -> None:
    logs.setup("warning", "console")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        start, end = write(tmp / "data", n)
        t0 = time.perf_counter()
        read = sum(1 for _ in iter_events(tmp / "data", [SYMBOL], ["ticks"], start, end))
        floor_s = time.perf_counter() - t0
        cfg_path = tmp / "config.toml"
        cfg_path.write_text(
            f"""
[backtest]
kinds = ["ticks"]
[[strategies]]
name = "resting"
path = "{Path(__file__).with_name("backtest_strategies.py")}"
class = "Resting"
symbols = ["{SYMBOL}"]
"""
        )
        cfg = load(cfg_path, env={})
        strategies, problems = load_all(cfg)
        assert not problems, problems
        import engine.host  # noqa: F401  (imports are not the run's)

        t0 = time.perf_counter()
        res = run_backtest(cfg, strategies, tmp / "data", start, end)
        ours_s = time.perf_counter() - t0
    print(f"{n} ticks over {start}..{end}; read alone: {read / floor_s:,.0f} events/s")
    print(
        f"backtest: {res.events / ours_s:,.0f} events/s ({ours_s:.2f} s), {len(res.orders)} orders"
    )
    emit("backtest_ticks_per_s", res.events / ours_s, "events/s", read / floor_s,
         "iter_events alone", ">= 0.3x and >= 150k/s")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
