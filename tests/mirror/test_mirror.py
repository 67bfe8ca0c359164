"""The mirror against a real Mosquitto: what subscribers receive, a broker killed and back, a
full spool, the last will of a killed daemon, a clean stop, and commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog

import engine.mirror as mirror_mod
from engine import config
from engine.bus import EventBus
from engine.clock import SYSTEM_CLOCK, ManualClock
from engine.config import MqttConfig
from engine.events import Exchange, Fill, OrderBook, OrderState, OrderUpdate, Quote, Side, Trade
from engine.mirror import Mirror, engine_snapshots
from engine.mirror_schema import ENVELOPE, ROUTES
from engine.sim.simulator import Simulator
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.mirror.conftest import (
    Broker,
    advance_until,
    free_port,
    publish,
    subscribed,
)
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "kiwoom/test"


def mqtt_config(broker: Broker, **over: Any) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, prefix=PREFIX, **over)


@contextlib.asynccontextmanager
async def running(mirror: Mirror) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(mirror.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def capture_logs(monkeypatch: pytest.MonkeyPatch) -> structlog.testing.LogCapture:
    # The module's logger itself: another test may have configured structlog with cached
    # loggers, which structlog.testing.capture_logs() cannot reach.
    cap = structlog.testing.LogCapture()
    capturing = structlog.wrap_logger(None, processors=[cap], wrapper_class=structlog.BoundLogger)
    monkeypatch.setattr(mirror_mod, "log", capturing)
    return cap


def trade(i: int) -> Trade:
    return Trade(SYMBOL, Exchange.KRX, 90000 + i, 70_000 + i, i, 1000 * i, 0, 0, 0, 0, 0, 0)


def order(i: int) -> OrderUpdate:
    return OrderUpdate(
        "c-1", "s", SYMBOL, Side.BUY, 100, 70_000, OrderState.PARTIALLY_FILLED,
        OrderState.ACCEPTED, "0000001", i, 70_000, fill_amount=70_000 * i,
    )  # fmt: skip


def fill(i: int) -> Fill:
    return Fill("c-1", "s", "0000001", f"f{i}", SYMBOL, Side.BUY, 1, 70_000, 0, 0)


def seqs(bodies: list[dict[str, Any]]) -> list[int]:
    """The distinct seqs heard, in order (QoS 1 is at least once: a resend may repeat one)."""
    return sorted({b["seq"] for b in bodies})


# --- what subscribers receive ----------------------------------------------------------------

BUYS_WHEN_TOLD = """
class BuysWhenTold(Strategy):
    def on_start(self):
        self.go = False
        self.order = None

    def on_trade(self, trade):
        if self.go and self.order is None and trade.best_ask:
            self.order = self.buy(trade.symbol, 3, trade.best_ask)
"""


async def test_a_subscriber_receives_trades_orders_and_fills_of_a_running_engine(
    broker: Broker, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "told", BUYS_WHEN_TOLD, "BuysWhenTold")
    async with (
        Simulator(sim_config()) as sim,
        running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api),
    ):
        queue = trader.bus.attach(Mirror.queue())
        mirror = Mirror(
            mqtt_config(broker),
            queue,
            sim.clock,
            account=sim.state.config.account_no,
            snapshots=engine_snapshots(trader),
        )
        async with subscribed(broker, f"{PREFIX}/#") as sub:
            async with running(mirror):
                await until(lambda: mirror.connected, 10)
                strat = trader.host.by_name["told"].instance
                strat.go = True
                await until(
                    lambda: strat.order is not None and strat.order.state is OrderState.FILLED, 15
                )
                cid = strat.order.client_id
                order_topic = f"{PREFIX}/order/{cid}"
                await until(lambda: any(b["state"] == "filled" for b in sub.on(order_topic)), 10)
                await until(lambda: sum(b["qty"] for b in sub.on(f"{PREFIX}/fill")) == 3, 10)
                await until(lambda: any(
                    b["positions"].get(SYMBOL, {}).get("qty") == 3 for b in sub.on(f"{PREFIX}/positions")
                ), 10)  # fmt: skip
            status = f"{PREFIX}/status"
            await until(lambda: sub.on(status)[-1]["state"] == "offline", 10)

    # Every payload: the envelope, then exactly the documented fields.
    for heard in sub.heard:
        body = heard.body
        assert body["v"] == 1
        if body["type"] in ("status", "positions", "risk_state"):
            assert heard.topic == f"{PREFIX}/{body['type']}"
            continue
        route = next(r for r in ROUTES.values() if r.name == body["type"])
        assert list(body) == [*ENVELOPE, *route.keys], body["type"]
        assert type(body["ts_recv"]) is int
        assert body["ts_recv"] > 0
        assert type(body["bus_seq"]) is int
        assert body["bus_seq"] > 0

    trades = sub.on(f"{PREFIX}/md/trade/{SYMBOL}")
    assert trades, "no trade mirrored"
    assert [b["seq"] for b in trades] == list(range(1, len(trades) + 1))
    assert all(type(b["price"]) is int and b["price"] > 0 for b in trades)
    assert {h.qos for h in sub.heard if h.topic.startswith(f"{PREFIX}/md/")} == {0}

    updates = sub.on(order_topic)
    assert [b["seq"] for b in updates] == list(range(1, len(updates) + 1))
    assert updates[0]["prev_state"] == "new"
    assert updates[-1]["state"] == "filled"
    assert {(b["client_id"], b["symbol"], b["side"], b["qty"], b["strategy"]) for b in updates} == {
        (cid, SYMBOL, "buy", 3, "told")
    }
    assert updates[-1]["filled_qty"] == 3
    assert updates[-1]["fill_amount"] == sum(
        b["qty"] * b["price"] for b in sub.on(f"{PREFIX}/fill")
    )
    fills = sub.on(f"{PREFIX}/fill")
    assert all(b["client_id"] == cid and type(b["price"]) is int for b in fills)
    assert {h.qos for h in sub.heard if h.topic in (order_topic, f"{PREFIX}/fill")} == {1}

    statuses = [h for h in sub.heard if h.topic == f"{PREFIX}/status"]
    assert statuses[0].body["state"] == "online"
    assert statuses[-1].body["state"] == "offline"
    assert statuses[-1].body["reason"] == "stopped"
    risk = sub.on(f"{PREFIX}/risk_state")[-1]
    assert risk["state"] == "active"
    assert risk["counters"]["orders_sent"] >= 1


# --- the broker goes away ----------------------------------------------------------------------


async def test_broker_killed_and_restarted_qos1_topics_have_no_gap_and_drops_are_counted(
    broker: Broker,
) -> None:
    bus = EventBus(SYSTEM_CLOCK)
    queue = bus.attach(Mirror.queue())
    # The mirror's backoff sleeps on this clock: it reconnects only once the test says so,
    # after the subscriber is back on the restarted broker.
    clock = ManualClock()
    cfg = mqtt_config(broker, reconnect_min_s=5.0, reconnect_max_s=5.0, keepalive_s=5)
    mirror = Mirror(cfg, queue, clock, account="x")
    fills_topic, order_topic = f"{PREFIX}/fill", f"{PREFIX}/order/c-1"
    async with subscribed(broker, f"{PREFIX}/#") as sub, running(mirror):
        await until(lambda: mirror.connected)
        for i in range(1, 6):
            bus.publish(trade(i))
            bus.publish(order(i))
            bus.publish(fill(i))
        await until(lambda: len(sub.on(fills_topic)) == 5 and mirror.stats()["spooled"] == 0)

        # Frozen first: the next orders and fills go out and are never acknowledged...
        broker.freeze()
        for i in range(6, 9):
            bus.publish(order(i))
            bus.publish(fill(i))
        await until(lambda: mirror.stats()["in_flight"] == 6)
        # ...then killed: those must go again after the restart.
        broker.kill()
        await until(
            lambda: not mirror.connected and sub.sessions == 1 and not sub.subscribed.is_set()
        )
        for i in range(6, 16):  # trading goes on while the broker is down
            bus.publish(trade(i))
            if i >= 9:
                bus.publish(order(i))
                bus.publish(fill(i))
        await until(lambda: mirror.stats()["spooled"] == 20)
        assert mirror.stats()["in_flight"] == 0
        assert mirror.stats()["dropped_offline"] == 10

        await broker.start()
        await until(lambda: sub.sessions == 2, 10)
        await advance_until(clock, lambda: mirror.connected)
        await until(lambda: seqs(sub.on(fills_topic)) == list(range(1, 16)), 10)
        await until(lambda: seqs(sub.on(order_topic)) == list(range(1, 16)), 10)
        await until(lambda: mirror.stats()["spooled"] == 0)

        stats = mirror.stats()
        assert stats["reconnects"] == 1
        assert stats["published_account"] >= 30
        assert stats["spool_dropped"] == 0
        # The fills that waited out the outage arrive in their order.
        after = [b["fill_no"] for b in sub.on(fills_topic) if b["seq"] > 5]
        assert after[:10] == [f"f{i}" for i in range(6, 16)]
        # The market data of the outage was dropped and counted, not queued up.
        heard_trades = seqs(sub.on(f"{PREFIX}/md/trade/{SYMBOL}"))
        assert heard_trades == [1, 2, 3, 4, 5]
        bus.publish(trade(16))
        await until(lambda: seqs(sub.on(f"{PREFIX}/md/trade/{SYMBOL}"))[-1] == 6)


async def test_no_broker_at_start_the_spool_keeps_the_newest_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture_logs(monkeypatch)
    broker = Broker(tmp_path, free_port())  # not started yet
    bus = EventBus(SYSTEM_CLOCK)
    clock = ManualClock()
    cfg = mqtt_config(broker, spool_size=10, reconnect_min_s=5.0, reconnect_max_s=5.0)
    mirror = Mirror(cfg, bus.attach(Mirror.queue()), clock, account="x")
    async with running(mirror):
        await until(lambda: mirror.stats()["connect_failures"] == 1)
        warned = [e for e in cap.entries if e["event"] == "mirror_broker_unreachable"]
        assert [(e["log_level"], e["port"], e["attempt"]) for e in warned] == [
            ("warning", broker.port, 1)
        ]
        for i in range(1, 26):
            bus.publish(fill(i))
        await until(lambda: mirror.stats()["spool_dropped"] == 15)
        assert mirror.stats()["spooled"] == 10
        await broker.start()
        try:
            async with subscribed(broker, f"{PREFIX}/#") as sub:
                await advance_until(clock, lambda: mirror.connected)
                await until(lambda: len(seqs(sub.on(f"{PREFIX}/fill"))) == 10)
                assert seqs(sub.on(f"{PREFIX}/fill")) == list(range(16, 26))
        finally:
            broker.stop()


# --- the daemon goes away ----------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from engine.bus import EventBus
    from engine.clock import SYSTEM_CLOCK
    from engine.config import MqttConfig
    from engine.mirror import Mirror

    async def main():
        cfg = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), prefix=sys.argv[2])
        bus = EventBus(SYSTEM_CLOCK)
        await Mirror(cfg, bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x").run()

    asyncio.run(main())
    """
)


async def test_the_last_will_says_offline_when_the_daemon_is_sigkilled(broker: Broker) -> None:
    async with subscribed(broker, f"{PREFIX}/status") as sub:
        child = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the test polls
            [sys.executable, "-c", CHILD, str(broker.port), PREFIX],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await until(lambda: any(b["state"] == "online" for b in sub.on(f"{PREFIX}/status")), 15)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            await until(
                lambda: [b["state"] for b in sub.on(f"{PREFIX}/status")][-1:] == ["offline"], 10
            )
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    online, offline = sub.on(f"{PREFIX}/status")
    assert offline["reason"] == "lost"
    assert offline["seq"] == online["seq"] + 1
    assert offline["started_ns"] == online["started_ns"]
    assert offline["connection"] == online["connection"] == 1


async def test_a_clean_stop_flushes_what_is_queued_then_says_offline(broker: Broker) -> None:
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(mqtt_config(broker), bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
    async with subscribed(broker, f"{PREFIX}/#") as sub:
        async with running(mirror):
            await until(lambda: mirror.connected)
            for i in range(1, 501):
                bus.publish(fill(i))
        # run() was cancelled with the fills still queued: all reached the broker first.
        assert mirror.stats()["spooled"] == 0
        assert mirror.stats()["published_account"] == 500
        await until(
            lambda: [b["state"] for b in sub.on(f"{PREFIX}/status")][-1:] == ["offline"], 10
        )
        assert seqs(sub.on(f"{PREFIX}/fill")) == list(range(1, 501))
    assert sub.on(f"{PREFIX}/status")[-1]["reason"] == "stopped"
    assert not mirror.connected


async def test_a_clean_stop_flushes_the_batch_the_pump_holds_too(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus(SYSTEM_CLOCK)
    queue = bus.attach(Mirror.queue())
    mirror = Mirror(mqtt_config(broker), queue, SYSTEM_CLOCK, account="x")
    async with subscribed(broker, f"{PREFIX}/#") as sub:
        async with running(mirror):
            await until(lambda: mirror.connected)
            # The pump takes a small batch off the queue and lingers for more: the stop comes
            # while it holds them (a long linger makes that moment last).
            monkeypatch.setattr(mirror_mod, "LINGER_S", 60.0)
            for i in range(1, 4):
                bus.publish(fill(i))
            await until(lambda: queue.depth == 0)
        assert mirror.stats()["published_account"] == 3
        await until(
            lambda: [b["state"] for b in sub.on(f"{PREFIX}/status")][-1:] == ["offline"], 10
        )
        assert seqs(sub.on(f"{PREFIX}/fill")) == [1, 2, 3]


async def test_a_stop_with_the_broker_frozen_ends_within_the_flush_timeout(broker: Broker) -> None:
    bus = EventBus(SYSTEM_CLOCK)
    cfg = mqtt_config(broker, flush_timeout_s=0.5)
    mirror = Mirror(cfg, bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
    task = asyncio.create_task(mirror.run())
    try:
        await until(lambda: mirror.connected)
        broker.freeze()
        for i in range(1, 4):
            bus.publish(fill(i))
        await until(lambda: mirror.stats()["in_flight"] == 3)
        # Market data until the socket's buffers are full: even the DISCONNECT cannot go out.
        for i in range(100):
            for j in range(1000):
                bus.publish(trade(1000 * i + j))
            await asyncio.sleep(0)
        assert mirror.stats()["queue_dropped"] > 0
        task.cancel()
        # Bounded: the flush timeout, then a disconnect that gives up at once.
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        assert mirror.stats()["spooled"] == 3  # undelivered, logged; the journal has them
        assert not mirror.connected
    finally:
        task.cancel()
        broker.kill()


# --- commands ----------------------------------------------------------------------------------


def recorder() -> tuple[list[tuple[str, dict[str, Any]]], Callable[[str, Mapping[str, Any]], None]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    return calls, lambda name, args: calls.append((name, dict(args)))


async def test_commands_reach_on_command_when_enabled_and_malformed_ones_are_rejected(
    broker: Broker,
) -> None:
    # A halt someone left retained on the broker must not halt a daemon that connects later.
    await publish(broker, f"{PREFIX}/cmd/halt", b'{"reason": "yesterday"}', retain=True)
    calls, on_command = recorder()
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(
        mqtt_config(broker, commands_enabled=True),
        bus.attach(Mirror.queue()),
        SYSTEM_CLOCK,
        account="x",
        on_command=on_command,
    )
    async with running(mirror):
        await until(lambda: mirror.stats()["commands_rejected"] == 1, 10)
        assert calls == []
        await publish(broker, f"{PREFIX}/cmd/halt", b'{"reason": "risk desk"}')
        await until(lambda: len(calls) == 1)
        await publish(broker, f"{PREFIX}/cmd/resume", b"please")
        await publish(broker, f"{PREFIX}/cmd/resume", b'{"reason": "ok", "force": true}')
        await until(lambda: mirror.stats()["commands_rejected"] == 3)
        await publish(broker, f"{PREFIX}/cmd/resume", b"{}")
        await until(lambda: len(calls) == 2)
    assert calls == [("halt", {"reason": "risk desk"}), ("resume", {"reason": "mqtt"})]
    assert mirror.stats()["commands_accepted"] == 2
    assert re.search(rf"{mirror.client_id} 1 {PREFIX}/cmd/halt", broker.log_text())


async def test_commands_are_ignored_when_disabled(broker: Broker) -> None:
    calls, on_command = recorder()
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(
        mqtt_config(broker), bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x",
        on_command=on_command,
    )  # fmt: skip
    async with subscribed(broker, f"{PREFIX}/fill") as sub, running(mirror):
        await until(lambda: mirror.connected)
        await publish(broker, f"{PREFIX}/cmd/halt", b'{"reason": "x"}')
        bus.publish(fill(1))  # a round trip through the mirror after the command
        await until(lambda: len(sub.on(f"{PREFIX}/fill")) == 1)
    assert calls == []
    assert mirror.stats()["commands_accepted"] == mirror.stats()["commands_rejected"] == 0
    assert mirror.client_id in broker.log_text()
    assert "/cmd/" not in broker.log_text()  # the mirror never subscribed there


def readme_acl() -> str:
    """The Mosquitto ACL README.md "Commands" shows, as it is written there."""
    found = re.search(r"```\n(# the daemon.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert found, "README.md shows no ACL"
    return found.group(1)


async def test_the_readme_acl_lets_the_operator_command_and_not_a_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = {"kiwoom-engine": "engine-pw-8f3a1c9d2e", "ops": "ops-pw", "dashboard": "dash-pw"}
    broker = Broker(tmp_path, passwords=passwords, acl=readme_acl())
    await broker.start()
    cap = capture_logs(monkeypatch)
    try:
        cfg_file = tmp_path / "c.toml"
        cfg_file.write_text(
            f'[mqtt]\nport = {broker.port}\nusername = "kiwoom-engine"\n'
            'prefix = "kiwoom/5012345610"\ncommands_enabled = true\n'
        )
        cfg = config.load(cfg_file, env={"KIWOOM_MQTT_PASSWORD": passwords["kiwoom-engine"]})
        assert cfg.mqtt is not None
        calls, on_command = recorder()
        bus = EventBus(SYSTEM_CLOCK)
        mirror = Mirror(
            cfg.mqtt,
            bus.attach(Mirror.queue()),
            SYSTEM_CLOCK,
            account="5012345610",
            on_command=on_command,
        )
        topic = "kiwoom/5012345610/cmd/halt"
        async with subscribed(
            broker, "kiwoom/5012345610/#", username="dashboard", password="dash-pw"
        ) as sub:
            async with running(mirror):
                await until(lambda: mirror.connected)
                bus.publish(fill(1))
                await until(lambda: len(sub.on("kiwoom/5012345610/fill")) == 1)
                for user in ("dashboard", "ops"):
                    async with aiomqtt.Client(
                        broker.host, broker.port, username=user, password=passwords[user]
                    ) as c:
                        await c.publish(topic, f'{{"reason": "{user}"}}'.encode(), qos=1)
                await until(lambda: len(calls) == 1)
                bus.publish(fill(2))
                await until(lambda: len(sub.on("kiwoom/5012345610/fill")) == 2)
            assert calls == [("halt", {"reason": "ops"})]
    finally:
        broker.stop()
    logged = repr(cap.entries) + broker.log_text()
    assert "engine-pw-8f3a1c9d2e" not in logged
    assert any(e["event"] == "mirror_connected" for e in cap.entries)


async def test_market_data_still_flows_through_paho_publish_without_its_write_queue(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fallback for a paho release without the private write queue (engine/mirror.py).
    monkeypatch.setattr(mirror_mod, "_RAW_QUEUE", False)
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(mqtt_config(broker), bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
    async with subscribed(broker, f"{PREFIX}/md/#") as sub, running(mirror):
        await until(lambda: mirror.connected)
        for i in range(1, 301):
            bus.publish(trade(i))
        await until(lambda: len(sub.heard) == 300)
    assert [h.body["seq"] for h in sub.heard] == list(range(1, 301))
    assert [h.body["price"] for h in sub.heard] == [70_000 + i for i in range(1, 301)]


async def test_quotes_and_books_share_their_topic_and_its_seq(broker: Broker) -> None:
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(mqtt_config(broker), bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
    topic = f"{PREFIX}/md/quote/{SYMBOL}"
    async with subscribed(broker, f"{PREFIX}/md/#") as sub, running(mirror):
        await until(lambda: mirror.connected)
        for i in range(1, 4):
            bus.publish(Quote(SYMBOL, Exchange.KRX, 70_100 + i, 70_000))
            # The queue keeps the newest quote and book per symbol: let each reach the broker.
            await until(lambda i=i: len(sub.on(topic)) == 2 * i - 1)
            bus.publish(
                OrderBook(SYMBOL, Exchange.KRX, 90000, ((70_100, i),), ((70_000, 1),), i, 1)
            )
            await until(lambda i=i: len(sub.on(topic)) == 2 * i)
    heard = sub.on(topic)
    assert [b["type"] for b in heard] == ["quote", "book"] * 3
    assert [b["seq"] for b in heard] == list(range(1, 7))


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_to_a_broker_checked_against_ca_file(tmp_path: Path) -> None:
    # A self-signed certificate for 127.0.0.1 is the CA; the subscriber uses a plain listener.
    cert, key = self_signed(tmp_path, "broker")
    tls_port = free_port()
    broker = Broker(
        tmp_path,
        extra=(f"listener {tls_port} 127.0.0.1", f"certfile {cert}", f"keyfile {key}"),
    )
    await broker.start()
    try:
        bus = EventBus(SYSTEM_CLOCK)
        cfg = MqttConfig(port=tls_port, prefix=PREFIX, tls=True, ca_file=str(cert))
        mirror = Mirror(cfg, bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
        async with subscribed(broker, f"{PREFIX}/#") as sub, running(mirror):
            await until(lambda: mirror.connected, 10)
            for i in range(1, 2001):
                bus.publish(trade(i))
            bus.publish(fill(1))
            await until(lambda: len(sub.on(f"{PREFIX}/fill")) == 1, 10)
            await until(lambda: len(sub.on(f"{PREFIX}/md/trade/{SYMBOL}")) == 2000, 10)
        assert seqs(sub.on(f"{PREFIX}/md/trade/{SYMBOL}")) == list(range(1, 2001))
        assert "New client connected from 127.0.0.1" in broker.log_text()
    finally:
        broker.stop()
    # A CA that did not sign the broker's certificate: refused, retried, never connected.
    other, _ = self_signed(tmp_path, "other")
    await broker.start()
    try:
        cfg = MqttConfig(port=tls_port, prefix=PREFIX, tls=True, ca_file=str(other))
        bus = EventBus(SYSTEM_CLOCK)
        clock = ManualClock()
        mirror = Mirror(cfg, bus.attach(Mirror.queue()), clock, account="x")
        async with running(mirror):
            await until(lambda: mirror.stats()["connect_failures"] == 1, 10)
            assert not mirror.connected
    finally:
        broker.stop()


async def test_messages_spooled_while_the_broker_is_down_and_lost_at_shutdown_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture_logs(monkeypatch)
    broker = Broker(tmp_path, free_port())  # never started: the broker is down throughout
    bus = EventBus(SYSTEM_CLOCK)
    cfg = mqtt_config(broker, spool_size=10, reconnect_min_s=30.0, reconnect_max_s=30.0)
    mirror = Mirror(cfg, bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
    async with running(mirror):
        await until(lambda: mirror.stats()["connect_failures"] == 1)
        for i in range(1, 15):
            bus.publish(fill(i))
        await until(lambda: mirror.stats()["spool_dropped"] == 4)
        for i in range(15, 18):  # still queued, not yet spooled, when the stop comes
            bus.publish(fill(i))
    lost = [e for e in cap.entries if e["event"] == "mirror_stopped_with_spool"]
    assert [(e["undelivered"], e["dropped_earlier"]) for e in lost] == [(13, 4)]


async def test_a_batch_the_pump_holds_at_a_stop_with_the_broker_down_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture_logs(monkeypatch)
    broker = Broker(tmp_path, free_port())  # never started: the broker is down throughout
    bus = EventBus(SYSTEM_CLOCK)
    queue = bus.attach(Mirror.queue())
    cfg = mqtt_config(broker, spool_size=10, reconnect_min_s=30.0, reconnect_max_s=30.0)
    mirror = Mirror(cfg, queue, SYSTEM_CLOCK, account="x")
    async with running(mirror):
        await until(lambda: mirror.stats()["connect_failures"] == 1)
        for i in range(1, 15):
            bus.publish(fill(i))
        await until(lambda: mirror.stats()["spool_dropped"] == 4)
        # Taken off the queue by the pump, which lingers for more: neither queued nor spooled
        # when the stop comes (a long linger makes that moment last).
        monkeypatch.setattr(mirror_mod, "LINGER_S", 60.0)
        for i in range(15, 18):
            bus.publish(fill(i))
        await until(lambda: queue.depth == 0)
    lost = [e for e in cap.entries if e["event"] == "mirror_stopped_with_spool"]
    assert [(e["undelivered"], e["dropped_earlier"]) for e in lost] == [(13, 4)]


async def test_clearing_a_retained_command_does_not_run_it(broker: Broker) -> None:
    calls, on_command = recorder()
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(
        mqtt_config(broker, commands_enabled=True),
        bus.attach(Mirror.queue()),
        SYSTEM_CLOCK,
        account="x",
        on_command=on_command,
    )
    async with running(mirror):
        await until(lambda: mirror.connected)
        # The operator's `mosquitto_pub -r -n -t .../cmd/halt`: an empty retained message,
        # which the broker forwards to the connected mirror without the retain flag.
        await publish(broker, f"{PREFIX}/cmd/halt", b"", retain=True)
        await until(lambda: mirror.stats()["commands_rejected"] == 1, 10)
        await publish(broker, f"{PREFIX}/cmd/resume", b'{"reason": "after"}')
        await until(lambda: len(calls) == 1)
    assert calls == [("resume", {"reason": "after"})]


def update(cid: str, state: OrderState, prev: OrderState) -> OrderUpdate:
    return OrderUpdate(
        cid, "s", SYMBOL, Side.BUY, 1, 70_000, state, prev, f"n-{cid}", 0, 0
    )  # fmt: skip


async def test_the_seq_of_ended_orders_topics_is_kept_for_a_window_only(broker: Broker) -> None:
    # Issue 14 item 24: one `order/<client_id>` topic per order; its seq was kept all day.
    bus = EventBus(SYSTEM_CLOCK)
    mirror = Mirror(mqtt_config(broker), bus.attach(Mirror.queue()), SYSTEM_CLOCK, account="x")
    mirror.ended_topics_kept = 3
    async with subscribed(broker, f"{PREFIX}/order/#") as sub, running(mirror):
        await until(lambda: mirror.connected)
        bus.publish(update("open", OrderState.ACCEPTED, OrderState.SUBMITTING))
        for i in range(8):
            bus.publish(update(f"c{i}", OrderState.ACCEPTED, OrderState.SUBMITTING))
            bus.publish(update(f"c{i}", OrderState.FILLED, OrderState.ACCEPTED))
        await until(lambda: len(sub.on(f"{PREFIX}/order/c7")) == 2)
        # A late update of a kept ended order makes it the newest of the window.
        bus.publish(update("c5", OrderState.CANCELED, OrderState.FILLED))
        bus.publish(update("c8", OrderState.REJECTED, OrderState.SUBMITTING))
        await until(lambda: len(sub.on(f"{PREFIX}/order/c8")) == 1)
    orders = {t.removeprefix(f"{PREFIX}/order/") for t in mirror._seq if "/order/" in t}
    assert orders == {"open", "c7", "c5", "c8"}
    assert [b["seq"] for b in sub.on(f"{PREFIX}/order/c5")] == [1, 2, 3]
    assert [b["seq"] for b in sub.on(f"{PREFIX}/order/open")] == [1]
