"""Benchmark: tick to order with alerts on against off, A/B in one run (issue 17).

The simulator runs as its own process (as in bench/tick_to_order.py), and so does a fake
Telegram Bot API (this module with `--serve`: it answers sendMessage like Telegram, after
`--server-delay-ms`). In this process the daemon's start-up path (`engine.daemon.assemble`)
trades the strategy `EveryNth` of bench/tick_to_order.py (a market order every Nth trade,
about `--orders-per-s` a second), in rounds of phases ABBA: alerts off, on, on, off; each
condition's samples pooled. With alerts on, `[alerts.telegram]` points at the fake server with
every kind switched on, so each fill is a line, and lines are paced and batched as shipped
(`min_interval_s` 1 s). Last, the alerts' own CPU per message sent, one at a time.

Figure: tick to order, internal (the trade's ts_recv to the order request's hand-over to
aiohttp), as bench/tick_to_order.py measures it. Goal: alerts on / off within 5% (p50 and p99;
the p99 ratio printed with its 95% bootstrap interval).
Run: `uv run python -m bench.alerts [--rate 1000] [--seconds 15] [--rounds 2] [--no-pin]`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bench import tick_to_order as t2o
from bench.processes import free_port
from bench.results import emit
from engine import logs
from engine.alerts import Alerts
from engine.clock import SYSTEM_CLOCK
from engine.config import AlertsConfig, Config, TelegramConfig, load
from engine.secrets import Secret

ABBA = ("engine", "engine+alerts", "engine+alerts", "engine")
"""One round: off, on, on, off; `--rounds` of them, so that a drift of the machine's load
(shared) falls on both conditions alike."""
GOAL = 1.05
BENCH_TOKEN = "7000000000:AAbenchTokenNotReal-0000000000"


# --- the fake Bot API, in its own process ----------------------------------------------------


def serve(port: int, delay_ms: float) -> None:
    """A Bot API stand-in: every POST /bot<token>/<method> is counted and answered ok after
    `delay_ms` (Telegram from Korea is some tens of ms away)."""
    counts = {"messages": 0, "lines": 0}

    async def bot(request: web.Request) -> web.Response:
        body = await request.json()
        counts["messages"] += 1
        counts["lines"] += len(str(body.get("text", "")).splitlines())
        await asyncio.sleep(delay_ms / 1000)
        return web.json_response({"ok": True, "result": {}})

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", bot)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _start_server(delay_ms: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.alerts",
            "--serve",
            str(port),
            "--server-delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


async def _server_stats(port: int) -> dict[str, int]:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/stats") as r:
        return dict(await r.json())


def _with_alerts(cfg: Config, port: int) -> Config:
    return dataclasses.replace(
        cfg,
        alerts=AlertsConfig(
            telegram=TelegramConfig(
                chat_id="1", api_url=f"http://127.0.0.1:{port}", token=Secret(BENCH_TOKEN)
            )
        ),
    )


async def _run(
    tmp: Path, rate: float, seconds: float, orders_per_s: float, delay_ms: float, rounds: int
) -> list[str]:
    every = max(1, round(rate * 0.5 / orders_per_s))
    proc, port, _stamps = t2o._start_sim(tmp, rate)
    server, server_port = _start_server(delay_ms)
    if PINNING is not None:
        for pid in (proc.pid, server.pid):
            os.sched_setaffinity(pid, PINNING[1])
    samples: dict[str, list[float]] = {}
    out = [
        f"--- {rate:.0f} market events/s, an order every {every} trades, {seconds:.0f} s per "
        f"phase, fake Bot API answering after {delay_ms:.0f} ms"
    ]
    try:
        for sid, name in enumerate(ABBA * rounds, start=1):
            t2o.PROBE.samples = []
            t2o.PROBE.untriggered = 0
            t2o.PROBE.ws = None
            cfg = t2o._client_config(tmp, port, every, f"{name.replace('+', '-')}-{sid}")
            if name == "engine+alerts":
                cfg = _with_alerts(cfg, server_port)
            before = await _server_stats(server_port)
            info = await t2o._engine(cfg, seconds)
            after = await _server_stats(server_port)
            got = [(s.post_ns - s.ts_recv) / 1000 for s in t2o.PROBE.samples]
            if t2o.PROBE.samples and os.environ.get("BENCH_ALERTS_DEBUG"):
                t0 = t2o.PROBE.samples[0].post_ns
                worst = sorted(t2o.PROBE.samples, key=lambda s: s.ts_recv - s.post_ns)[:5]
                out.append(
                    "  worst: "
                    + ", ".join(
                        f"{(s.post_ns - s.ts_recv) / 1000:.0f}us@{(s.post_ns - t0) / 1e9:.2f}s"
                        for s in worst
                    )
                )
            samples.setdefault(name, []).extend(got)
            sent = {k: after[k] - before[k] for k in after}
            extra = ", ".join(f"{k} {v}" for k, v in info.items())
            out.append(
                f"[{name}, phase {sid}] {extra}; alert messages {sent['messages']} "
                f"({sent['lines']} lines)"
            )
        cost_us = await _cost_per_message(server_port)
    finally:
        for p in (proc, server):
            p.terminate()
            p.wait(10)
    out.append(
        f"alerts' own cost on the loop: {cost_us:.0f} us of CPU per message sent "
        f"(1 message/s at most per target: {cost_us / 1e4:.3f}% of the loop's time)"
    )
    off, on = samples["engine"], samples["engine+alerts"]
    out.append("  " + t2o._line("alerts off: ts_recv -> _post", off))
    out.append("  " + t2o._line("alerts on:  ts_recv -> _post", on))
    if off and on:
        for q in (0.5, 0.99):
            ratio = t2o._pct(on, q) / t2o._pct(off, q)
            low, high = t2o._ratio_interval(on, off, q)
            verdict = "met" if ratio <= GOAL else "MISSED"
            out.append(
                f"alerts on / off p{q * 100:.0f}: {ratio:.3f}x (95% interval {low:.2f}-"
                f"{high:.2f}x)  goal <= {GOAL:.2f}x  {verdict}"
            )
            emit(
                f"tick_to_order internal p{q * 100:.0f} at {rate:.0f}/s, alerts on",
                t2o._pct(on, q),
                "us",
                t2o._pct(off, q),
                "alerts off",
                f"<= {GOAL:.2f}x",
            )
    return out


async def _cost_per_message(port: int, messages: int = 300) -> float:
    """CPU time of this process (the client's loop: the request built and sent, the answer
    read) per alert message, one message at a time to the fake server in its own process:
    what a send takes from the loop, whatever else loads the machine."""
    cfg = _with_alerts(load(None, env={}), port).alerts
    assert cfg is not None
    alerts = Alerts(dataclasses.replace(cfg, min_interval_s=0.0), SYSTEM_CLOCK)
    alerts.start()
    alerts.post("warm-up")  # the session and its connection
    await alerts.wait_idle(10)
    line = "FILL every-nth: BUY 1 005930 @ 70,000 | realised -105 (day +12,345)"
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(messages):
        alerts.post(line)
        await alerts.wait_idle(10)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    await alerts.close()
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return cpu / messages * 1e6


PINNING: tuple[set[int], set[int]] | None = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000.0, help="market events per second")
    ap.add_argument("--seconds", type=float, default=15.0, help="per phase (4 per round)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of off, on, on, off")
    ap.add_argument("--orders-per-s", type=float, default=20.0)
    ap.add_argument("--server-delay-ms", type=float, default=30.0)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.server_delay_ms)
        return
    global PINNING
    PINNING = None if args.no_pin else t2o._pin()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the whole process
    logs.setup("info", "json", stream=devnull)
    print("client log level info (JSON lines to /dev/null)")
    if PINNING is not None:
        print(f"CPUs: client {sorted(PINNING[0])}, simulator and fake Bot API {sorted(PINNING[1])}")
    with tempfile.TemporaryDirectory() as tmp:
        lines = asyncio.run(
            _run(
                Path(tmp),
                args.rate,
                args.seconds,
                args.orders_per_s,
                args.server_delay_ms,
                args.rounds,
            )
        )
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
