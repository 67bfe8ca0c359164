"""Benchmark: the realtime feed with permessage-deflate offered (`kiwoom.ws_compression`) and not.

The simulator runs as its own process at 20k market events/s (0B/0C/0D, 5 symbols). In this
process a bare KiwoomWebSocket (no engine) counts events, in phases that alternate deflated and
plain (ABBA..., pooled per condition): the bytes the connection read and this process's CPU
per event. CPUs: the client gets one of its own, the simulator the other (as tick_to_order).
Usage: `uv run python -m bench.ws_compression [--seconds 10] [--rate 20000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets.asyncio.connection as ws_connection

from bench.processes import free_port, start_sim
from bench.results import emit
from engine import logs
from engine.config import Config, load
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket

SYMBOLS = ("005930", "000660", "035420", "035720", "051910")
PHASES = (True, False, False, True, True, False)
"""Deflated or not, in turn; each condition's phases are pooled."""


class ByteCount:
    """Bytes handed to websockets' connections by their transports (this process has one)."""

    def __init__(self) -> None:
        self.total = 0
        received = ws_connection.Connection.data_received

        def counted(conn: ws_connection.Connection, data: bytes) -> None:
            self.total += len(data)
            received(conn, data)

        ws_connection.Connection.data_received = counted  # type: ignore[method-assign]


def _config(tmp: Path, port: int, rate: float) -> tuple[Path, Config]:
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    sim = tmp / "sim.toml"
    sim.write_text(
        f'[kiwoom]\nmode = "sim"\n[sim]\nport = {port}\nevents_per_s = {rate}\n'
        f'symbols = [{symbols}]\n[log]\nlevel = "warning"\n'
    )
    client = tmp / "client.toml"
    client.write_text(
        f'[kiwoom]\nmode = "sim"\nrest_url = "http://127.0.0.1:{port}"\n'
        f'ws_url = "ws://127.0.0.1:{port}/api/dostk/websocket"\nrevoke_on_exit = false\n'
        f"[daemon]\nsymbols = [{symbols}]\n"
    )
    return sim, load(client, env=os.environ)


async def _phase(cfg: Config, compressed: bool, seconds: float, count: ByteCount) -> dict[str, Any]:
    events = 0

    def on_event(_ev: object) -> None:
        nonlocal events
        events += 1

    async with KiwoomRest.from_config(cfg) as rest:
        ws = KiwoomWebSocket.from_config(cfg, rest, on_event, compression=compressed)
        await ws.start()
        try:
            await ws.subscribe(cfg.daemon.realtime_types, cfg.daemon.symbols)
            await asyncio.sleep(1.0)  # past the subscription's first frames
            if ws.compressed is not compressed:
                raise SystemExit(f"asked compression={compressed}, got {ws.compressed}")
            r0, b0, e0, t0 = (
                resource.getrusage(resource.RUSAGE_SELF),
                count.total,
                events,
                time.monotonic(),
            )
            await asyncio.sleep(seconds)
            r1, b1, e1, t1 = (
                resource.getrusage(resource.RUSAGE_SELF),
                count.total,
                events,
                time.monotonic(),
            )
        finally:
            await ws.close()
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return {"events": e1 - e0, "bytes": b1 - b0, "cpu_s": cpu, "wall_s": t1 - t0}


async def _run(rate: float, seconds: float) -> list[str]:
    count = ByteCount()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = free_port()
        sim_cfg, cfg = _config(tmp, port, rate)
        proc = start_sim(sim_cfg, port)
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[0]})
            os.sched_setaffinity(proc.pid, set(cpus[1:]))
        pooled: dict[bool, dict[str, float]] = {}
        out = [f"--- {rate:.0f} market events/s, {len(SYMBOLS)} symbols, {seconds:.0f} s per phase"]
        try:
            for compressed in PHASES:
                got = await _phase(cfg, compressed, seconds, count)
                acc = pooled.setdefault(compressed, dict.fromkeys(got, 0.0))
                for k, v in got.items():
                    acc[k] += v
                out.append(
                    f"[{'deflated' if compressed else 'plain   '}] "
                    f"{got['events'] / got['wall_s']:7.0f} events/s  "
                    f"{got['bytes'] / got['wall_s'] / 1e6:6.2f} MB/s  "
                    f"{got['cpu_s'] / got['events'] * 1e6:6.2f} us CPU/event"
                )
        finally:
            proc.terminate()
            proc.wait(10)
    on, off = pooled[True], pooled[False]
    mb_on, mb_off = on["bytes"] / on["wall_s"] / 1e6, off["bytes"] / off["wall_s"] / 1e6
    us_on, us_off = on["cpu_s"] / on["events"] * 1e6, off["cpu_s"] / off["events"] * 1e6
    out.append(
        f"pooled: deflated {mb_on:.2f} MB/s, {us_on:.2f} us/event; plain {mb_off:.2f} MB/s, {us_off:.2f} us/event"
    )
    out.append(
        f"deflated / plain: bytes {mb_on / mb_off:.3f}x  CPU per event {us_on / us_off:.3f}x"
    )
    emit(f"feed MB/s deflated at {rate:.0f}/s", mb_on, "MB/s", mb_off, "plain", "(knob)")
    emit(
        f"feed client CPU per event deflated at {rate:.0f}/s",
        us_on,
        "us",
        us_off,
        "plain",
        "(knob)",
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase (6 phases)")
    ap.add_argument("--rate", type=float, default=20_000.0, help="market events per second")
    args = ap.parse_args()
    logs.setup("warning", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - whole process
    for line in asyncio.run(_run(args.rate, args.seconds)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
