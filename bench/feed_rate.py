"""Benchmark: market events per second through the whole realtime path.

The simulator runs as its own process (`kiwoom-engine sim`, generator set to the target rate)
and one client in this process registers 0B/0C/0D for every symbol and counts decoded events.
Baseline in the same run: the generator alone in this process (entries/s with no network), so
the figures read as "delivered / target" and "target / generator capacity".
Usage: `uv run python -m bench.feed_rate [TARGET_EVENTS_PER_S] [SECONDS]` (default 20000, 5).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import free_port, start_sim
from bench.results import emit
from engine import logs
from engine.clock import SYSTEM_CLOCK
from engine.config import load
from engine.events import Event, OrderBook, Quote, Trade
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.market import MarketGenerator
from engine.sim.universe import Universe

SYMBOLS = [
    "005930", "000660", "035420", "035720", "051910", "005380", "068270", "207940",
    "006400", "000270", "105560", "055550", "012330", "028260", "066570", "003550",
    "017670", "034730", "015760", "032830",
]  # fmt: skip


def generator_rate(seconds: float = 1.0) -> float:
    gen = MarketGenerator(SYMBOLS, 1, SYSTEM_CLOCK, universe=Universe(1, SYMBOLS))
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += len(gen.next_entries(500))
    return n / (time.perf_counter() - t0)


def start_feed_sim(target: float) -> tuple[subprocess.Popen[bytes], Path, int]:
    port = free_port()
    cfg_path = Path(tempfile.mkdtemp()) / "bench.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    cfg_path.write_text(
        f'[kiwoom]\nmode = "sim"\n[kiwoom.rate]\naccount_per_s = 100.0\n'
        f"[sim]\nport = {port}\nevents_per_s = {target}\nsymbols = [{symbols}]\n"
        f'[log]\nlevel = "warning"\n'
    )
    proc = start_sim(cfg_path, port)
    return proc, cfg_path, port


async def measure(cfg_path: Path, seconds: float) -> tuple[float, int, int]:
    cfg = load(cfg_path, env=os.environ)
    counts = {"n": 0}

    def on_event(ev: Event) -> None:
        if isinstance(ev, Trade | Quote | OrderBook):
            counts["n"] += 1

    async with KiwoomRest.from_config(cfg) as rest:
        ws = KiwoomWebSocket(
            cfg.ws_url, rest.tokens.token, rest.tokens.invalidate, on_event=on_event
        )
        await ws.start()
        await ws.subscribe(["0B", "0C", "0D"], SYMBOLS)
        await asyncio.sleep(1.0)  # let the feed settle
        start_n, t0 = counts["n"], time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (counts["n"] - start_n) / (time.perf_counter() - t0)
        bad = ws.stats.bad_frames + ws.stats.bad_entries
        frames = ws.stats.real_frames
        await ws.close()
    return rate, bad, frames


def main() -> None:
    target = float(sys.argv[1]) if len(sys.argv) > 1 else 20_000.0
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    logs.setup("warning", "console")
    gen = generator_rate()
    proc, cfg_path, _port = start_feed_sim(target)
    try:
        rate, bad, frames = asyncio.run(measure(cfg_path, seconds))
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"symbols: {len(SYMBOLS)}, types 0B/0C/0D, target {target:.0f} events/s, {seconds:.0f} s")
    print(f"generator alone (baseline): {gen:10.0f} entries/s")
    print(f"delivered to the client:    {rate:10.0f} events/s decoded ({frames} REAL frames)")
    print(f"delivered / target          = {rate / target:.2f}")
    print(f"target / generator capacity = {target / gen:.2f}")
    print(f"malformed frames or entries: {bad}")
    emit("feed delivered events/s", rate, "events/s", target, "target rate", ">= 1.0x, 0 malformed")


if __name__ == "__main__":
    main()
