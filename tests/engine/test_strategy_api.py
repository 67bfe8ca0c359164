"""The strategy contract on a running engine: history and bars, timers, amends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.events import OrderState
from engine.sim.simulator import Simulator
from tests.engine.conftest import running_engine, sim_config, write_strategy
from tests.support import until

S = OrderState


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


HISTORY = """
class History(Strategy):
    def on_start(self):
        self.at_start = list(self.bars(self.symbols[0], "1m"))
        self.now = self.clock.now()
"""


async def test_history_is_loaded_before_on_start_oldest_first_and_closed(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "h", HISTORY, "History", bars=("1m",), history=30)
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["h"].instance
        bars = strat.at_start
        assert len(bars) == 30
        starts = [b.start for b in bars]
        assert starts == sorted(starts)
        assert len(set(starts)) == 30
        # Only closed bars: the minute in progress is built live, not loaded.
        assert all((strat.now - b.start).total_seconds() >= 60 for b in bars)
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)


TIMERS = """
class Timers(Strategy):
    def on_start(self):
        self.fired = []
        self.set_timer("tick", 0.05)
        self.set_timer("once", 0.05, repeat=False)

    def on_timer(self, name):
        self.fired.append(name)
        if self.fired.count("tick") == 3:
            self.cancel_timer("tick")
"""


async def test_timers_repeat_fire_once_and_cancel(sim: Simulator, tmp_path: Path) -> None:
    sc = write_strategy(tmp_path, "t", TIMERS, "Timers")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["t"].instance
        await until(lambda: strat.fired.count("tick") == 3, 5)
        await until(lambda: "once" in strat.fired, 5)
        settled = list(strat.fired)
        await asyncio.sleep(0.2)
        assert strat.fired == settled  # the repeating one was cancelled, the other is done
        assert strat.fired.count("once") == 1


AMEND = """
from engine.trading import krx

class Amend(Strategy):
    def on_start(self):
        self.order = None
        self.amended_to = None

    def on_trade(self, trade):
        if self.order is None:
            self.order = self.buy(trade.symbol, 2, krx.round_to_tick(trade.price * 96 // 100, "down"))

    def on_order(self, order):
        if order.state is OrderState.ACCEPTED and self.amended_to is None:
            self.amended_to = krx.round_to_tick(order.price * 101 // 100, "down")
            self.modify(order, price=self.amended_to)
"""


async def test_an_amend_moves_the_order_under_a_new_number(sim: Simulator, tmp_path: Path) -> None:
    sc = write_strategy(tmp_path, "a", AMEND, "Amend")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["a"].instance
        await until(lambda: strat.order is not None and len(strat.order.order_nos) == 2, 10)
        order = strat.order
        await until(lambda: order.state is S.ACCEPTED and order.price == strat.amended_to, 10)
        assert order.order_no == order.order_nos[1]
        at_sim = {o.ord_no: o for o in sim.exchange.orders()}
        assert at_sim[order.order_nos[1]].price == strat.amended_to
        assert at_sim[order.order_nos[1]].open_qty == 2
        assert at_sim[order.order_nos[0]].open_qty == 0
        assert trader.oms.stats.illegal_transitions == 0
        # A cancel goes to the live (amended) number.
        strat.cancel(order)
        await until(lambda: order.state is S.CANCELED, 10)
        assert at_sim[order.order_nos[1]].open_qty == 0


REFUSED_ORDERS = """
class RefusedOrders(Strategy):
    def on_start(self):
        self.seen = []

    def on_order(self, order):
        self.seen.append(order.client_id)
"""


async def test_a_paced_refusal_waits_on_the_engines_clock(sim: Simulator, tmp_path: Path) -> None:
    # Past STATE_REFUSALS_PER_S refusals by the trading state in a second, the strategy hears
    # of each one STATE_REFUSAL_PAUSE_S later: on the engine's Clock (a backtest's simulated
    # clock), not the machine's, or a backtest's result would depend on the machine.
    from engine.clock import ManualClock
    from engine.host import STATE_REFUSAL_PAUSE_S, STATE_REFUSALS_PER_S

    sc = write_strategy(tmp_path, "r", REFUSED_ORDERS, "RefusedOrders")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        slot = trader.host.by_name["r"]
        strat = slot.instance
        clock = ManualClock()
        trader.host.clock = slot.clock = clock
        trader.halt("test")
        n = STATE_REFUSALS_PER_S + 5
        orders = [strat.buy("005930", 1, None) for _ in range(n)]
        assert all(o.state is OrderState.REJECTED for o in orders)
        await asyncio.sleep(STATE_REFUSAL_PAUSE_S * 3)  # real time passes, the clock does not
        assert len(strat.seen) == STATE_REFUSALS_PER_S
        await until(lambda: clock.sleeping == 5, 5)
        clock.advance(STATE_REFUSAL_PAUSE_S)
        await until(lambda: len(strat.seen) == n, 5)
        assert strat.seen[-5:] == [o.client_id for o in orders[-5:]]
