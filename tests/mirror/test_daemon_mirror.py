"""The daemon with an `[mqtt]` table: its orders and fills reach a real broker, and its status
says online while it runs and offline after a clean stop."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from engine import config, daemon
from engine.config import MqttConfig
from engine.plugins import load_all
from tests.engine.conftest import SYMBOL, write_strategy
from tests.mirror.conftest import Broker, subscribed
from tests.support import until

BUYS_ONCE = """
class BuysOnce(Strategy):
    def on_start(self):
        self.order = None

    def on_trade(self, trade):
        if self.order is None and trade.best_ask:
            self.order = self.buy(trade.symbol, 2, trade.best_ask)
"""


async def test_the_daemon_mirrors_its_orders_and_fills_and_says_offline_when_stopped(
    broker: Broker, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "once", BUYS_ONCE, "BuysOnce")
    base = config.load(None, env={})
    cfg = dataclasses.replace(
        base,
        sim=dataclasses.replace(base.sim, port=0, events_per_s=200.0),
        daemon=dataclasses.replace(base.daemon, state_dir=str(tmp_path / "state")),
        mqtt=MqttConfig(host=broker.host, port=broker.port, prefix="test/acct"),
        strategies=(sc,),
    )
    loaded, problems = load_all(cfg)
    assert not problems
    stop = asyncio.Event()
    async with subscribed(broker, "test/acct/#") as sub:
        task = asyncio.create_task(daemon.run(cfg, stop=stop, strategies=loaded))
        try:
            await until(lambda: any(b.get("state") == "filled" for b in sub.of_bodies("order")), 15)
            await until(lambda: sub.of_type("fill"), 5)
        finally:
            stop.set()
        assert await asyncio.wait_for(task, 30) == daemon.EXIT_OK
        await until(lambda: any(b["state"] == "offline" for b in sub.on("test/acct/status")), 5)
    orders = [h for h in sub.heard if h.topic.startswith("test/acct/order/")]
    assert {h.qos for h in orders} == {1}
    states = [h.body["state"] for h in orders]
    assert states[0] == "submitting"
    assert states[-1] == "filled"
    seqs = [h.body["seq"] for h in orders]
    assert seqs == list(range(1, len(seqs) + 1))  # one topic per order, numbered without a gap
    fills = sub.of_type("fill")
    assert sum(f.body["qty"] for f in fills) == 2
    assert all(f.body["symbol"] == SYMBOL and f.body["strategy"] == "once" for f in fills)
    assert all(isinstance(f.body["price"], int) for f in fills)
    statuses = [b["state"] for b in sub.on("test/acct/status")]
    assert statuses[0] == "online"
    assert statuses[-1] == "offline"
