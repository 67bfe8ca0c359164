"""Benchmark: resident memory over 5 million events through the engine.

The engine is the daemon's own start-up path (`engine.daemon.assemble`: Trader, journal in a
temporary state directory, feed report, the feed on a simulator in its own process, so that its
books are not counted here). Market events are made in this process by the simulator's market
generator (200 frames made once and replayed, on a clock that runs a second of exchange time
every 1,000 events, so bars close), packed into REAL frames of 50 entries as the simulator
sends them, decoded by the feed's codec
and handed to the engine's feed callback, with one turn of the loop per frame (the journal
writer, the order tasks and the 00/04 feed run then). On them:

- four strategies: two no-op listeners (trades; quotes and books), one with 1m bars, and one
  that orders a share at market every `--order-every` trades, buying when flat and selling when
  long, through the OMS, risk, journal and the simulator over real sockets;
- the journal (ConsumerQueue + Journal.run) and a second ConsumerQueue nobody drains (a stuck
  MQTT mirror: its overflow policies alone must bound it).

RSS (from /proc/self/statm, after gc.collect()) is sampled every `--every` events; growth is
measured from the first sample, taken after a warm-up of the same size.
Baseline in the same run: the event source alone (generate, pack, decode; no engine) over the
same number of events, whose own growth is the noise floor.
Goal: engine growth <= 20 MB. Run: `uv run python -m bench.memory [--events N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench.processes import free_port, start_sim
from bench.results import emit
from engine import daemon, logs
from engine.bus import ConsumerQueue
from engine.clock import KST, SYSTEM_CLOCK, ManualClock
from engine.config import Config, load
from engine.events import Bar, Event, OrderBook, Quote, Trade
from engine.kiwoom.codec import CodecStats, decode_frame
from engine.plugins import LoadedStrategy
from engine.sim.market import MarketGenerator
from engine.sim.universe import Universe
from engine.strategy import Strategy

GOAL_MB = 20.0
SYMBOLS = ("005930", "000660", "035420", "035720", "051910")
SEED = 20261124
FRAME_ENTRIES = 50
EVENTS_PER_MARKET_SECOND = 1_000
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


# --- strategies ----------------------------------------------------------------------------------


class Listens(Strategy):
    def on_trade(self, trade: Trade) -> None:
        pass


class Watches(Strategy):
    def on_start(self) -> None:
        self.spread = 0

    def on_quote(self, quote: Quote) -> None:
        self.spread = quote.best_ask - quote.best_bid

    def on_book(self, book: OrderBook) -> None:
        self.spread = book.asks[0][0] - book.bids[0][0]


class Bars(Strategy):
    def on_start(self) -> None:
        self.closed = 0

    def on_bar(self, bar: Bar) -> None:
        self.closed += 1


class Orders(Strategy):
    """A share at market every `every` trades: a buy when flat, a sell when long."""

    def on_start(self) -> None:
        self.every = int(self.params["every"])
        self.trades = 0
        self.sent = 0

    def on_trade(self, trade: Trade) -> None:
        self.trades += 1
        if self.trades % self.every or self.orders():
            return
        self.sent += 1
        if self.position(trade.symbol) > 0:
            self.sell(trade.symbol, 1)
        else:
            self.buy(trade.symbol, 1)


STRATEGIES: tuple[tuple[str, type[Strategy], str], ...] = (
    ("listens", Listens, ""),
    ("watches", Watches, ""),
    ("bars", Bars, 'bars = ["1m"]\n'),
    ("orders", Orders, ""),
)


# --- the event source ----------------------------------------------------------------------------


TIME_FID = {"0B": "20", "0D": "21"}
"""Where a trade and a book carry their exchange time (HHMMSS)."""


def frames(pool: int = 200) -> Iterator[bytes]:
    """REAL frames of FRAME_ENTRIES entries, forever, a market second every 1,000 entries.

    The generator costs more than the engine per entry, so it makes `pool` frames once and
    they are replayed with the time moving on: prices come round again, time never does."""
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=KST))
    gen = MarketGenerator(SYMBOLS, SEED, clock, universe=Universe(SEED, SYMBOLS))
    batches = [gen.next_entries(FRAME_ENTRIES) for _ in range(pool)]
    step = FRAME_ENTRIES / EVENTS_PER_MARKET_SECOND
    while True:
        for entries in batches:
            clock.advance(step)
            hms = clock.now().strftime("%H%M%S")
            for entry in entries:
                fid = TIME_FID.get(entry["type"])
                if fid is not None:
                    entry["values"][fid] = hms
            yield orjson.dumps({"trnm": "REAL", "data": entries})


async def pump(
    n_events: int,
    every: int,
    deliver: Callable[[Event], None],
    stats: CodecStats,
    next_seq: Callable[[], int] | None,
    on_sample: Callable[[int], None],
) -> None:
    """Decode and deliver `n_events` events, calling `on_sample(delivered)` every `every`."""
    delivered = 0
    next_sample = every
    source = frames()
    while delivered < n_events:
        res = decode_frame(next(source), stats, SYSTEM_CLOCK.time_ns(), next_seq)
        for ev in res.events:
            deliver(ev)
        delivered += len(res.events)
        await asyncio.sleep(0)
        if delivered >= next_sample:
            on_sample(delivered)
            next_sample += every


# --- the simulator process ----------------------------------------------------------------------


def _start_sim(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = tmp / "sim.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\n'
        f"[sim]\nport = {port}\nseed = {SEED}\nevents_per_s = 0\nsymbols = [{symbols}]\n"
        f'rest_rate_per_s = 1000.0\n[log]\nlevel = "warning"\n'
    )
    proc = start_sim(cfg, port)
    return proc, port


def _client_config(tmp: Path, port: int, order_every: int) -> Config:
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    tables = "".join(
        f'[[strategies]]\nname = "{name}"\nentry_point = "bench.memory:{cls.__name__}"\n'
        f"symbols = [{symbols}]\n{extra}budget_ms = 1000.0\n"
        + (f"params = {{ every = {order_every} }}\n" if cls is Orders else "")
        for name, cls, extra in STRATEGIES
    )
    path = tmp / "engine.toml"
    path.write_text(
        f'[kiwoom]\nmode = "sim"\nrest_url = "http://127.0.0.1:{port}"\n'
        f'ws_url = "ws://127.0.0.1:{port}/api/dostk/websocket"\nrevoke_on_exit = false\n'
        f'[daemon]\nsymbols = [{symbols}]\nstate_dir = "{tmp / "state"}"\n'
        "[risk]\nmax_orders_per_s = 1000\nmax_orders_per_min = 100000\n"
        "duplicate_window_s = 0.0\n[portfolio]\nreconcile_s = 3600.0\n" + tables
    )
    return load(path, env=os.environ)


# --- the runs -------------------------------------------------------------------------------------


def _curve(samples: list[tuple[int, float]]) -> list[str]:
    base = samples[0][1]
    return [f"  {n:>10,} events  {mb:7.1f} MB  {mb - base:+6.1f} MB" for n, mb in samples]


async def _baseline(n_events: int, every: int) -> list[tuple[int, float]]:
    samples: list[tuple[int, float]] = []
    sink: list[Event] = []

    def sample(n: int) -> None:
        gc.collect()
        samples.append((n, rss_mb()))

    def deliver(ev: Event) -> None:
        sink.append(ev)
        if len(sink) > 1_000:
            sink.clear()

    await pump(n_events + every, every, deliver, CodecStats(), None, sample)
    return samples


async def _engine(
    cfg: Config, n_events: int, every: int
) -> tuple[list[tuple[int, float]], dict[str, Any]]:
    samples: list[tuple[int, float]] = []
    async with AsyncExitStack() as stack:
        module = sys.modules[__name__]
        loaded = [
            LoadedStrategy(sc, getattr(module, sc.entry_point.split(":")[1]), f"strategies[{i}]")
            for i, sc in enumerate(cfg.strategies)
            if sc.entry_point
        ]
        running = await daemon.assemble(cfg, stack, SYSTEM_CLOCK, loaded)
        ws, trader = running.ws, running.trader
        stuck = trader.bus.attach(ConsumerQueue("stuck-mirror"))

        def sample(n: int) -> None:
            gc.collect()
            samples.append((n, rss_mb()))

        await pump(n_events + every, every, trader.on_event, ws.stats, trader.bus.next_seq, sample)
        await asyncio.sleep(0.5)  # the last orders' answers and fills
        orders = trader.host.by_name["orders"].instance
        bars = trader.host.by_name["bars"].instance
        assert isinstance(orders, Orders)
        assert isinstance(bars, Bars)
        info = {
            "orders sent": orders.sent,
            "orders by state": trader.oms.counts_by_state(),
            "journal rows written": trader.journal.rows_written,
            "bars closed": bars.closed,
            "journal queue depth": trader.journal_queue.depth,
            "stuck queue": stuck.stats(),
            "strategy errors": sum(s.errors for s in trader.host.slots),
            "bus handler errors": trader.bus.handler_errors,
        }
        await trader.stop(cancel_open=False)
    return samples, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--every", type=int, default=500_000, help="sample RSS every N events")
    ap.add_argument("--order-every", type=int, default=10_000, help="trades between two orders")
    args = ap.parse_args()
    logs.setup("warning", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    t0 = time.monotonic()
    base = asyncio.run(_baseline(args.events, args.every))
    t_base = time.monotonic() - t0
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _start_sim(Path(tmp))
        try:
            cfg = _client_config(Path(tmp), port, args.order_every)
            t0 = time.monotonic()
            eng, info = asyncio.run(_engine(cfg, args.events, args.every))
            t_eng = time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    grow_base = base[-1][1] - base[0][1]
    grow_eng = eng[-1][1] - eng[0][1]
    print(
        f"{args.events:,} events after a warm-up of {args.every:,}; RSS after gc.collect(), "
        f"every {args.every:,} events"
    )
    print(f"baseline: the event source alone ({t_base:.0f} s)")
    print("\n".join(_curve(base)))
    print(f"engine: source -> bus -> strategies, journal, stuck queue, OMS ({t_eng:.0f} s)")
    print("\n".join(_curve(eng)))
    for k, v in info.items():
        print(f"  {k}: {v}")
    print(
        f"growth: engine {grow_eng:+.1f} MB, baseline {grow_base:+.1f} MB, peak RSS {peak:.0f} MB"
    )
    print(
        f"engine growth - baseline growth = {grow_eng - grow_base:+.1f} MB  (goal <= {GOAL_MB:.0f} MB)"
    )
    emit(
        f"RSS growth over {args.events:,} events",
        grow_eng,
        "MB",
        grow_base,
        "event source alone",
        f"engine - baseline <= {GOAL_MB:.0f} MB",
    )


if __name__ == "__main__":
    main()
