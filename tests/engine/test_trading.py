"""The engine end to end on the simulator: strategies trade, orders settle, positions agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.events import OrderState, Side
from engine.sim.simulator import Simulator
from tests.engine.conftest import OTHER, SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

S = OrderState

BUY_THEN_SELL = """
class BuyThenSell(Strategy):
    def on_start(self):
        self.bought = None
        self.sold = None
        self.fills = []

    def on_trade(self, trade):
        if self.bought is None and trade.best_ask:
            self.bought = self.buy(trade.symbol, 3, trade.best_ask)

    def on_fill(self, fill):
        self.fills.append(fill)
        if fill.side is Side.BUY and self.bought.state is OrderState.FILLED and self.sold is None:
            self.sold = self.sell(fill.symbol, 1, None)
"""


@pytest.fixture
async def sim() -> Simulator:
    async with Simulator(sim_config()) as s:
        yield s  # type: ignore[misc]


async def test_a_strategy_buys_and_sells_and_positions_equal_the_brokers(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "bts", BUY_THEN_SELL, "BuyThenSell")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, api):
        strat = trader.host.by_name["bts"].instance
        await until(lambda: strat.sold is not None and strat.sold.state is S.FILLED, 10)
        assert strat.bought.filled_qty == 3
        assert [f.qty for f in strat.fills if f.side is Side.BUY]
        assert sum(f.qty for f in strat.fills if f.side is Side.BUY) == 3
        assert sum(f.qty for f in strat.fills if f.side is Side.SELL) == 1
        holdings = {h.symbol: h.qty for h in (await api.account_balance()).holdings}
        assert holdings[SYMBOL] == 2
        assert trader.portfolio.position_qty(SYMBOL) == 2
        assert strat.position(SYMBOL) == 2
        cash = await api.cash_balance()
        assert trader.portfolio.cash == cash.orderable
        assert trader.oms.stats.illegal_transitions == 0
        assert trader.bus.handler_errors == 0
        # Every fill got to the journal.
        await until(lambda: trader.journal_queue.depth == 0)
        assert trader.journal.strategy_positions() == {"bts": {SYMBOL: 2}}


RAISES = """
class Raises(Strategy):
    def on_trade(self, trade):
        raise RuntimeError("bad strategy")
"""

TRADES_ONCE = """
class TradesOnce(Strategy):
    def on_start(self):
        self.order = None
        self.trades = 0

    def on_trade(self, trade):
        self.trades += 1
        if self.order is None and self.trades > 30 and trade.best_ask:
            self.order = self.buy(trade.symbol, 1, trade.best_ask)
"""


async def test_a_strategy_that_raises_on_every_tick_is_disabled_and_another_keeps_trading(
    sim: Simulator, tmp_path: Path
) -> None:
    bad = write_strategy(tmp_path, "bad", RAISES, "Raises", max_errors=5)
    good = write_strategy(tmp_path, "good", TRADES_ONCE, "TradesOnce")
    async with running_engine(sim, tmp_path / "state", (bad, good)) as (trader, _ws, _api):
        slot = trader.host.by_name["bad"]
        await until(lambda: not slot.enabled, 10)
        assert slot.disabled_reason == "too_many_errors"
        assert slot.errors == 5
        good_strategy = trader.host.by_name["good"].instance
        await until(lambda: good_strategy.order is not None, 10)
        await until(lambda: good_strategy.order.state is S.FILLED, 10)
        assert trader.host.by_name["good"].enabled
        assert slot.errors == 5  # no calls after it was disabled


BLOCKS = """
import time

class Blocks(Strategy):
    def on_trade(self, trade):
        time.sleep(0.2)
"""


async def test_a_strategy_that_blocks_is_flagged_and_ping_echoes_still_go_out(
    tmp_path: Path,
) -> None:
    async with Simulator(sim_config(ping_interval_s=0.3, events_per_s=20.0)) as sim:
        slow = write_strategy(tmp_path, "slow", BLOCKS, "Blocks", max_overruns=1_000_000)
        async with running_engine(sim, tmp_path / "state", (slow,)) as (trader, ws, _api):
            slot = trader.host.by_name["slow"]
            await until(lambda: slot.overruns >= 5, 15)
            assert slot.enabled  # flagged, not disabled: max_overruns is high here
            assert slot.slowest_ms >= 200
            pongs = sum(s.pongs for s in sim.realtime.sessions)
            await until(lambda: sum(s.pongs for s in sim.realtime.sessions) >= pongs + 3, 10)
            assert ws.sessions == 1  # never dropped for a missing echo
            assert sim.realtime.ping_kills == 0


async def test_a_strategy_too_slow_too_often_is_disabled(sim: Simulator, tmp_path: Path) -> None:
    slow = write_strategy(tmp_path, "slow", BLOCKS, "Blocks", max_overruns=2, budget_ms=50.0)
    async with running_engine(sim, tmp_path / "state", (slow,)) as (trader, _ws, _api):
        slot = trader.host.by_name["slow"]
        await until(lambda: not slot.enabled, 10)
        assert slot.disabled_reason == "too_slow"


async def test_programming_errors_raise_and_risk_rejections_do_not(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "s", "class S(Strategy):\n    pass\n", "S")
    async with running_engine(sim, tmp_path / "state", (sc,), max_order_qty=10) as (
        trader,
        _ws,
        _api,
    ):
        strat = trader.host.by_name["s"].instance
        with pytest.raises(ValueError, match="qty"):
            strat.buy(SYMBOL, 0, 70_000)
        with pytest.raises(ValueError, match="symbols"):
            strat.buy(OTHER, 1, 70_000)
        with pytest.raises(ValueError, match="tif"):
            strat.buy(SYMBOL, 1, 70_000, tif="gtc")
        order = strat.buy(SYMBOL, 11, 70_000)
        assert order.state is S.REJECTED
        assert order.reason == "MAX_ORDER_QTY"


BUY_AND_CANCEL_AT_ONCE = """
from engine.trading import krx

class CancelAtOnce(Strategy):
    def on_start(self):
        self.order = None

    def on_trade(self, trade):
        if self.order is None:
            # Passive: 3 % under the market, inside the fat-finger distance.
            price = krx.round_to_tick(trade.price * 97 // 100, "down")
            self.order = self.buy(trade.symbol, 1, price)
            self.cancel(self.order)  # no number yet: goes out as soon as one is known
"""


@pytest.mark.parametrize("push_first", [False, True], ids=["ack_first", "push_first"])
async def test_a_cancel_asked_before_the_order_has_a_number_goes_out_once_it_has(
    sim: Simulator, tmp_path: Path, push_first: bool
) -> None:
    sim.state.faults.order_push_first = push_first
    sc = write_strategy(tmp_path, "c", BUY_AND_CANCEL_AT_ONCE, "CancelAtOnce")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["c"].instance
        await until(lambda: strat.order is not None and strat.order.state is S.CANCELED, 10)
        placed = [o for o in sim.exchange.orders() if o.action == "new"]
        assert len(placed) == 1
        assert placed[0].open_qty == 0
        assert [o.action for o in sim.exchange.orders()] == ["new", "cancel"]
        assert trader.oms.stats.illegal_transitions == 0


EXITS = """
import sys

class Exits(Strategy):
    def on_trade(self, trade):
        sys.exit(3)
"""


async def test_a_strategy_calling_sys_exit_is_a_crashing_strategy_not_a_stop(
    sim: Simulator, tmp_path: Path
) -> None:
    bad = write_strategy(tmp_path, "exits", EXITS, "Exits", max_errors=3)
    good = write_strategy(tmp_path, "good", TRADES_ONCE, "TradesOnce")
    async with running_engine(sim, tmp_path / "state", (bad, good)) as (trader, _ws, _api):
        slot = trader.host.by_name["exits"]
        await until(lambda: not slot.enabled, 10)
        assert (slot.disabled_reason, slot.errors) == ("too_many_errors", 3)
        good_strategy = trader.host.by_name["good"].instance
        await until(lambda: good_strategy.order is not None, 10)
        assert trader.running
