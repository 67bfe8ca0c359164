"""`tif` end to end: a strategy's IOC and FOK orders through the engine (OMS, risk, the 00
feed) to the simulator over real sockets, and what the strategy then sees.

The market stands still (events_per_s = 0), so the book the test reads is the book the order
meets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.events import OrderState
from engine.sim.simulator import Simulator
from engine.trading.orders import TERMINAL, Order
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

QUIET = "class Quiet(Strategy):\n    pass\n"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config(events_per_s=0.0)) as s:
        yield s


async def _ended(order: Order) -> None:
    await until(lambda: order.state in TERMINAL, 10)


async def test_an_ioc_buy_fills_the_level_and_ends_cancelled_for_the_rest(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "q", QUIET, "Quiet")
    ask_price, ask_qty = sim.market.book(SYMBOL).asks[0]
    async with running_engine(sim, tmp_path / "state", (sc,), fat_finger_bp=10_000) as (
        trader,
        _ws,
        api,
    ):
        strat = trader.host.by_name["q"].instance
        order = strat.buy(SYMBOL, ask_qty + 5, ask_price, tif="ioc")
        await _ended(order)
        assert (order.state, order.filled_qty) == (OrderState.CANCELED, ask_qty)
        assert strat.position(SYMBOL) == ask_qty
        assert strat.orders() == []
        await until(lambda: trader.portfolio.cash == ask_cash(ask_price, ask_qty), 5)
        assert (await api.cash_balance()).orderable == ask_cash(ask_price, ask_qty)


def ask_cash(price: int, qty: int) -> int:
    """The simulator's 100,000,000 less a buy of qty at price and its 1.5 bp commission."""
    return 100_000_000 - price * qty - price * qty * 15 // 100_000


async def test_a_fok_buy_fills_whole_or_ends_cancelled_untouched(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "q", QUIET, "Quiet")
    ask_price, ask_qty = sim.market.book(SYMBOL).asks[0]
    async with running_engine(sim, tmp_path / "state", (sc,), fat_finger_bp=10_000) as (
        trader,
        _ws,
        _api,
    ):
        strat = trader.host.by_name["q"].instance
        killed = strat.buy(SYMBOL, ask_qty + 1, ask_price, tif="fok")
        await _ended(killed)
        assert (killed.state, killed.filled_qty) == (OrderState.CANCELED, 0)
        assert strat.position(SYMBOL) == 0
        filled = strat.buy(SYMBOL, ask_qty, ask_price, tif="fok")
        await _ended(filled)
        assert (filled.state, filled.filled_qty) == (OrderState.FILLED, ask_qty)
        assert strat.position(SYMBOL) == ask_qty
