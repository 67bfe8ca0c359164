"""Benchmark: tick to order, from a REAL frame's arrival to the order request leaving.

The simulator runs as its own process (`kiwoom-engine sim`, generator at the target rate of
market events, 0B/0C/0D, with `sim.stamp_file` on). In this process, phases in turn (PHASES)
read that feed and send a market order (1 share, buy then sell) on every Nth trade, N chosen
for about `--orders-per-s` orders a second (default 20; paced here at up to 1000/s):

- baseline: a bare KiwoomWebSocket whose callback places the order directly through KiwoomApi
  (no bus, strategy host, risk, journal or OMS) in a task;
- engine: the daemon's own start-up path (`engine.daemon.assemble`: Trader, journal, feed report,
  the feed stamped with the bus's sequence) running the strategy `EveryNth` below;
- engine+mirror: the same with every event mirrored to a local Mosquitto. Mirror off and on
  run twice each, in turn, and each condition's samples are pooled.

Internal figure: from the trade's `ts_recv` (stamped from `clock.time_ns()` as the frame is
read, the moment the receive loop of KiwoomWebSocket gets it from websockets) to the
order request being handed to `KiwoomRest._post` (wrapped here: the call into aiohttp's
`session.post`), on the same clock. The trigger travels to the POST in a context variable, which
asyncio tasks inherit.
External figure: the simulator's own stamps (CLOCK_MONOTONIC, engine/sim/stamps.py), from the
write of the frame that carried the trade to the read of the order request it caused, matched
by frame number and order number.
Ratios: engine / baseline per percentile, same simulator, same run.
Goal (engine, internal): p50 <= 100 us and p99 <= 500 us at 1k ticks/s; p99 <= 2 ms at 20k.
CPUs: the client gets one of its own, the simulator and the broker the others (`--no-pin`:
all shared). On two cores, sharing made the client's p99 a measure of the simulator's load.
Run: `uv run python -m bench.tick_to_order [--rates 1000,20000] [--seconds 15] [--no-pin]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.mirror import start_broker
from bench.processes import free_port, start_sim
from bench.results import emit
from engine import daemon, logs
from engine.clock import SYSTEM_CLOCK
from engine.config import Config, MqttConfig, load
from engine.events import Event, Trade
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.models import OrderType
from engine.plugins import LoadedStrategy
from engine.strategy import Strategy

SYMBOLS = ("005930", "000660", "035420", "035720", "051910")
PHASES = ("baseline", "engine", "engine+mirror", "engine+mirror", "engine")
"""Mirror on and off in turn (ABBA), pooled: a p99 of one short phase each was mostly noise
(1.01x and 1.33x in two runs of the same code)."""
ORDER_IDS = frozenset({"kt10000", "kt10001"})
GOALS_US = {1_000: {"p50": 100.0, "p99": 500.0}, 20_000: {"p99": 2_000.0}}

TRIGGER: contextvars.ContextVar[tuple[int, int, int] | None] = contextvars.ContextVar(
    "trigger", default=None
)
"""(the trade's ts_recv, the number of the REAL frame that carried it, the clock's time_ns at
the decision) of the order being placed: set where the decision is taken, read at the POST."""


@dataclasses.dataclass
class Sample:
    ts_recv: int
    frame: int
    decided_ns: int
    post_ns: int
    order_no: str


class Probe:
    """Wraps `KiwoomRest._post` to stamp each order request as it is handed to aiohttp."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.untriggered = 0
        self.ws: KiwoomWebSocket | None = None

    def frame_no(self) -> int:
        """The number of the REAL frame being dispatched (-1: not known, left unmatched)."""
        return self.ws.stats.real_frames if self.ws is not None else -1

    def attach(self, rest: KiwoomRest) -> None:
        post = rest._post

        async def stamped(
            api_id: str, path: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, Mapping[str, str], bytes]:
            if api_id not in ORDER_IDS:
                return await post(api_id, path, headers, body)
            post_ns = time.time_ns()  # the engine's clock (SYSTEM_CLOCK.time_ns), as ts_recv
            trigger = TRIGGER.get()
            status, rheaders, data = await post(api_id, path, headers, body)
            if trigger is None:
                self.untriggered += 1
            else:
                order_no = str(orjson.loads(data).get("ord_no", ""))
                self.samples.append(Sample(*trigger, post_ns, order_no))
            return status, rheaders, data

        rest._post = stamped  # type: ignore[method-assign]


PROBE = Probe()


class EveryNth(Strategy):
    """Orders one share at market on every `every`-th trade of its symbols: a buy when flat,
    a sell when long; skips while an order of its own is still open."""

    def on_start(self) -> None:
        self.every = int(self.params["every"])
        self.trades = 0
        self.skipped = 0

    def on_trade(self, trade: Trade) -> None:
        self.trades += 1
        if self.trades % self.every:
            return
        if self.orders():
            self.skipped += 1
            return
        TRIGGER.set((trade.ts_recv, PROBE.frame_no(), self.clock.time_ns()))
        if self.position(trade.symbol) > 0:
            self.sell(trade.symbol, 1)
        else:
            self.buy(trade.symbol, 1)


# --- the simulator process ---------------------------------------------------------------------


def _start_sim(tmp: Path, rate: float) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    stamps = tmp / f"stamps-{int(rate)}.txt"
    cfg = tmp / f"sim-{int(rate)}.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\n'
        f"[sim]\nport = {port}\nevents_per_s = {rate}\nsymbols = [{symbols}]\n"
        f'rest_rate_per_s = 1000.0\nstamp_file = "{stamps}"\n'
        f'[log]\nlevel = "warning"\n'
    )
    proc = start_sim(cfg, port)
    return proc, port, stamps


def _client_config(tmp: Path, port: int, every: int, name: str) -> Config:
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    path = tmp / f"{name}.toml"
    path.write_text(
        f'[kiwoom]\nmode = "sim"\nrest_url = "http://127.0.0.1:{port}"\n'
        f'ws_url = "ws://127.0.0.1:{port}/api/dostk/websocket"\nrevoke_on_exit = false\n'
        # Orders are what is measured: pace them well above the rate asked for (the sim mode's
        # default pacing, 50/s with bursts of 20, would queue a faster run behind the governor).
        "[kiwoom.rate]\naccount_per_s = 1000.0\naccount_burst = 100\n"
        "order_per_api_per_s = 1000.0\norder_per_api_burst = 100\n"
        f'[daemon]\nsymbols = [{symbols}]\nstate_dir = "{tmp / name}"\n'
        "[risk]\nmax_orders_per_s = 1000\nmax_orders_per_min = 100000\n"
        "duplicate_window_s = 0.0\nmax_open_orders = 1000\n"
        "[portfolio]\nreconcile_s = 3600.0\n"
        f'[[strategies]]\nname = "every-nth"\nentry_point = "bench.tick_to_order:EveryNth"\n'
        f"symbols = [{symbols}]\nparams = {{ every = {every} }}\n"
        # One slow callback is a hiccup of the machine, not of the strategy: never disable it.
        "budget_ms = 1000.0\n"
    )
    return load(path, env=os.environ)


async def _watch(ws: KiwoomWebSocket, seconds: float) -> dict[str, Any]:
    """Wait `seconds`; return the rate of entries the feed delivered and this process's CPU
    use meanwhile (a client near 100% is behind the feed, and its latency is queueing)."""
    e0, t0 = ws.stats.entries, time.monotonic()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return {
        "events/s": round((ws.stats.entries - e0) / wall),
        "cpu%": round(100 * cpu / wall),
    }


# --- the two phases ------------------------------------------------------------------------------


async def _baseline(cfg: Config, every: int, seconds: float) -> dict[str, Any]:
    """KiwoomWebSocket -> callback -> task -> KiwoomApi.buy/sell: the floor without the engine."""
    async with KiwoomRest.from_config(cfg) as rest:
        PROBE.attach(rest)
        api = KiwoomApi(rest)
        tasks: set[asyncio.Task[Any]] = set()
        state = {"trades": 0, "long": set()}

        async def place(symbol: str, sell: bool) -> None:
            if sell:
                await api.sell(symbol, 1, OrderType.MARKET)
            else:
                await api.buy(symbol, 1, OrderType.MARKET)

        def on_event(ev: Event) -> None:
            if type(ev) is not Trade:
                return
            state["trades"] += 1  # type: ignore[operator]
            if state["trades"] % every or tasks:  # type: ignore[operator]
                return
            long: set[str] = state["long"]  # type: ignore[assignment]
            sell = ev.symbol in long
            (long.discard if sell else long.add)(ev.symbol)
            TRIGGER.set((ev.ts_recv, PROBE.frame_no(), SYSTEM_CLOCK.time_ns()))
            task = asyncio.create_task(place(ev.symbol, sell))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        ws = KiwoomWebSocket(
            cfg.ws_url, rest.tokens.token, rest.tokens.invalidate, on_event=on_event
        )
        PROBE.ws = ws
        await ws.start()
        try:
            await ws.subscribe(cfg.daemon.realtime_types, cfg.daemon.symbols)
            await ws.subscribe(["00", "04"], [])
            load = await _watch(ws, seconds)
        finally:
            await ws.close()
            if tasks:
                await asyncio.wait(set(tasks), timeout=5)
        return {"sessions": ws.sessions, **load, "trades": state["trades"]}


async def _engine(cfg: Config, seconds: float) -> dict[str, Any]:
    """The daemon's start-up path, then `seconds` of trading."""
    async with AsyncExitStack() as stack:
        real_rest_enter = KiwoomRest.__aenter__

        async def enter(self: KiwoomRest) -> KiwoomRest:
            rest = await real_rest_enter(self)
            PROBE.attach(rest)
            return rest

        KiwoomRest.__aenter__ = enter  # type: ignore[method-assign]
        try:
            # The class itself, not its entry point: imported again under its module name it
            # would have a PROBE and a TRIGGER of its own.
            loaded = [LoadedStrategy(cfg.strategies[0], EveryNth, "strategies[0]")]
            running = await daemon.assemble(cfg, stack, SYSTEM_CLOCK, loaded)
            ws, trader = running.ws, running.trader
        finally:
            KiwoomRest.__aenter__ = real_rest_enter  # type: ignore[method-assign]
        PROBE.ws = ws
        # Frames before this point belong to the same session: the count stays aligned.
        load = await _watch(ws, seconds)
        slot = trader.host.slots[0]
        strat = slot.instance
        assert isinstance(strat, EveryNth)
        out = {
            "sessions": ws.sessions,
            **load,
            "trades": strat.trades,
            "skipped": strat.skipped,
            "risk_rejected": trader.oms.stats.risk_rejected,
            "broker_rejected": trader.oms.stats.broker_rejected,
            "unknown": trader.oms.stats.unknown,
            "overruns": slot.overruns,
            "enabled": slot.enabled,
        }
        await trader.stop(cancel_open=False)
    return out


# --- figures ------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _read_stamps(path: Path) -> tuple[dict[tuple[int, int], int], dict[str, int]]:
    frames: dict[tuple[int, int], int] = {}
    orders: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[0] == "F":
            frames[(int(parts[2]), int(parts[3]))] = int(parts[1])
        elif parts[0] == "O" and parts[3] != "-":
            orders[parts[3]] = int(parts[1])
    return frames, orders


def _ratio_interval(on: list[float], off: list[float], q: float) -> tuple[float, float]:
    """A 95% bootstrap interval of `_pct(on, q) / _pct(off, q)`: each side resampled with
    replacement, 1000 times (fixed seed). A p99 is the 1% tail: with a few thousand samples
    it moves by several percent between runs of the same code, and a ratio of two such
    figures moves by more; the interval says how much."""
    rng = random.Random(20261202)
    ratios = sorted(
        _pct(rng.choices(on, k=len(on)), q) / _pct(rng.choices(off, k=len(off)), q)
        for _ in range(1000)
    )
    return ratios[25], ratios[974]


def _line(name: str, us: list[float]) -> str:
    if not us:
        return f"{name}: no samples"
    return (
        f"{name}: p50 {_pct(us, 0.5):7.0f}  p90 {_pct(us, 0.9):7.0f}  "
        f"p99 {_pct(us, 0.99):7.0f}  max {max(us):7.0f}  mean {statistics.fmean(us):7.0f} us"
        f"  (n={len(us)})"
    )


async def _run_rate(tmp: Path, rate: float, seconds: float, orders_per_s: float) -> list[str]:
    every = max(1, round(rate * 0.5 / orders_per_s))  # half the generated events are trades
    proc, port, stamps = _start_sim(tmp, rate)
    broker, broker_port = start_broker()
    if PINNING is not None:
        # The simulator stands in for Kiwoom's servers, which do not share our CPU: it and
        # the broker get the other cores, the client (this process) one of its own.
        for pid in (proc.pid, broker.pid):
            os.sched_setaffinity(pid, PINNING[1])
    phases: dict[str, list[tuple[list[Sample], dict[str, Any], int]]] = {}
    try:
        for sid, name in enumerate(PHASES, start=1):
            PROBE.samples = []
            PROBE.untriggered = 0
            PROBE.ws = None
            cfg = _client_config(tmp, port, every, f"{name.replace('+', '-')}-{int(rate)}")
            if name == "baseline":
                info = await _baseline(cfg, every, seconds)
            else:
                if name == "engine+mirror":
                    # Every event mirrored to a local Mosquitto, as a daemon with [mqtt] does.
                    mqtt = MqttConfig(port=broker_port, prefix="bench/t2o", client_id="bench")
                    cfg = dataclasses.replace(cfg, mqtt=mqtt)
                info = await _engine(cfg, seconds)
            phases.setdefault(name, []).append((PROBE.samples, info, sid))
    finally:
        proc.terminate()
        proc.wait(10)
        broker.terminate()
        broker.wait(10)
    frames, orders = _read_stamps(stamps)
    out = [
        f"--- {rate:.0f} market events/s (0B/0C/0D, {len(SYMBOLS)} symbols), an order every "
        f"{every} trades, {seconds:.0f} s per phase"
    ]
    figures: dict[str, dict[str, list[float]]] = {}
    for name, runs in phases.items():
        internal: list[float] = []
        to_decision: list[float] = []
        to_post: list[float] = []
        external: list[float] = []
        for samples, info, sid in runs:
            internal += [(s.post_ns - s.ts_recv) / 1000 for s in samples]
            to_decision += [(s.decided_ns - s.ts_recv) / 1000 for s in samples]
            to_post += [(s.post_ns - s.decided_ns) / 1000 for s in samples]
            # The simulator numbers sessions 1, 2, ... as they connect: phase i is session i,
            # and its frames are the client's, in order, as long as it never reconnected.
            external += [
                (orders[s.order_no] - frames[(sid, s.frame)]) / 1000
                for s in samples
                if info["sessions"] == 1 and s.order_no in orders and (sid, s.frame) in frames
            ]
            extra = ", ".join(f"{k} {v}" for k, v in info.items())
            out.append(f"[{name}, phase {sid}] {extra}")
        figures[name] = {"internal": internal, "external": external}
        out.append(f"[{name}: {len(runs)} phase(s) pooled]")
        out.append("  " + _line("internal: ts_recv -> _post  ", internal))
        out.append("  " + _line("  ts_recv -> decision       ", to_decision))
        out.append("  " + _line("  decision -> _post         ", to_post))
        out.append("  " + _line("external: frame write -> read", external))
    for kind in ("internal", "external"):
        b, e = figures["baseline"][kind], figures["engine"][kind]
        if b and e:
            out.append(
                f"engine / baseline ({kind}): p50 {_pct(e, 0.5) / _pct(b, 0.5):.2f}x  "
                f"p99 {_pct(e, 0.99) / _pct(b, 0.99):.2f}x"
            )
    for kind in ("internal", "external"):
        b, e = figures["baseline"][kind], figures["engine"][kind]
        if b and e:
            goal_txt = " ".join(
                f"{q} <= {g:.0f} us" for q, g in GOALS_US.get(int(rate), {}).items()
            )
            for q in (0.5, 0.99):
                emit(
                    f"tick_to_order {kind} p{q * 100:.0f} at {rate:.0f}/s",
                    _pct(e, q),
                    "us",
                    _pct(b, q),
                    "baseline client",
                    goal_txt if kind == "internal" else "(see internal)",
                )
    off, on = figures["engine"]["internal"], figures["engine+mirror"]["internal"]
    if off and on:
        ratio = _pct(on, 0.99) / _pct(off, 0.99)
        low, high = _ratio_interval(on, off, 0.99)
        verdict = "met" if ratio <= 1.10 else "MISSED"
        emit(
            f"tick_to_order internal p99 at {rate:.0f}/s, mirror on",
            _pct(on, 0.99),
            "us",
            _pct(off, 0.99),
            "mirror off",
            "<= 1.10x",
        )
        out.append(
            f"mirror on / off (internal p99): {ratio:.2f}x (95% interval {low:.2f}-{high:.2f}x)"
            f"  goal <= 1.10x  {verdict}  (p50 {_pct(on, 0.5) / _pct(off, 0.5):.2f}x)"
        )
    e = figures["engine"]["internal"]
    for pname, goal in GOALS_US.get(int(rate), {}).items():
        got = _pct(e, 0.5 if pname == "p50" else 0.99) if e else float("nan")
        verdict = "met" if got <= goal else "MISSED"
        out.append(f"goal engine internal {pname} <= {goal:.0f} us: {got:.1f} us  {verdict}")
    return out


PINNING: tuple[set[int], set[int]] | None = None
"""(the client's CPUs, the simulator's and broker's), when --pin is on."""


def _pin() -> tuple[set[int], set[int]] | None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    mine, theirs = {cpus[0]}, set(cpus[1:])
    os.sched_setaffinity(0, mine)
    return mine, theirs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="1000,20000", help="market events per second, comma list")
    ap.add_argument("--seconds", type=float, default=15.0, help="per phase (5 per rate)")
    ap.add_argument(
        "--orders-per-s",
        type=float,
        default=20.0,
        help="orders a second (one open at a time; Kiwoom takes about 5): each condition's "
        "p99 is of about 2 x seconds x this samples. More orders sharpen the p99s but load the "
        "mirror with account events (QoS 1) far beyond a real account's",
    )
    ap.add_argument(
        "--log-level",
        default="info",
        help="the client's log level (info, as shipped: every order transition is a log line); "
        "lines go to /dev/null",
    )
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="share all CPUs between the client, the simulator and the broker (by default the "
        "client gets a CPU of its own, as it would beside a remote Kiwoom)",
    )
    args = ap.parse_args()
    global PINNING
    PINNING = None if args.no_pin else _pin()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the whole process
    logs.setup(args.log_level, "json", stream=devnull)
    rates = [float(r) for r in args.rates.split(",")]
    print(f"client log level {args.log_level} (JSON lines to /dev/null)")
    if PINNING is not None:
        print(f"CPUs: client {sorted(PINNING[0])}, simulator and broker {sorted(PINNING[1])}")
    else:
        print("CPUs: shared by the client, the simulator and the broker")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            for line in asyncio.run(_run_rate(Path(tmp), rate, args.seconds, args.orders_per_s)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
