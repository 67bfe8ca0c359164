"""The in-process broker behind the real OMS (bus, risk, portfolio, journal): latency, the
fill model on prints and quotes, cancels and amends reaching the book late, the account's
refusals. Prices and quantities are worked by hand from fills.py's table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from engine.backtest.broker import InProcessBroker
from engine.backtest.clock import NS, BacktestClock
from engine.bus import EventBus
from engine.clock import KST
from engine.config import load
from engine.events import (
    Event,
    Exchange,
    Fill,
    OrderBook,
    OrderExecution,
    OrderState,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from engine.journal import Journal
from engine.trading.account import Account
from engine.trading.fees import FeeRates
from engine.trading.oms import OrderManager
from engine.trading.orders import Order, OrderRequest
from engine.trading.portfolio import Portfolio
from engine.trading.risk import RiskEngine

S = OrderState
SYM = "005930"
T0 = int(datetime(2026, 3, 3, 10, 0, tzinfo=KST).timestamp()) * NS
MS = 1_000_000
DAY = TimeInForce.DAY


class World:
    def __init__(self, tmp: Path) -> None:
        cfg = load(None, env={})
        self.clock = BacktestClock(T0)
        self.bus = EventBus(self.clock)
        self.events: list[Event] = []
        self.bus.subscribe_all(self.events.append)
        self.broker = InProcessBroker(
            self.clock, self.bus, Account(10_000_000, FeeRates(1.5, 18.0)), latency_ms=50
        )
        self.broker.base[SYM] = 50_000
        self.risk = RiskEngine(cfg.risk, self.clock, check_session_hours=False)
        self.portfolio = Portfolio(cfg.portfolio)
        self.portfolio.cash = 10_000_000
        self.portfolio.base[SYM] = 50_000
        self.portfolio.last[SYM] = 50_000
        self.journal = Journal(tmp, self.clock)
        self.journal.open()
        self.oms = OrderManager(
            self.broker, self.bus, self.risk, self.portfolio, self.journal, self.clock
        )
        self.bus.subscribe(OrderExecution, self.oms.on_execution)

    async def submit(self, side: Side, qty: int, price: int | None) -> Order:
        order = self.oms.submit(OrderRequest(SYM, side, qty, price), "s")
        await self.oms.drain(1.0)
        await asyncio.sleep(0)  # the accepted notice comes after the answer
        return order

    async def at(self, ms: int) -> None:
        """Move to T0 + ms, applying what reaches the book by then."""
        self.clock.set(T0 + ms * MS)
        self.broker.arrive(T0 + ms * MS)
        await self.oms.drain(1.0)
        await asyncio.sleep(0)

    def trade(self, price: int, qty: int) -> None:
        self.broker.on_trade(Trade(SYM, Exchange.KRX, 100000, price, qty, 0, 0, 0, 0, 0, 0, 0))

    def fills(self) -> list[tuple[Side, int, int, int, int]]:
        return [(f.side, f.qty, f.price, f.fee, f.tax) for f in self.events if isinstance(f, Fill)]


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    world = World(tmp_path)
    yield world
    await world.oms.drain(1.0)
    world.journal.close()


async def test_an_order_fills_only_after_its_latency_and_by_the_printed_volume(w: World) -> None:
    order = await w.submit(Side.BUY, 10, 50_000)
    assert (order.state, order.order_no) == (S.ACCEPTED, "0000001")
    w.trade(49_950, 100)  # through its price, but the order is still on its way
    assert w.fills() == []
    await w.at(49)
    w.trade(49_950, 100)
    assert w.fills() == []
    await w.at(50)
    w.trade(49_950, 4)  # the first print after arrival (no quote known): its price, 4 shares
    w.trade(49_900, 100)  # later prints fill at the order's own price
    assert [(s, q, p) for s, q, p, _, _ in w.fills()] == [
        (Side.BUY, 4, 49_950),
        (Side.BUY, 6, 50_000),
    ]
    # fee floor(value x 1.5 / 10,000): 199,800 -> 29; 300,000 -> 45. The notices carry the
    # order's running totals, as Kiwoom's 938/939 do (the OMS books the difference).
    notices = [(e.fee, e.tax) for e in w.events if isinstance(e, OrderExecution) and e.fill_qty]
    assert notices == [(29, 0), (29 + 45, 0)]
    assert (order.state, order.filled_qty) == (S.FILLED, 10)
    assert w.broker.account.cash == 10_000_000 - 199_800 - 29 - 300_000 - 45


async def test_a_touch_waits_for_the_book_s_queue_ahead(w: World) -> None:
    w.broker.on_book(OrderBook(SYM, Exchange.KRX, 100000, ((50_100, 10),), ((50_000, 30),), 10, 30))
    order = await w.submit(Side.BUY, 5, 50_000)
    await w.at(50)
    w.trade(50_000, 20)  # 30 ahead: 10 left ahead
    assert w.fills() == []
    w.trade(50_000, 12)  # 10 ahead trade, 2 fill
    w.trade(50_000, 12)
    assert [(q, p) for _, q, p, _, _ in w.fills()] == [(2, 50_000), (3, 50_000)]
    assert order.state is S.FILLED


async def test_a_market_order_takes_the_quote_at_arrival_and_a_sell_pays_tax(w: World) -> None:
    w.broker.on_quote(Quote(SYM, Exchange.KRX, 50_100, 50_000))
    await w.submit(Side.BUY, 3, None)
    await w.at(50)
    await w.submit(Side.SELL, 3, None)
    await w.at(100)
    # sell 150,000: fee + tax = floor(150,000 x 19.5 / 10,000) = 292, fee 22, tax 270
    assert w.fills() == [(Side.BUY, 3, 50_100, 22, 0), (Side.SELL, 3, 50_000, 22, 270)]


async def test_a_cancel_reaches_the_book_late_and_an_amend_moves_the_order(w: World) -> None:
    a = await w.submit(Side.BUY, 5, 49_000)
    b = await w.submit(Side.BUY, 5, 49_500)
    await w.at(50)
    w.oms.cancel(a)
    w.oms.modify(b, price=49_800)
    await w.oms.drain(1.0)  # both calls answered at 50 ms: they reach the book at 100 ms
    await w.at(60)
    # The OMS takes an amend's answer as done (as Kiwoom's); the book moves it at 100 ms.
    assert (a.state, b.state, b.price) == (S.PENDING_CANCEL, S.ACCEPTED, 49_800)
    w.trade(48_900, 100)  # a is still at the book: it fills; b (49,500) fills too
    assert [(q, p) for _, q, p, _, _ in w.fills()] == [(5, 48_900), (5, 48_900)]
    await w.at(100)  # both calls arrive after the fills: nothing is open to cancel or move
    assert (a.state, b.state) == (S.FILLED, S.FILLED)
    assert w.oms.stats.illegal_transitions == 0


async def test_an_amend_that_arrives_first_fills_at_the_new_price(w: World) -> None:
    b = await w.submit(Side.BUY, 5, 49_500)
    await w.at(50)
    w.oms.modify(b, price=49_800)
    await w.oms.drain(1.0)
    await w.at(100)
    assert (b.state, b.price, b.order_no) == (S.ACCEPTED, 49_800, "0000002")
    w.trade(49_800, 50)
    assert [(q, p) for _, q, p, _, _ in w.fills()] == [(5, 49_800)]
    assert b.state is S.FILLED


async def test_the_account_refuses_by_its_rules(w: World) -> None:
    off_tick = await w.submit(Side.BUY, 1, 50_010)
    assert off_tick.state is S.REJECTED
    no_shares = await w.submit(Side.SELL, 1, 50_000)
    assert no_shares.state is S.REJECTED
    too_big = await w.submit(Side.BUY, 200, 50_000)  # 10,000,000 + fee > cash
    assert too_big.state is S.REJECTED
    codes = [
        await w.broker.place(SYM, Side.BUY, 1, 50_010, DAY, deadline=1e9),
        await w.broker.place(SYM, Side.BUY, 1, 65_100, DAY, deadline=1e9),
        await w.broker.place(SYM, Side.BUY, 200, 50_000, DAY, deadline=1e9),
        await w.broker.place(SYM, Side.SELL, 1, 50_000, DAY, deadline=1e9),
    ]  # fmt: skip
    assert [c.code for c in codes] == ["TICK", "PRICE_LIMIT", "CASH", "SHARES"]


def test_the_notices_are_built_in_the_field_order_of_order_execution() -> None:
    # The broker builds OrderExecution by position (engine/events.py maker), in this order:
    # a field added or moved must show here, not as a fill price read as a quantity.
    import dataclasses

    from engine.events import OrderExecution

    assert [f.name for f in dataclasses.fields(OrderExecution)] == [
        "account", "order_no", "orig_order_no", "symbol", "name", "side", "kind", "status",
        "order_type", "order_qty", "order_price", "unfilled_qty", "cum_fill_amount", "fill_no",
        "fill_price", "fill_qty", "unit_fill_price", "unit_fill_qty", "fee", "tax",
        "reject_reason", "exchange", "sor", "time", "ts_recv", "seq",
    ]  # fmt: skip
