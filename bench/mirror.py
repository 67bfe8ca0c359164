"""Benchmark: mirrored events per second to a local Mosquitto, beside the bare client loops.

One mosquitto of its own on a free port; in the same run, at QoS 0 and QoS 1, with the same
kind of payload (a trade's JSON, about 240 bytes):
- aiomqtt, `await publish` per message;
- paho-mqtt with its network loop in its own thread (`loop_start`), publishing from the main
  thread;
- the mirror: events published on an EventBus, read from the mirror's ConsumerQueue (trades
  for QoS 0, fills for QoS 1).
A rate is "to the broker": the clock stops when the broker has acknowledged a QoS 1 message
sent after the last one (the broker handles one connection in order), or every message at
QoS 1. A `mosquitto_sub` in its own process counts what a subscriber got, and for the mirror's
QoS 1 run checks that every fill's `seq` arrived.
Then the mirror at an offered 20k and 30k trades/s (paced, 20 symbols) for a few seconds:
what it published and what the queue dropped.
Usage: `uv run python -m bench.mirror [N] [SECONDS]` (default 100000, 5).
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import operator
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.results import emit
from engine import logs
from engine.bus import EventBus
from engine.clock import SYSTEM_CLOCK
from engine.config import MqttConfig
from engine.events import Exchange, Fill, Side, Trade
from engine.mirror import Mirror
from engine.mirror_schema import ROUTES, SCHEMA_VERSION, encode_event

SYMBOLS = [f"{i:06d}" for i in range(5930, 5950)]
PREFIX = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    if binary is None:
        raise SystemExit("mosquitto is not installed (make bench installs it)")
    port = free_port()
    conf = Path(tempfile.mkdtemp()) / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"user {getpass.getuser()}\nlog_type error\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.01)
    raise SystemExit("mosquitto did not start")


class Counter:
    """mosquitto_sub in its own process, counting messages (and fill seqs) on `topic`."""

    def __init__(self, port: int, topic: str, qos: int) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-q", str(qos), "-t", topic],
            stdout=subprocess.PIPE,
        )
        self.lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(0.3)  # subscribed before anything is published

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, n: int, within_s: float = 30.0) -> list[bytes]:
        """The lines once there are `n` (or whatever came within `within_s`)."""
        deadline = time.monotonic() + within_s
        while len(self.lines) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.lines)

    def stop(self) -> list[bytes]:
        self.proc.terminate()
        self.proc.wait(10)
        self._reader.join(10)
        return self.lines


def trades(n: int) -> list[Trade]:
    def one(i: int) -> Trade:
        price = 70_000 + i % 100
        symbol = SYMBOLS[i % len(SYMBOLS)]
        return Trade(symbol, Exchange.KRX, 93005, price, 10, 1000 + i, 500, price + 100, price,
                     69_500, 70_500, 69_000)  # fmt: skip

    return [one(i) for i in range(n)]


def fills(n: int) -> list[Fill]:
    return [
        Fill(f"c-{i}", "bench", f"{i:07d}", f"f{i}", SYMBOLS[0], Side.BUY, 1, 70_000, 0, 0)
        for i in range(n)
    ]


def payloads(n: int) -> list[bytes]:
    route = ROUTES[Trade]
    return [encode_event(route, t, i + 1) for i, t in enumerate(trades(n))]


# --- the bare clients --------------------------------------------------------------------


async def aiomqtt_await(port: int, n: int, qos: int) -> float:
    data = payloads(n)
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=100) as c:
        t0 = time.perf_counter()
        for p in data:
            await c.publish(f"{PREFIX}/raw/aiomqtt", p, qos=qos)
        await c.publish(f"{PREFIX}/end", b"", qos=1)
        return n / (time.perf_counter() - t0)


def paho_thread(port: int, n: int, qos: int) -> float:
    data = payloads(n)
    c = paho.Client(CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        t0 = time.perf_counter()
        for p in data:
            c.publish(f"{PREFIX}/raw/paho", p, qos=qos)
        c.publish(f"{PREFIX}/end", b"", qos=1).wait_for_publish(60)
        return n / (time.perf_counter() - t0)
    finally:
        c.loop_stop()
        c.disconnect()


# --- the mirror --------------------------------------------------------------------------


async def mirrored(port: int, events: list[Trade] | list[Fill], qos: int) -> tuple[float, Mirror]:
    bus = EventBus(SYSTEM_CLOCK)
    queue = bus.attach(Mirror.queue(max_market=50_000))
    cfg = MqttConfig(port=port, prefix=PREFIX, spool_size=len(events) + 10)
    mirror = Mirror(cfg, queue, SYSTEM_CLOCK, account="bench")
    task = asyncio.create_task(mirror.run())
    try:
        await wait_until(lambda: mirror.connected)
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        for i in range(0, len(events), 500):
            for ev in events[i : i + 500]:
                bus.publish(ev)
            # The producer shares the loop: give the mirror its turns, and never let the
            # queue overflow, so that the rate is the mirror's, not its drop rate.
            await wait_until(lambda: queue.depth <= 5_000, 0)
            await asyncio.sleep(0)
        if qos == 0:  # one QoS 1 message after the last trade: its ack closes the run
            bus.publish(fills(1)[0])
        acked = len(events) if qos else 1
        await wait_until(lambda: mirror.stats()["published_account"] >= acked)
        rate = len(events) / (time.perf_counter() - t0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return rate, mirror


async def paced(port: int, per_s: float, seconds: float) -> tuple[float, dict[str, int], float]:
    """Offer `per_s` trades a second for `seconds`: (delivered per s, stats, worst loop lag)."""
    bus = EventBus(SYSTEM_CLOCK)
    queue = bus.attach(Mirror.queue())
    mirror = Mirror(MqttConfig(port=port, prefix=PREFIX), queue, SYSTEM_CLOCK, account="bench")
    events = trades(int(per_s * seconds))
    task = asyncio.create_task(mirror.run())
    loop = asyncio.get_running_loop()
    worst_lag = 0.0
    try:
        await wait_until(lambda: mirror.connected)
        tick = 0.005
        chunk = max(1, int(per_s * tick))
        t0 = loop.time()
        for k, i in enumerate(range(0, len(events), chunk)):
            for ev in events[i : i + chunk]:
                bus.publish(ev)
            due = t0 + (k + 1) * tick
            await asyncio.sleep(max(0.0, due - loop.time()))
            worst_lag = max(worst_lag, loop.time() - due)
        bus.publish(fills(1)[0])
        await wait_until(lambda: mirror.stats()["published_account"] >= 1)
        elapsed = loop.time() - t0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stats = mirror.stats()
    return stats["published_market"] / elapsed, stats, worst_lag


async def wait_until(cond: Callable[[], bool], pause_s: float = 0.001) -> None:
    while not cond():  # noqa: ASYNC110 - polling the mirror's counters is the measurement
        await asyncio.sleep(pause_s)


def best(runs: int, f: Callable[[], float]) -> float:
    return max(f() for _ in range(runs))


def encode_costs(rounds: int = 5) -> tuple[float, float]:
    """ns per trade payload, best of `rounds` over the same 20,000 trades: the mirror's
    generated encoder (`Route.encode`), and the way it replaced: a dict filled from the
    event's fields, then orjson. Both write the same bytes (checked)."""
    route = ROUTES[Trade]
    names = [f.name for f in dataclasses.fields(Trade) if f.name not in ("seq", "ts_recv")]
    getter = operator.attrgetter(*names)

    def filled(e: Trade, seq: int) -> bytes:
        payload: dict[str, object] = {
            "v": SCHEMA_VERSION, "type": route.name, "seq": seq, "ts_recv": e.ts_recv,
            "bus_seq": e.seq,
        }  # fmt: skip
        payload.update(zip(route.keys, getter(e), strict=True))
        return orjson.dumps(payload, default=str)

    events = trades(20_000)
    assert all(route.encode(e, i) == filled(e, i) for i, e in enumerate(events))

    def best_ns(encode: Callable[[Trade, int], bytes]) -> float:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for e in events:
                encode(e, 1)
            times.append((time.perf_counter_ns() - t0) / len(events))
        return min(times)

    return best_ns(route.encode), best_ns(filled)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    logs.setup("warning", "console")
    generated, filled = encode_costs()
    print("--- encode, a trade's payload (best of 5 over 20,000 trades)")
    print(f"generated encoder     : {generated:6.0f} ns")
    print(f"dict filled, orjson   : {filled:6.0f} ns  (the way it replaced)")
    emit(
        "mirror encode ns per trade", generated, "ns", filled, "dict filled from fields", "(lower)"
    )
    broker, port = start_broker()
    try:
        print(f"local mosquitto, payload {len(payloads(1)[0])} bytes, {len(SYMBOLS)} symbols")
        n1 = n // 5  # QoS 1 runs are slower; fewer messages keep the run short
        for qos, count in ((0, n), (1, n1)):
            print(f"--- QoS {qos}, {count} messages (best of 2)")
            a = best(2, lambda: asyncio.run(aiomqtt_await(port, count, qos)))  # noqa: B023
            p = best(2, lambda: paho_thread(port, count, qos))  # noqa: B023
            sub = Counter(port, f"{PREFIX}/md/#" if qos == 0 else f"{PREFIX}/fill", qos)
            events = trades(count) if qos == 0 else fills(count)
            m, mirror = asyncio.run(mirrored(port, events, qos))
            m2, _ = asyncio.run(mirrored(port, events, qos))
            got = sub.wait_for(2 * count)
            sub.stop()
            m = max(m, m2)
            st = mirror.stats()
            print(f"aiomqtt await publish : {a:9.0f} msg/s  (payloads encoded beforehand)")
            print(f"paho, own thread      : {p:9.0f} msg/s  (payloads encoded beforehand)")
            print(f"mirror, bus -> broker : {m:9.0f} events/s  (bus, queue, JSON and publish)")
            print(f"mirror / aiomqtt await: {m / a:.1f}x;  mirror / paho thread: {m / p:.2f}x")
            emit(f"mirror QoS {qos} events/s", m, "events/s", p, "paho, own thread", "(peer)")
            if qos == 0:
                print(f"subscriber got        : {len(got)} of {2 * count} (both mirror runs)")
            else:
                each_run = [orjson.loads(line)["seq"] for line in got]
                complete = sorted(each_run) == sorted([*range(1, count + 1)] * 2)
                print(
                    f"subscriber got        : {len(got)} of {2 * count}; every seq 1..{count}, twice: {complete}"
                )
            print(
                f"mirror drops/errors   : queue {st['queue_dropped']}, offline "
                f"{st['dropped_offline']}, spool {st['spool_dropped']}, errors {st['errors']}"
            )
        for offered in (20_000, 30_000):
            rate, stats, lag = asyncio.run(paced(port, offered, seconds))
            total = int(offered * seconds)
            print(
                f"--- offered {offered} trades/s for {seconds:.0f} s, 20 symbols (paced every 5 ms)"
            )
            print(
                f"published             : {stats['published_market']} of {total}, mean {rate:.0f}/s incl. the final flush"
            )
            print(f"dropped in the queue  : {stats['queue_dropped']} (goal at 20000/s: 0)")
            print(f"worst producer lag    : {lag * 1000:.1f} ms")
            emit(
                f"mirror dropped at {offered}/s",
                stats["queue_dropped"],
                "trades",
                None,
                "",
                "0 at 20000/s",
            )
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    main()
