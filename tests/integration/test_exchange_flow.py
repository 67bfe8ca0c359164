"""An order's whole life through the real client and the composed simulator: REST order,
00/04 pushes on the WebSocket, and REST account queries that agree with them."""

from __future__ import annotations

import pytest

from engine.events import Balance, Event, OrderExecution, OrderStatus, Side, Trade
from engine.models import OrderType
from engine.sim.simulator import Simulator
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(30)

SYMBOL = "005930"


async def test_crossing_limit_order_fills_with_matching_pushes_and_account(
    simulator: Simulator,
) -> None:
    events: list[Event] = []
    async with trading_session(simulator, events.append) as (api, ws):
        await ws.subscribe(["00", "04"], [])
        await ws.subscribe(["0B"], [SYMBOL])
        cash_before = (await api.cash_balance()).deposit
        _bid, ask = simulator.market.best(SYMBOL)
        qty = 3
        ack = await api.buy(SYMBOL, qty, OrderType.LIMIT, price=ask)
        await until(
            lambda: (
                any(
                    isinstance(e, OrderExecution)
                    and e.order_no == ack.order_no
                    and e.status is OrderStatus.FILLED
                    and e.unfilled_qty == 0
                    for e in events
                )
                and any(isinstance(e, Balance) and e.symbol == SYMBOL for e in events)
            ),
            within_s=5.0,
        )
        notices = [
            e for e in events if isinstance(e, OrderExecution) and e.order_no == ack.order_no
        ]
        assert notices[0].status is OrderStatus.ACCEPTED
        assert {n.side for n in notices} == {Side.BUY}
        fills = [n for n in notices if n.status is OrderStatus.FILLED]
        assert sum(f.unit_fill_qty for f in fills) == qty
        cost = sum(f.unit_fill_price * f.unit_fill_qty for f in fills)
        assert all(f.unit_fill_price <= ask for f in fills)  # a buy never fills above its limit
        balance = [e for e in events if isinstance(e, Balance) and e.symbol == SYMBOL][-1]
        assert balance.qty == qty

        account = await api.account_balance()
        holding = next(h for h in account.holdings if h.symbol == SYMBOL)
        assert holding.qty == qty == balance.qty
        assert holding.avg_price == balance.avg_price
        assert holding.purchase_amount == cost
        # The simulator charges [portfolio]'s 1.5 bp commission by default, rounded down per
        # fill; a notice's fee (FID 938) is the order's running total.
        fee = sum(f.unit_fill_price * f.unit_fill_qty * 15 // 100_000 for f in fills)
        assert fills[-1].fee == fee > 0
        assert (await api.cash_balance()).deposit == cash_before - cost - fee
        assert [o for o in await api.open_orders() if o.order_no == ack.order_no] == []
        execs = [x for x in await api.executions() if x.order_no == ack.order_no]
        assert len(execs) == 1
        assert execs[0].filled_qty == qty
        assert any(isinstance(e, Trade) and e.symbol == SYMBOL for e in events)


async def test_resting_order_cancel_produces_confirmation_pushes(simulator: Simulator) -> None:
    events: list[Event] = []
    async with trading_session(simulator, events.append) as (api, ws):
        await ws.subscribe(["00"], [])
        lower, _upper = simulator.market.limits(SYMBOL)
        ack = await api.buy(SYMBOL, 5, OrderType.LIMIT, price=lower)  # far below: rests
        assert [o.order_no for o in await api.open_orders()] == [ack.order_no]
        cancel = await api.cancel(ack.order_no, SYMBOL)
        assert cancel.order_no != ack.order_no
        await until(
            lambda: any(
                isinstance(e, OrderExecution)
                and e.order_no == ack.order_no
                and e.status is OrderStatus.CANCELED
                for e in events
            ),
            within_s=5.0,
        )
        assert await api.open_orders() == []
