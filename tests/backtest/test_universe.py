"""Condition search and run-time subscriptions in the backtest (engine/backtest/universe.py).

A daemon records its feed (`daemon.record`) against the simulator over real sockets while a
strategy watches a condition, subscribes to what enters it and buys it; `backtest --recording`
of that file runs the same strategy to the same `on_condition` calls and buys. Stores written
from hand-made recorded rows check the rest: a condition watched mid-run starts with the
members the recording had then; a symbol subscribed at run time is fed from the subscription's
time until its unsubscription, and only then."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.backtest.command import backtest_recording
from engine.backtest.run import Backtest
from engine.clock import KST
from engine.config import Config, SimConditionConfig, StrategyConfig
from engine.daemon import assemble
from engine.data.recorded import (
    ConditionListed,
    ConditionMembers,
    ImportCounts,
    Item,
    import_recording,
)
from engine.events import ConditionHit, Exchange, Trade
from engine.plugins import load_all
from engine.sim.simulator import Simulator
from tests.engine.conftest import engine_config, sim_config, write_strategy
from tests.integration.test_replay_market_state import market
from tests.support import until

pytestmark = pytest.mark.timeout(120)

MANUAL = (SimConditionConfig("0", "수동0", "manual"), SimConditionConfig("1", "수동1", "manual"))
FIRST, SECOND = "035420", "051910"

BUYER = """
import json

class Buyer(Strategy):
    def on_start(self):
        self.hits = []
        self.ready = set()
        self.bought = []

    def on_condition(self, hit):
        self.hits.append([hit.symbol, hit.condition_seq, hit.condition, hit.entered, hit.time])
        if hit.entered:
            self.subscribe(hit.symbol, data=("trades",))
        else:
            self.ready.discard(hit.symbol)

    def on_subscribed(self, symbol):
        self.ready.add(symbol)

    def on_trade(self, trade):
        if trade.symbol in self.ready:
            self.ready.discard(trade.symbol)
            self.bought.append(trade.symbol)
            self.buy(trade.symbol, 1, trade.price)

    def on_stop(self):
        with open(self.params["out"], "w") as f:
            json.dump({"hits": self.hits, "bought": self.bought}, f)
"""


def _buyer(tmp: Path, out: Path) -> StrategyConfig:
    return write_strategy(
        tmp, "buyer", BUYER, "Buyer", symbols=(), conditions=("수동0",), params={"out": str(out)}
    )


async def test_a_condition_buyer_gets_the_recorded_on_condition_calls_in_the_backtest(
    tmp_path: Path,
) -> None:
    recording = tmp_path / "feed.ndjson"
    live_out, bt_out = tmp_path / "live.json", tmp_path / "bt.json"
    (tmp_path / "s").mkdir()
    strat = _buyer(tmp_path / "s", live_out)
    async with Simulator(sim_config(control=True, conditions=MANUAL)) as live:
        live.conditions.set_members("0", [FIRST])
        cfg = engine_config(live, tmp_path / "state", (strat,))
        cfg = dataclasses.replace(
            cfg, daemon=dataclasses.replace(cfg.daemon, record=str(recording))
        )
        loaded, problems = load_all(cfg)
        assert problems == []
        async with AsyncExitStack() as stack:
            running = await assemble(cfg, stack, live.clock, loaded)
            try:
                inst: Any = running.trader.host.by_name["buyer"].instance
                await until(lambda: inst.bought == [FIRST], 20)
                await market(live, condition="0", members=[SECOND])
                await until(lambda: inst.bought == [FIRST, SECOND], 20)
            finally:
                await running.trader.stop(cancel_open=False, timeout_s=3.0)
    recorded = json.loads(live_out.read_text())
    # What was recorded is what the comparison is about: the member the search started
    # with (time 0), then SECOND entering and FIRST leaving as pushes (their HHMMSS).
    assert [h[:4] for h in recorded["hits"]] == [
        [FIRST, "0", "수동0", True],
        [SECOND, "0", "수동0", True],
        [FIRST, "0", "수동0", False],
    ]
    assert recorded["hits"][0][4] == 0
    assert recorded["hits"][1][4] > 0

    bt_strat = dataclasses.replace(strat, params={"out": str(bt_out)})
    bt_cfg = dataclasses.replace(cfg, strategies=(bt_strat,))
    today = datetime.now(KST).date()
    code = await asyncio.to_thread(
        backtest_recording,
        bt_cfg,
        recording,
        today - timedelta(days=1),
        today + timedelta(days=1),
        tmp_path / "out",
    )
    assert code == 0
    replayed = json.loads(bt_out.read_text())
    assert replayed["hits"] == recorded["hits"]
    assert replayed["bought"] == [FIRST, SECOND]
    orders = (tmp_path / "out" / "orders.csv").read_text()
    assert FIRST in orders
    assert SECOND in orders


# --- stores written from hand-made recorded rows ---------------------------------------------

DAY = date(2026, 3, 4)
CONFIGURED, JOINED = "005930", "000660"


def _ns(hh: int, mm: int, ss: int) -> int:
    return int(datetime.combine(DAY, time(hh, mm, ss), KST).timestamp()) * 1_000_000_000


def _trade(symbol: str, at: int, price: int) -> Trade:
    return Trade(symbol, Exchange.KRX, 0, price, 1, 0, 0, 0, 0, 0, 0, 0, None, ts_recv=at)


def _store(root: Path, items: Iterable[tuple[int, Item]]) -> None:
    counts = ImportCounts()
    import_recording(root, ((at, i, item) for i, (at, item) in enumerate(items)), counts)


def _config(tmp: Path, body: str, cls: str, **over: Any) -> Config:
    cfg = engine_config_free()
    strat = write_strategy(tmp, cls.lower(), body, cls, **over)
    return dataclasses.replace(
        cfg,
        strategies=(strat,),
        backtest=dataclasses.replace(cfg.backtest, kinds=("trades",)),
    )


def engine_config_free() -> Config:
    from engine import config

    return config.load(None, env={})


async def _run(cfg: Config, root: Path) -> Backtest:
    loaded, problems = load_all(cfg)
    assert problems == []
    bt = Backtest(cfg, loaded, root, DAY, DAY)
    await bt.run()
    return bt


SUBSCRIBER = """
class Sub(Strategy):
    def on_start(self):
        self.seen = []
        self.subscribed = []

    def on_trade(self, trade):
        self.seen.append((trade.symbol, trade.price))
        if trade.symbol == "005930" and trade.price == 70100:
            self.subscribe("000660", data=("trades",))
        if trade.symbol == "005930" and trade.price == 70300:
            self.unsubscribe("000660")

    def on_subscribed(self, symbol):
        self.subscribed.append(symbol)
"""


async def test_a_symbol_subscribed_at_run_time_is_fed_from_then_until_its_unsubscription(
    tmp_path: Path,
) -> None:
    _store(
        tmp_path / "store",
        [
            (_ns(9, 0, 0), _trade(CONFIGURED, _ns(9, 0, 0), 70_000)),
            (_ns(9, 0, 5), _trade(JOINED, _ns(9, 0, 5), 180_000)),  # before: never fed
            (_ns(9, 0, 10), _trade(CONFIGURED, _ns(9, 0, 10), 70_100)),  # subscribes
            (_ns(9, 0, 15), _trade(JOINED, _ns(9, 0, 15), 180_500)),
            (_ns(9, 0, 20), _trade(JOINED, _ns(9, 0, 20), 181_000)),
            (_ns(9, 0, 25), _trade(CONFIGURED, _ns(9, 0, 25), 70_200)),
            (_ns(9, 0, 30), _trade(CONFIGURED, _ns(9, 0, 30), 70_300)),  # unsubscribes
            (_ns(9, 0, 35), _trade(JOINED, _ns(9, 0, 35), 181_500)),  # after: never fed
            (_ns(9, 0, 40), _trade(CONFIGURED, _ns(9, 0, 40), 70_400)),
        ],
    )
    (tmp_path / "s").mkdir()
    cfg = _config(tmp_path / "s", SUBSCRIBER, "Sub", symbols=(CONFIGURED,))
    bt = await _run(cfg, tmp_path / "store")
    inst: Any = bt.host.by_name["sub"].instance
    assert inst.seen == [
        (CONFIGURED, 70_000),
        (CONFIGURED, 70_100),
        (JOINED, 180_500),
        (JOINED, 181_000),
        (CONFIGURED, 70_200),
        (CONFIGURED, 70_300),
        (CONFIGURED, 70_400),
    ]
    assert inst.subscribed == [JOINED]
    # Not fed at all (not only not routed): the engine's last price of it is the 09:00:20 one.
    assert bt.portfolio.last[JOINED] == 181_000
    assert bt.result.events == 7


WATCHER = """
class Late(Strategy):
    def on_start(self):
        self.hits = []
        self.listed = self.conditions()

    def on_trade(self, trade):
        if trade.price == 70100:
            self.watch_condition("seq:7")
        if trade.price == 70300:
            self.unwatch_condition("seq:7")

    def on_condition(self, hit):
        self.hits.append((hit.symbol, hit.condition_seq, hit.condition, hit.entered, hit.time))
"""


async def test_a_condition_watched_mid_run_starts_with_the_recorded_members_of_then(
    tmp_path: Path,
) -> None:
    a, b, c = "035420", "051910", "035720"
    _store(
        tmp_path / "store",
        [
            (_ns(8, 59, 0), ConditionListed("7", "돌파")),
            (_ns(8, 59, 0), ConditionListed("9", "")),
            (_ns(8, 59, 1), ConditionMembers("7", (a, b))),
            (_ns(9, 0, 0), _trade(CONFIGURED, _ns(9, 0, 0), 70_000)),
            (_ns(9, 0, 5), ConditionHit(a, "7", "", False, 90005)),
            (_ns(9, 0, 10), _trade(CONFIGURED, _ns(9, 0, 10), 70_100)),  # watches
            (_ns(9, 0, 15), ConditionHit(c, "7", "", True, 90015)),
            (_ns(9, 0, 16), ConditionHit(c, "7", "", True, 90016)),  # changes nothing
            (_ns(9, 0, 20), ConditionMembers("7", (b, a))),  # a search started again
            (_ns(9, 0, 25), _trade(CONFIGURED, _ns(9, 0, 25), 70_200)),
            (_ns(9, 0, 30), _trade(CONFIGURED, _ns(9, 0, 30), 70_300)),  # stops watching
            (_ns(9, 0, 35), ConditionHit(b, "7", "", False, 90035)),
            (_ns(9, 0, 40), _trade(CONFIGURED, _ns(9, 0, 40), 70_400)),
        ],
    )
    (tmp_path / "s").mkdir()
    cfg = _config(tmp_path / "s", WATCHER, "Late", symbols=(CONFIGURED,))
    bt = await _run(cfg, tmp_path / "store")
    inst: Any = bt.host.by_name["late"].instance
    # The seq stands for the name the recording never gave.
    assert inst.listed == [("7", "돌파"), ("9", "9")]
    assert inst.hits == [
        (b, "7", "돌파", True, 0),
        (c, "7", "돌파", True, 90015),
        (a, "7", "돌파", True, 0),
        (c, "7", "돌파", False, 0),
    ]
    assert bt.universe_feed.duplicates == 1


TIMED = """
class Timed(Strategy):
    def on_start(self):
        self.seen = []

    def on_trade(self, trade):
        self.seen.append((trade.symbol, trade.price))
        if trade.price == 70100:
            self.set_timer("first", 2.0, repeat=False)
        if trade.price == 181000:
            self.set_timer("second", 3.0, repeat=False)

    def on_timer(self, name):
        self.subscribe("000660" if name == "first" else "035720", data=("trades",))
"""


async def test_a_subscription_from_a_timer_is_fed_before_the_data_point_the_timer_preceded(
    tmp_path: Path,
) -> None:
    third = "035720"
    _store(
        tmp_path / "store",
        [
            (_ns(9, 0, 10), _trade(CONFIGURED, _ns(9, 0, 10), 70_100)),  # timer for 09:00:12
            (_ns(9, 0, 11), _trade(JOINED, _ns(9, 0, 11), 180_000)),  # before it: never fed
            (_ns(9, 0, 15), _trade(JOINED, _ns(9, 0, 15), 180_500)),
            (_ns(9, 0, 20), _trade(JOINED, _ns(9, 0, 20), 181_000)),  # timer for 09:00:23
            (_ns(9, 0, 21), _trade(third, _ns(9, 0, 21), 42_000)),  # before it: never fed
            (_ns(9, 0, 25), _trade(third, _ns(9, 0, 25), 42_050)),
            (_ns(9, 0, 30), _trade(CONFIGURED, _ns(9, 0, 30), 70_200)),
        ],
    )
    (tmp_path / "s").mkdir()
    cfg = _config(tmp_path / "s", TIMED, "Timed", symbols=(CONFIGURED,))
    bt = await _run(cfg, tmp_path / "store")
    inst: Any = bt.host.by_name["timed"].instance
    # The data point at 09:00:30 was read before either timer fired: the joined data of
    # 09:00:15..25 still comes first, in time order.
    assert inst.seen == [
        (CONFIGURED, 70_100),
        (JOINED, 180_500),
        (JOINED, 181_000),
        (third, 42_050),
        (CONFIGURED, 70_200),
    ]
