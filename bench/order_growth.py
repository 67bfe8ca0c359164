"""Benchmark: resident memory per order, over tens of thousands of orders (issue 14, item 24).

The engine is the daemon's own start-up path (`engine.daemon.assemble`, as bench/memory.py
runs it: Trader, journal in a temporary state directory, OMS, risk, reconciliation every
`--reconcile-s`), against a simulator in its own process (its order book is not counted here).
One strategy churns orders, one at a time so that the run measures orders and not a backlog:
market buys and sells of one share in turn, and every fifth order a limit buy far below the
market that rests and is cancelled on the next trade. Market events come from bench/memory.py's
source, one REAL frame (50 entries) per turn, and a frame only while no order is in flight.

RSS (from /proc/self/statm, after gc.collect()) is sampled every `--every` orders; the slope is
the least-squares fit of RSS against orders over the samples after `--warmup` orders, in MB per
1,000 orders. Goal: <= 0.1 MB per 1,000 orders. The end also reports the sizes of the per-order
maps that the slope comes from (OMS, journal, reconciliation).

`--trace` runs it again under tracemalloc (`--trace-only`: that run alone; about 3x slower, and
its own bookkeeping makes RSS meaningless there) and prints the source lines whose live
allocations grew most between the end of the warm-up and the end, with the engine still
running, and tracemalloc's peak in between: where the growth comes from, by file and line.

Run: `uv run python -m bench.order_growth [--orders 20000] [--trace | --trace-only]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.memory import SYMBOLS, frames, rss_mb
from bench.processes import free_port, start_sim
from bench.results import emit
from engine import daemon, logs
from engine.clock import SYSTEM_CLOCK
from engine.config import Config, load
from engine.events import OrderState, Trade
from engine.kiwoom.codec import decode_frame
from engine.plugins import LoadedStrategy
from engine.strategy import Strategy
from engine.trading.krx import tick_size

GOAL_MB_PER_1000 = 0.1
SEED = 20261124
RESTING_EVERY = 5


class Churn(Strategy):
    """One order at a time: market buy / sell of a share in turn; every RESTING_EVERY-th order
    a limit buy ten ticks under the trade, cancelled on the next trade."""

    def on_start(self) -> None:
        self.sent = 0
        self.cancels = 0

    def on_trade(self, trade: Trade) -> None:
        open_orders = self.orders()
        if open_orders:
            for o in open_orders:
                # Only the resting limit buy: a market order ACCEPTED before its fill notice
                # is about to fill (a cancel would be refused, 2006).
                if o.state is OrderState.ACCEPTED and o.price is not None:
                    self.cancel(o)
                    self.cancels += 1
            return
        self.sent += 1
        if self.sent % RESTING_EVERY == 0:
            price = trade.price - 10 * tick_size(trade.price)
            self.buy(trade.symbol, 1, price)
        elif self.position(trade.symbol) > 0:
            self.sell(trade.symbol, 1)
        else:
            self.buy(trade.symbol, 1)


def _start_sim(tmp: Path) -> tuple[Any, int]:
    port = free_port()
    cfg = tmp / "sim.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\n'
        f"[sim]\nport = {port}\nseed = {SEED}\nevents_per_s = 0\nsymbols = [{symbols}]\n"
        f"rest_rate_per_s = 10000.0\nrest_burst = 10000\ncash = 10000000000000\n"
        f'[log]\nlevel = "warning"\n'
    )
    return start_sim(cfg, port), port


def _client_config(tmp: Path, port: int, reconcile_s: float) -> Config:
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    path = tmp / "engine.toml"
    path.write_text(
        f'[kiwoom]\nmode = "sim"\nrest_url = "http://127.0.0.1:{port}"\n'
        f'ws_url = "ws://127.0.0.1:{port}/api/dostk/websocket"\nrevoke_on_exit = false\n'
        "[kiwoom.rate]\naccount_per_s = 1000.0\naccount_burst = 1000\n"
        "per_api_per_s = 1000.0\nper_api_burst = 1000\n"
        "order_per_api_per_s = 1000.0\norder_per_api_burst = 1000\n"
        f'[daemon]\nsymbols = [{symbols}]\nstate_dir = "{tmp / "state"}"\n'
        "[risk]\nmax_orders_per_s = 1000\nmax_orders_per_min = 60000\nmax_open_orders = 100\n"
        "duplicate_window_s = 0.0\nfat_finger_bp = 10000\ndaily_loss_limit = 1000000000\n"
        f"[portfolio]\nreconcile_s = {reconcile_s}\n"
        f'[[strategies]]\nname = "churn"\nentry_point = "bench.order_growth:Churn"\n'
        f"symbols = [{symbols}]\nbudget_ms = 1000.0\n"
    )
    return load(path, env=os.environ)


def slope_per_1000(samples: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS (MB) against orders, per 1,000 orders."""
    n = len(samples)
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    sxx = sum((x - mx) ** 2 for x, _ in samples)
    sxy = sum((x - mx) * (y - my) for x, y in samples)
    return sxy / sxx * 1000 if sxx else 0.0


def _sizes(trader: Any) -> dict[str, int]:
    """The per-order maps the slope may come from (private names read on purpose)."""
    oms, journal = trader.oms, trader.journal
    sizes = {
        "oms.orders": len(oms.orders),
        "oms.by_order_no": len(oms.by_order_no),
        "oms open": len(getattr(oms, "_open", ())),
        "journal._recorded": len(getattr(journal, "_recorded", ())),
        "journal._linked": len(getattr(journal, "_linked", ())),
    }
    return sizes


async def _run(
    cfg: Config,
    n_orders: int,
    every: int,
    on_sample: Callable[[int], None],
    at_warmup: Callable[[], None],
    warmup: int,
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        module = sys.modules[__name__]
        loaded = [
            LoadedStrategy(sc, getattr(module, sc.entry_point.split(":")[1]), f"strategies[{i}]")
            for i, sc in enumerate(cfg.strategies)
            if sc.entry_point
        ]
        running = await daemon.assemble(cfg, stack, SYSTEM_CLOCK, loaded)
        ws, trader = running.ws, running.trader
        churn = trader.host.by_name["churn"].instance
        assert isinstance(churn, Churn)
        source = frames()
        next_sample = every
        warmed = False
        t0 = time.monotonic()
        while churn.sent < n_orders:
            if any(o.state is not OrderState.ACCEPTED for o in churn.orders()):
                # An order in flight: let its answer and notices in. A resting order (ACCEPTED)
                # waits for the next trade, which cancels it.
                await asyncio.sleep(0)
                if time.monotonic() - t0 > 3600:
                    raise RuntimeError("an order never ended")
                continue
            res = decode_frame(next(source), ws.stats, SYSTEM_CLOCK.time_ns(), trader.bus.next_seq)
            for ev in res.events:
                trader.on_event(ev)
            await asyncio.sleep(0)
            if not warmed and churn.sent >= warmup:
                warmed = True
                at_warmup()
            if churn.sent >= next_sample:
                on_sample(churn.sent)
                next_sample += every
        await asyncio.sleep(0.5)
        info: dict[str, Any] = {
            "orders sent": churn.sent,
            "cancel calls": churn.cancels,
            "orders by state": trader.oms.counts_by_state(),
            "journal rows written": trader.journal.rows_written,
            "strategy errors": sum(s.errors for s in trader.host.slots),
            **_sizes(trader),
            "seconds": round(time.monotonic() - t0, 1),
        }
        await trader.stop(cancel_open=False)
    return info


def measure(
    tmp: Path, n_orders: int, every: int, warmup: int, reconcile_s: float
) -> tuple[list[tuple[int, float]], dict[str, Any]]:
    proc, port = _start_sim(tmp)
    samples: list[tuple[int, float]] = []

    def sample(n: int) -> None:
        gc.collect()
        samples.append((n, rss_mb()))

    try:
        cfg = _client_config(tmp, port, reconcile_s)
        info = asyncio.run(_run(cfg, warmup + n_orders, every, sample, lambda: None, warmup))
    finally:
        proc.terminate()
        proc.wait(10)
    return samples, info


def trace(tmp: Path, n_orders: int, warmup: int, reconcile_s: float, top: int) -> list[str]:
    """The lines whose live allocations grew most from the end of the warm-up to the end (the
    engine still running), and tracemalloc's peak: a transient (a whole-day query) shows in
    the peak, not in the live growth."""
    proc, port = _start_sim(tmp)
    snaps: list[tracemalloc.Snapshot] = []
    traced: list[tuple[int, int]] = []

    def snap() -> None:
        gc.collect()
        snaps.append(tracemalloc.take_snapshot())
        traced.append(tracemalloc.get_traced_memory())
        tracemalloc.reset_peak()

    tracemalloc.start(1)
    try:
        cfg = _client_config(tmp, port, reconcile_s)
        total = warmup + n_orders
        asyncio.run(_run(cfg, total, total, lambda n: snap(), snap, warmup))
    finally:
        tracemalloc.stop()
        proc.terminate()
        proc.wait(10)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<*")]
    first, last = (s.filter_traces(keep) for s in snaps)
    (cur0, _), (cur1, peak1) = traced
    lines = [
        f"tracemalloc: live {cur0 / 2**20:.1f} MB after {warmup:,} orders, "
        f"{cur1 / 2**20:.1f} MB after {total:,}; peak in between {peak1 / 2**20:.1f} MB",
        f"top {top} lines by live growth over {n_orders:,} orders after {warmup:,} of warm-up:",
    ]
    for stat in last.compare_to(first, "lineno")[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1]
        where = os.path.relpath(where) if where.startswith("/") else where
        lines.append(
            f"  {stat.size_diff / 2**20:+8.2f} MB {stat.count_diff:+9,} blocks  "
            f"{where}:{frame.lineno}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20_000, help="orders measured after warm-up")
    # Past the OMS's and the journal's windows of 4,096 ended orders: until they are full, the
    # growth is the window filling, which is the bound, not a leak.
    ap.add_argument("--warmup", type=int, default=6_000)
    ap.add_argument("--every", type=int, default=1_000, help="sample RSS every N orders")
    ap.add_argument("--reconcile-s", type=float, default=30.0)
    ap.add_argument("--trace", action="store_true", help="also a tracemalloc run: where it grows")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--trace-only", action="store_true", help="the tracemalloc run alone")
    args = ap.parse_args()
    logs.setup("warning", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    if args.trace_only:
        with tempfile.TemporaryDirectory() as tmp:
            for line in trace(Path(tmp), args.orders, args.warmup, args.reconcile_s, args.top):
                print(line)
        return
    with tempfile.TemporaryDirectory() as tmp:
        samples, info = measure(Path(tmp), args.orders, args.every, args.warmup, args.reconcile_s)
    after = [s for s in samples if s[0] >= args.warmup]
    slope = slope_per_1000(after)
    print(
        f"{args.orders:,} orders after a warm-up of {args.warmup:,}; RSS after gc.collect() "
        f"every {args.every:,} orders (reconcile every {args.reconcile_s:g} s)"
    )
    base = after[0][1]
    for n, mb in samples:
        print(f"  {n:>8,} orders  {mb:7.1f} MB  {mb - base:+6.1f} MB")
    for k, v in info.items():
        print(f"  {k}: {v}")
    print(f"slope after warm-up: {slope:+.3f} MB per 1,000 orders (goal <= {GOAL_MB_PER_1000})")
    emit(
        f"RSS slope over {args.orders:,} orders",
        slope,
        "MB per 1000 orders",
        None,
        "",
        f"<= {GOAL_MB_PER_1000} MB per 1000 orders",
    )
    if args.trace:
        with tempfile.TemporaryDirectory() as tmp:
            for line in trace(Path(tmp), args.orders, args.warmup, args.reconcile_s, args.top):
                print(line)


if __name__ == "__main__":
    main()
