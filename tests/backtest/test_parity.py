"""Parity: a seeded simulator run of the daemon with `daemon.record` on and a strategy whose
decisions do not depend on fills, then `backtest --recording` of that file with the same
config: the same orders in the same order (symbol, side, quantity, price, order type). The
live strategy starts after the feed (the recording holds trades it never saw), so its orders
are a contiguous run of the backtest's."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine import config, daemon
from engine.plugins import load_all
from tests.integration.test_daemon import Ready, sim_config
from tests.support import until

pytestmark = pytest.mark.timeout(180)
HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _config(tmp: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[risk]
max_orders_per_s = 1000
max_orders_per_min = 100000
max_open_orders = 10000
duplicate_window_s = 0

[backtest]
latency_ms = 5

[[strategies]]
name = "parity"
path = "{HERE / "strategies.py"}"
class = "Parity"
symbols = ["005930", "000660"]
""",
        encoding="utf-8",
    )
    return path


async def test_a_recorded_run_and_its_backtest_place_the_same_orders(tmp_path: Path) -> None:
    path = _config(tmp_path)
    file_cfg = config.load(path, env={})
    rec = tmp_path / "feed.ndjson"
    # Only the two symbols the strategy trades, at a rate that gives 30 orders in a second or
    # two (its decisions never depend on fills, so the rate changes nothing it compares).
    base = sim_config(tmp_path / "state", events_per_s=1_000.0, symbols=("005930", "000660"))
    cfg = dataclasses.replace(
        base,
        risk=file_cfg.risk,
        strategies=file_cfg.strategies,
        daemon=dataclasses.replace(base.daemon, record=str(rec)),
        source=str(path),
    )
    strategies, problems = load_all(cfg)
    assert problems == []
    stop = asyncio.Event()
    ready = Ready()
    task = asyncio.create_task(daemon.run(cfg, stop=stop, on_ready=ready, strategies=strategies))
    try:
        trader = await ready.wait()
        await until(lambda: len(trader.oms.orders) >= 30, within_s=60.0)
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 20) == daemon.EXIT_OK
    live = [
        (o.symbol, o.side.value, str(o.qty), str(o.price or ""))
        for o in sorted(trader.oms.orders.values(), key=lambda o: o.created_ns)
        if not o.external
    ]
    day = trader.clock.now().date()
    out = tmp_path / "out"
    r = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine", "-c", str(path), "--log-level", "warning", "backtest",
         "--from", f"{day - timedelta(days=1)}", "--to", f"{day + timedelta(days=1)}",
         "--recording", str(rec), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with (out / "orders.csv").open() as f:
        bt = [(o["symbol"], o["side"], o["qty"], o["price"]) for o in csv.DictReader(f)]
    assert len(live) >= 30
    starts = [i for i in range(len(bt) - len(live) + 1) if bt[i : i + len(live)] == live]
    assert starts, f"live orders not a run of the backtest's:\nlive {live[:5]}\nbt {bt[:5]}"
