"""The order path the OMS relies on, through the real client and the composed simulator:
which of an order's answer and its 00 push the client handles first (sim.order_push_first),
and the outcome-unknown cases (an answer without an order number, a cancelled call) that
reconciliation must find live at the broker, sent once."""

from __future__ import annotations

import asyncio

import pytest

from engine.events import Balance, Event, OrderExecution, OrderStatus
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import OutcomeUnknownError
from engine.models import OrderAck, OrderType
from engine.sim.simulator import Simulator
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(30)

SYMBOL = "005930"


async def _buy_and_look(api: KiwoomApi, events: list[Event]) -> tuple[OrderAck, list[Event]]:
    """A market buy of one share; returns its ack and the events the client had handled when
    the answer reached it (taken with no await in between)."""
    ack = await api.buy(SYMBOL, 1, OrderType.MARKET)
    return ack, list(events)


def _notices(events: list[Event], order_no: str) -> list[OrderStatus]:
    return [e.status for e in events if isinstance(e, OrderExecution) and e.order_no == order_no]


async def test_push_first_the_client_has_the_00_and_its_fill_before_the_answer(
    simulator: Simulator,
) -> None:
    faults = simulator.state.faults
    events: list[Event] = []
    async with trading_session(simulator, events.append) as (api, ws):
        await ws.subscribe(["00", "04"], [])
        await ws.subscribe(["0B"], [SYMBOL])  # trades wake the feed after the silence below
        faults.order_push_first = True  # settable while the simulator runs

        ack, seen = await _buy_and_look(api, events)
        assert _notices(seen, ack.order_no)[:2] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]

        # With the feed silenced the answer has to wait for it: it is not sent first.
        faults.ws_silent = True
        task = asyncio.ensure_future(_buy_and_look(api, events))
        await until(lambda: simulator.state.handled_counts["kt10000"] == 2)
        faults.ws_silent = False
        ack, seen = await task
    assert _notices(seen, ack.order_no)[:2] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert any(isinstance(e, Balance) and e.symbol == SYMBOL for e in seen)


async def test_by_default_the_client_has_the_answer_before_the_00(simulator: Simulator) -> None:
    assert simulator.state.faults.order_push_first is False  # config sim.order_push_first
    events: list[Event] = []
    async with trading_session(simulator, events.append) as (api, ws):
        await ws.subscribe(["00", "04"], [])
        for _ in range(3):
            ack, seen = await _buy_and_look(api, events)
            assert _notices(seen, ack.order_no) == []
            await until(
                lambda: (
                    _notices(events, ack.order_no)[:2]  # noqa: B023 - awaited at once
                    == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
                )
            )


async def test_an_answer_without_an_order_number_is_outcome_unknown_and_the_order_is_live(
    simulator: Simulator,
) -> None:
    faults = simulator.state.faults
    lower, _upper = simulator.market.limits(SYMBOL)  # a buy there rests
    async with trading_session(simulator, lambda _e: None) as (api, _ws):
        faults.order_no_missing.add("kt10000")
        with pytest.raises(OutcomeUnknownError) as ei:
            await api.buy(SYMBOL, 2, OrderType.LIMIT, price=lower)
        assert ei.value.reason == "no_order_no"
        faults.order_no_missing.clear()
        live = await api.open_orders()
        assert [(o.symbol, o.qty, o.price) for o in live] == [(SYMBOL, 2, lower)]

        faults.order_no_missing.add("kt10003")
        with pytest.raises(OutcomeUnknownError) as ei:
            await api.cancel(live[0].order_no, SYMBOL)
        assert ei.value.reason == "no_order_no"
        faults.order_no_missing.clear()
        assert await api.open_orders() == []  # the cancel was taken too
    assert simulator.state.request_counts["kt10000"] == 1
    assert simulator.state.request_counts["kt10003"] == 1


async def test_a_cancelled_order_call_is_outcome_unknown_and_sent_once(
    simulator: Simulator,
) -> None:
    faults = simulator.state.faults
    lower, _upper = simulator.market.limits(SYMBOL)
    async with trading_session(simulator, lambda _e: None) as (api, _ws):
        faults.rest_delay_s["kt10000"] = 0.5
        task = asyncio.ensure_future(api.buy(SYMBOL, 3, OrderType.LIMIT, price=lower))
        await until(lambda: simulator.state.handled_counts["kt10000"] == 1)
        task.cancel()
        with pytest.raises(OutcomeUnknownError) as ei:
            await task
        assert ei.value.reason == "cancelled"
        faults.rest_delay_s.clear()
        live = await api.open_orders()
        assert [(o.symbol, o.qty, o.price) for o in live] == [(SYMBOL, 3, lower)]
    assert simulator.state.request_counts["kt10000"] == 1
