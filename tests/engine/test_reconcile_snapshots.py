"""Reconciliation reads two snapshots a moment apart (kt00007 history, then ka10075 open
orders): an order amended between them must not be ended as cancelled (found by the soak,
bench/soak.py: a canceled -> filled illegal transition after a modify)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from engine.events import OrderState
from engine.kiwoom.api import KiwoomApi
from engine.models import AccountBalance, CashBalance, OpenOrder, OrderRecord
from engine.sim.simulator import Simulator
from engine.trading import krx
from engine.trading.orders import Order
from engine.trading.reconcile import Reconciler
from tests.engine.conftest import running_engine, sim_config, write_strategy
from tests.support import until

S = OrderState

RESTS = """
from engine.trading import krx

class Rests(Strategy):
    def on_start(self):
        self.order = None

    def on_trade(self, trade):
        if self.order is None:
            self.order = self.buy(trade.symbol, 1, krx.round_to_tick(trade.price * 96 // 100, "down"))
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


class AmendsBetweenSnapshots:
    """The broker's books, with the order amended at the broker after the history was read
    and before the open orders are (as the OMS's own modify or a fill can land)."""

    def __init__(self, api: KiwoomApi, sim: Simulator, order: Order, price: int) -> None:
        self.api = api
        self.sim = sim
        self.order = order
        self.price = price
        self.history: list[OrderRecord] = []

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        self.history = await self.api.order_history(order_date, from_order_no=from_order_no)
        return self.history

    async def open_orders(self) -> list[OpenOrder]:
        assert self.order.order_no is not None
        # The amend's 00 confirmation is held back until this pass is over, as a busy feed
        # or a slow REST answer would: the engine does not know the new number yet.
        self.sim.state.faults.ws_frame_delay_s = 1.0
        await self.api.modify(self.order.order_no, self.order.symbol, 1, self.price)
        return await self.api.open_orders()

    async def account_balance(self) -> AccountBalance:
        return await self.api.account_balance()

    async def cash_balance(self) -> CashBalance:
        return await self.api.cash_balance()


async def test_an_order_amended_between_the_two_snapshots_is_not_ended_as_cancelled(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "r", RESTS, "Rests")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, api):
        strat = trader.host.by_name["r"].instance
        await until(lambda: strat.order is not None and strat.order.state is S.ACCEPTED, 10)
        order: Order = strat.order
        assert order.price is not None
        new_price = krx.round_to_tick(order.price * 101 // 100, "down")
        books = AmendsBetweenSnapshots(api, sim, order, new_price)
        try:
            await Reconciler(books, trader.oms).run()
        finally:
            sim.state.faults.ws_frame_delay_s = 0.0
        # The history still listed the old number open: nothing to conclude from it.
        assert [r.remaining_qty for r in books.history if r.order_no == order.order_nos[0]] == [1]
        assert order.state is not S.CANCELED, order.reason
        # The 00 feed then links the amend's number: the order lives on under it.
        await until(lambda: len(order.order_nos) == 2, 10)
        assert order.state is S.ACCEPTED
        at_sim = {o.ord_no: o for o in sim.exchange.orders()}
        assert at_sim[order.order_nos[1]].open_qty == 1
        assert order.price == new_price
        assert trader.oms.stats.illegal_transitions == 0
