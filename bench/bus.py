"""Benchmark: dispatching trades to three no-op strategies through the bus and the host.

Three figures per round, on the same pre-stamped trades (stamped as the feed's codec stamps
them, so the bus does not stamp them again):
- engine: `EventBus.publish` -> `StrategyHost.on_trade` -> each `StrategySlot.call`, with the
  slot's isolation (exceptions caught and counted) and time budget (measured per call);
- bus only: the same three strategies' `on_trade` subscribed to the bus as plain handlers;
- floor (baseline): a bare loop calling the same three bound handlers.
Rounds alternate between the three so that CPU noise hits all of them. Goal: engine >= 50% of
the floor's throughput.
Run: `uv run python -m bench.bus [--events N] [--rounds R] [--profile]`.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.results import emit
from engine import logs
from engine.bus import EventBus
from engine.clock import SYSTEM_CLOCK
from engine.config import StrategyConfig, load
from engine.events import Exchange, Trade
from engine.host import StrategyHost
from engine.journal import Journal
from engine.plugins import LoadedStrategy
from engine.strategy import Strategy
from engine.trading.oms import OrderManager
from engine.trading.portfolio import Portfolio
from engine.trading.risk import RiskEngine

GOAL = 0.50
SYMBOLS = ("005930", "000660", "035420")
STRATEGIES = 3


class NoOp(Strategy):
    """Listens to every trade of its symbols and does nothing with it."""

    def on_trade(self, trade: Trade) -> None:
        pass


def _trades(bus: EventBus, n: int) -> list[Trade]:
    out = []
    ts = time.time_ns()
    for i in range(n):
        price = 70_000 + (i % 50) * 100
        out.append(
            Trade(
                SYMBOLS[i % len(SYMBOLS)],
                Exchange.KRX,
                90_000 + i % 3600,
                price,
                (i % 7) - 3 or 1,
                1_000 + i,
                0,
                price + 100,
                price,
                70_000,
                75_000,
                69_000,
                ts_recv=ts + i,
                seq=bus.next_seq(),
            )
        )
    return out


def _engine(tmp_state: str) -> tuple[EventBus, StrategyHost]:
    """A bus and a host with three NoOp slots; the OMS is real but never asked for an order."""
    cfg = load(None, env={})
    bus = EventBus(SYSTEM_CLOCK)
    risk = RiskEngine(cfg.risk, SYSTEM_CLOCK, check_session_hours=False)
    portfolio = Portfolio(cfg.portfolio)
    oms = OrderManager(
        _NoGateway(), bus, risk, portfolio, Journal(tmp_state, SYSTEM_CLOCK), SYSTEM_CLOCK
    )
    loaded = [
        LoadedStrategy(
            StrategyConfig(name=f"noop{i}", class_name="NoOp", path="-", symbols=SYMBOLS),
            NoOp,
            f"strategies[{i}]",
        )
        for i in range(STRATEGIES)
    ]
    host = StrategyHost(bus, oms, SYSTEM_CLOCK, loaded)
    host.instantiate()
    host.start()
    return bus, host


class _NoGateway:
    """Never called: no strategy here orders."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the bus benchmark placed an order ({name})")


def _run(fn: Callable[[Trade], None], events: list[Trade]) -> float:
    """ns per event."""
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for ev in events:
            fn(ev)
        return (time.perf_counter_ns() - t0) / len(events)
    finally:
        gc.enable()


def _bare_loop(handlers: list[Callable[[Trade], None]], events: list[Trade]) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for ev in events:
            for h in handlers:
                h(ev)
        return (time.perf_counter_ns() - t0) / len(events)
    finally:
        gc.enable()


def _timed_loop(handlers: list[Callable[[Trade], None]], events: list[Trade]) -> float:
    """The floor plus what per-call time budgets cannot do without: n + 1 counter reads."""
    now = time.perf_counter_ns
    gc.disable()
    try:
        t_start = now()
        for ev in events:
            t0 = now()
            for h in handlers:
                h(ev)
                t1 = now()
                if t1 - t0 > 50_000_000:
                    raise AssertionError("a no-op took 50 ms")
                t0 = t1
        return (now() - t_start) / len(events)
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--profile", action="store_true", help="cProfile the engine path once")
    args = ap.parse_args()
    logs.setup("warning", "console")

    with tempfile.TemporaryDirectory() as tmp:
        bus, host = _engine(tmp)
        events = _trades(bus, args.events)
        strategies = [s.instance for s in host.slots]
        assert all(s is not None for s in strategies)
        handlers: list[Callable[[Trade], None]] = [s.on_trade for s in strategies]  # type: ignore[union-attr]

        plain = EventBus(SYSTEM_CLOCK)
        for h in handlers:
            plain.subscribe(Trade, h)

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            _run(bus.publish, events)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)

        # Warm: caches, the bus's route table, the CPU's frequency.
        _run(bus.publish, events[:20_000])
        _run(plain.publish, events[:20_000])
        _bare_loop(handlers, events[:20_000])
        _timed_loop(handlers, events[:20_000])

        eng: list[float] = []
        bus_only: list[float] = []
        floor: list[float] = []
        timed: list[float] = []
        for _ in range(args.rounds):
            floor.append(_bare_loop(handlers, events))
            timed.append(_timed_loop(handlers, events))
            eng.append(_run(bus.publish, events))
            bus_only.append(_run(plain.publish, events))

        calls = sum(s.calls for s in host.slots)
        per_slot = len(events) * (args.rounds + args.profile) + 20_000 + 1  # + on_start
        assert calls == per_slot * STRATEGIES, (calls, per_slot * STRATEGIES)
        assert all(s.errors == 0 and s.enabled for s in host.slots)

    n = args.events
    # The machine is shared: the least disturbed round is the figure (min), and each ratio is
    # also taken within a round, whose three runs saw the same conditions (median over rounds).
    f, b, e, t = min(floor), min(bus_only), min(eng), min(timed)
    r_bus = statistics.median(fl / x for fl, x in zip(floor, bus_only, strict=True))
    r_eng = statistics.median(fl / x for fl, x in zip(floor, eng, strict=True))
    print(f"{n} trades x {STRATEGIES} no-op strategies, {args.rounds} interleaved rounds")
    print(f"floor: bare loop over the handlers : {f:7.0f} ns/event  {1e9 / f:10.0f} events/s")
    print(f"floor + n+1 counter reads (timing) : {t:7.0f} ns/event  {1e9 / t:10.0f} events/s")
    print(f"bus only: 3 plain bus handlers     : {b:7.0f} ns/event  {1e9 / b:10.0f} events/s")
    print(f"engine: bus -> host -> slots       : {e:7.0f} ns/event  {1e9 / e:10.0f} events/s")
    print(f"bus only / floor = {f / b:.2f} (best rounds)  {r_bus:.2f} (median within rounds)")
    print(
        f"engine / floor   = {f / e:.2f} (best rounds)  {r_eng:.2f} (median within rounds)"
        f"  goal >= {GOAL:.2f}"
    )
    print(f"timing alone: floor / (floor + counter reads) = {f / t:.2f}, the ceiling of any timed")
    print("  dispatch: per-callback budgets cannot be measured for less")
    print(f"per strategy call, engine minus floor: {(e - f) / STRATEGIES:.0f} ns (best rounds)")
    emit(
        "bus -> strategies ns/event",
        e,
        "ns/event",
        f,
        "bare loop over handlers",
        f"floor/engine >= {GOAL:.2f}",
    )


if __name__ == "__main__":
    main()
