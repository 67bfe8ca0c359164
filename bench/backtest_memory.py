"""Backtest memory: resident memory (RSS) over 10 million events streamed from the Parquet
store through the whole engine, with the tick bench's strategy (an order kept resting, every
trade read; bench/backtest_ticks.py writes the same seeded random walk, 50,000 ticks a day,
so 10M events are 200 trading days and every day roll). The strategy samples RSS after a
`gc.collect()` every 250,000 events; growth is the largest sample after the first, which is
taken after a warm-up of 1M events (allocator arenas, caches and the first files' buffers).
Baseline in the same run: the same files read into event objects alone (`iter_events`),
sampled the same way: its growth is the noise floor.
Goal: growth <= 50 MB. Run: `uv run python -m bench.backtest_memory [EVENTS]`.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.backtest_ticks import SYMBOL, write
from bench.results import emit
from engine import logs
from engine.backtest.run import run_backtest
from engine.config import load
from engine.data.reader import iter_events
from engine.plugins import load_all

EVERY = 250_000
WARM_UP = 1_000_000


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def growth(samples: list[tuple[int, float]]) -> tuple[float, float, float]:
    """(growth after the warm-up, the first sample after it, the largest) in MB."""
    after = [mb for n, mb in samples if n >= WARM_UP]
    return max(after) - after[0], after[0], max(after)


def main(n: int) -> None:
    logs.setup("warning", "console")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        start, end = write(tmp / "data", n)
        print(f"{n:,} ticks written over {start}..{end} in {time.perf_counter() - t0:.0f} s")

        base: list[tuple[int, float]] = []
        for i, _ev in enumerate(iter_events(tmp / "data", [SYMBOL], ["ticks"], start, end), 1):
            if i % EVERY == 0:
                base.append((i, rss_mb()))
        b_growth, b_first, b_peak = growth(base)
        print(f"iter_events alone: {b_first:.1f} MB after 1M, peak {b_peak:.1f}, +{b_growth:.1f}")

        samples_path = tmp / "rss.txt"
        cfg_path = tmp / "config.toml"
        cfg_path.write_text(
            f"""
[backtest]
kinds = ["ticks"]
[[strategies]]
name = "resting"
path = "{Path(__file__).with_name("backtest_strategies.py")}"
class = "RssProbe"
symbols = ["{SYMBOL}"]
params = {{ every = {EVERY}, out = "{samples_path}" }}
"""
        )
        cfg = load(cfg_path, env={})
        strategies, problems = load_all(cfg)
        assert not problems, problems
        t0 = time.perf_counter()
        res = run_backtest(cfg, strategies, tmp / "data", start, end)
        took = time.perf_counter() - t0
        samples = [
            (int(a), float(b))
            for a, b in (line.split() for line in samples_path.read_text().splitlines())
        ]
    g, first, peak = growth(samples)
    print(
        f"backtest: {res.events:,} events in {took:.0f} s ({res.events / took:,.0f}/s), "
        f"{len(res.orders)} orders; RSS {first:.1f} MB after 1M events, peak {peak:.1f} MB, "
        f"growth +{g:.1f} MB over {res.events - WARM_UP:,} events"
    )
    print("samples (events, MB): " + ", ".join(f"{k // 1000}k {mb:.0f}" for k, mb in samples))
    emit("backtest_rss_growth_mb", g, "MB", b_growth, "iter_events alone", "<= 50 MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
