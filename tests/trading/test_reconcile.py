"""Reconciliation on the broker port with an in-process broker (what a backtest plugs in): the
OMS and reconcile.py never know which broker answers. What it finds reaches the orders only as
order events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from engine.bus import EventBus
from engine.clock import KST, ManualClock
from engine.config import load
from engine.events import Event, Exchange, Fill, OrderState, Side, TimeInForce
from engine.journal import Journal
from engine.models import (
    AccountBalance,
    CashBalance,
    Holding,
    OpenOrder,
    OrderAction,
    OrderRecord,
)
from engine.trading.broker import Answer, BrokerAnswer, BrokerUnavailable
from engine.trading.oms import OrderManager
from engine.trading.orders import OrderRequest
from engine.trading.portfolio import Portfolio
from engine.trading.reconcile import Reconciler
from engine.trading.risk import RiskEngine

S = OrderState
SYMBOL = "005930"
START = datetime(2026, 1, 5, 10, 0, tzinfo=KST)


class Books:
    """A broker held in memory: order calls answer as told; the books are lists the test
    writes."""

    def __init__(self) -> None:
        self.place_answer = BrokerAnswer(Answer.UNKNOWN, detail="timeout")
        self.cancel_answer = BrokerAnswer(Answer.UNKNOWN, detail="timeout")
        self.history: dict[date | None, list[OrderRecord]] = {None: []}
        self.unreachable: set[date | None] = set()
        self.open: list[OpenOrder] = []
        self.holdings: list[Holding] = []
        self.nxt_holdings: list[Holding] = []
        self.balance_venues: list[Exchange] = []
        self.asked: list[date | None] = []
        self.cursors: list[str | None] = []
        self.orderable = 10_000_000

    async def place(
        self,
        symbol: str,
        side: Side,
        qty: int,
        price: int | None,
        tif: TimeInForce,
        *,
        deadline: float,
        venue: Exchange = Exchange.KRX,
    ) -> BrokerAnswer:
        return self.place_answer

    async def cancel(
        self, order_no: str, symbol: str, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        return self.cancel_answer

    async def amend(
        self, order_no: str, symbol: str, price: int, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        return BrokerAnswer(Answer.REFUSED, code="9999", detail="not here")

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        self.asked.append(order_date)
        self.cursors.append(from_order_no)
        if order_date in self.unreachable:
            raise BrokerUnavailable("kt00007: 503")
        rows = self.history.get(order_date, [])
        # kt00007's fr_ord_no: orders before the start number are not listed.
        return [r for r in rows if from_order_no is None or int(r.order_no) >= int(from_order_no)]

    async def open_orders(self) -> list[OpenOrder]:
        return list(self.open)

    async def account_balance(self, venue: Exchange = Exchange.KRX) -> AccountBalance:
        self.balance_venues.append(venue)
        if venue is not Exchange.KRX:
            return AccountBalance(0, 0, 0, 0.0, 0, tuple(self.nxt_holdings))
        return AccountBalance(0, 0, 0, 0.0, 0, tuple(self.holdings))

    async def cash_balance(self) -> CashBalance:
        return CashBalance(10_000_000, self.orderable, 10_000_000, 0, 0)


def row(no: str, qty: int, filled: int, remaining: int, **kw: object) -> OrderRecord:
    base: dict[str, object] = {
        "order_no": no,
        "symbol": SYMBOL,
        "name": "삼성전자",
        "side": Side.BUY,
        "qty": qty,
        "price": 70_000,
        "confirmed_qty": 0,
        "filled_qty": filled,
        "fill_price": 70_000 if filled else 0,
        "remaining_qty": remaining,
        "original_order_no": None,
        "amend_cancel": "",
        "time": time(10, 0, 1),
        "exchange": "KRX",
        "action": OrderAction.NEW,
    }
    return OrderRecord(**{**base, **kw})  # type: ignore[arg-type]


def open_row(no: str, qty: int, open_qty: int) -> OpenOrder:
    return OpenOrder(
        no, SYMBOL, "삼성전자", Side.BUY, "접수", qty, 70_000, open_qty, qty - open_qty, 0, None,
        "보통", time(10, 0, 1), "KRX",
    )  # fmt: skip


class World:
    def __init__(self, tmp: Path) -> None:
        cfg = load(None, env={})
        self.clock = ManualClock(START)
        self.bus = EventBus(self.clock)
        self.events: list[Event] = []
        self.bus.subscribe_all(self.events.append)
        self.books = Books()
        self.risk = RiskEngine(cfg.risk, self.clock, check_session_hours=False)
        self.portfolio = Portfolio(cfg.portfolio)
        self.portfolio.base[SYMBOL] = 70_000
        self.portfolio.last[SYMBOL] = 70_000
        self.portfolio.cash = 10_000_000
        self.journal = Journal(tmp, self.clock)
        self.journal.open()
        self.oms = OrderManager(
            self.books, self.bus, self.risk, self.portfolio, self.journal, self.clock
        )
        self.reconciler = Reconciler(self.books, self.oms)

    def fills(self) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill)]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    yield w
    await w.oms.drain(1.0)
    w.journal.close()


async def test_an_unknown_order_is_settled_from_the_list_and_its_fill_counts_once(
    world: World,
) -> None:
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")
    await world.oms.drain(1.0)
    assert order.state is S.UNKNOWN
    world.books.history[None] = [row("0000001", 3, 1, 2)]
    world.books.open = [open_row("0000001", 3, 2)]

    await world.reconciler.run()
    assert (order.state, order.order_nos, order.filled_qty) == (S.PARTIALLY_FILLED, ["0000001"], 1)
    await world.reconciler.run()  # the same books again: nothing more
    assert [(f.order_no, f.qty, f.strategy) for f in world.fills()] == [("0000001", 1, "s")]
    assert world.portfolio.strategy_qty("s", SYMBOL) == 1

    world.books.history[None] = [row("0000001", 3, 3, 0)]
    world.books.open = []
    await world.reconciler.run()
    assert (order.state, order.filled_qty) == (S.FILLED, 3)
    assert sum(f.qty for f in world.fills()) == 3


async def test_a_lost_cancel_goes_back_to_the_order_s_state_and_an_unanswered_one_waits(
    world: World,
) -> None:
    world.books.place_answer = BrokerAnswer(Answer.TAKEN, order_no="0000001")
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")
    await world.oms.drain(1.0)
    assert order.state is S.ACCEPTED
    world.books.history[None] = [row("0000001", 3, 0, 3)]
    world.books.open = [open_row("0000001", 3, 3)]

    world.books.cancel_answer = BrokerAnswer(Answer.TAKEN, order_no="0000002")
    world.oms.cancel(order)
    await world.oms.drain(1.0)
    await world.reconciler.run()  # the cancel was taken: its 00 is still to come
    assert order.state is S.PENDING_CANCEL

    world.books.place_answer = BrokerAnswer(Answer.TAKEN, order_no="0000003")
    other = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 1, 69_900), "s")
    await world.oms.drain(1.0)
    world.books.history[None].append(row("0000003", 1, 0, 1, price=69_900))
    world.books.open.append(open_row("0000003", 1, 1))
    world.books.cancel_answer = BrokerAnswer(Answer.UNKNOWN, detail="timeout")
    world.oms.cancel(other)
    await world.oms.drain(1.0)
    assert other.state is S.PENDING_CANCEL
    await world.reconciler.run()  # lost: still open at the broker
    assert (other.state, order.state) == (S.ACCEPTED, S.PENDING_CANCEL)


async def test_a_carried_order_is_kept_while_its_day_is_unreadable_then_expires(
    world: World,
) -> None:
    world.books.place_answer = BrokerAnswer(Answer.TAKEN, order_no="0000001")
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")
    await world.oms.drain(1.0)
    day = START.date()
    world.clock.advance(86_400)
    world.risk.roll_day()
    assert world.oms.open_orders_count() == 0
    world.books.unreachable.add(day)

    await world.reconciler.run()
    assert order.state is S.ACCEPTED
    assert world.reconciler.carried_pending == 1

    world.books.unreachable.clear()
    world.books.history[day] = [row("0000001", 3, 2, 0)]  # 2 filled, then the day ended
    await world.reconciler.run()
    assert (order.state, order.reason, order.filled_qty) == (S.CANCELED, "EXPIRED", 2)
    assert [(f.order_no, f.qty) for f in world.fills()] == [("0000001", 2)]
    assert world.books.asked.count(day) == 2
    assert world.reconciler.carried_pending == 0


async def test_a_resting_buy_is_not_counted_twice_against_the_cash(world: World) -> None:
    # Issue 14 item 25 (a mutant that survived): the broker's orderable cash already holds
    # back what a resting buy reserves; ours counts open buys apart (risk adds them), so the
    # pass gives that reservation back.
    world.books.place_answer = BrokerAnswer(Answer.TAKEN, order_no="0000001")
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 10, 70_000), "s")
    await world.oms.drain(1.0)
    assert order.state is S.ACCEPTED
    world.books.history[None] = [row("0000001", 10, 0, 10)]
    world.books.open = [open_row("0000001", 10, 10)]
    world.books.orderable = 10_000_000 - 700_000

    await world.reconciler.run()
    assert order.state is S.ACCEPTED
    assert world.portfolio.cash == 10_000_000
    assert world.oms.open_buy_notional() == 700_000
    # Risk sees the same buying power as before the pass: cash less the open buys.
    assert world.oms.buying_power() - world.oms.open_buy_notional() == 9_300_000


# --- item 24: a pass reads only what can have changed ---------------------------------------


async def test_a_pass_reads_the_list_from_the_oldest_open_order_on(world: World) -> None:
    books = world.books
    for no, price in (("0000001", 70_000), ("0000002", 69_900), ("0000003", 69_800)):
        books.place_answer = BrokerAnswer(Answer.TAKEN, order_no=no)
        world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 1, price), "s")
        await world.oms.drain(1.0)
    first, second, third = world.oms.open_orders()
    books.history[None] = [
        row("0000001", 1, 1, 0),
        row("0000002", 1, 0, 1, price=69_900),
        row("0000003", 1, 1, 0, price=69_800, fill_price=69_800),
    ]
    books.open = [open_row("0000002", 1, 1)]

    await world.reconciler.run(load_positions=True)  # start-up: the whole day
    assert (first.state, second.state, third.state) == (S.FILLED, S.ACCEPTED, S.FILLED)
    await world.reconciler.run()  # 0000002 is the oldest still open
    books.history[None][1] = row("0000002", 1, 1, 0, price=69_900, fill_price=69_900)
    books.open = []
    await world.reconciler.run()
    assert second.state is S.FILLED
    await world.reconciler.run()  # nothing open: only what came since the newest listed
    assert books.cursors == [None, "0000002", "0000002", "0000003"]


async def test_an_order_without_a_number_is_claimed_from_the_number_listed_before_it(
    world: World,
) -> None:
    books = world.books
    # Two earlier orders the same as the next one (placed by hand), listed by a pass.
    books.history[None] = [row("0000001", 3, 3, 0), row("0000002", 3, 3, 0)]
    await world.reconciler.run(load_positions=True)
    world.clock.advance(60)

    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")  # answer lost
    await world.oms.drain(1.0)
    assert (order.state, order.order_nos) == (S.UNKNOWN, [])
    books.history[None].append(row("0000003", 3, 1, 2, time=time(10, 1, 0)))
    books.open = [open_row("0000003", 3, 2)]

    await world.reconciler.run()
    assert books.cursors == [None, "0000002"]
    assert (order.state, order.order_nos, order.filled_qty) == (
        S.PARTIALLY_FILLED,
        ["0000003"],
        1,
    )


async def test_an_order_without_a_number_older_than_every_pass_reads_the_whole_day(
    world: World,
) -> None:
    books = world.books
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")  # answer lost
    await world.oms.drain(1.0)
    books.history[None] = [row("0000001", 3, 0, 3, time=time(10, 0, 0))]
    books.open = [open_row("0000001", 3, 3)]
    world.clock.advance(1)
    await world.reconciler.run()
    assert books.cursors == [None]
    assert (order.state, order.order_nos) == (S.ACCEPTED, ["0000001"])


async def test_a_miss_is_forgotten_once_the_order_is_found(world: World) -> None:
    books = world.books
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 1, 70_000), "s")  # answer lost
    await world.oms.drain(1.0)
    await world.reconciler.run()  # not listed yet: one miss
    assert order.state is S.UNKNOWN
    books.history[None] = [row("0000001", 1, 0, 1, time=time(10, 0, 0))]
    books.open = [open_row("0000001", 1, 1)]
    await world.reconciler.run()
    assert order.state is S.ACCEPTED
    assert world.reconciler._misses == {}


async def test_numbers_listed_on_a_day_before_are_no_cursor_for_today(world: World) -> None:
    # Kiwoom gives order numbers out again each day: yesterday's newest is no floor today.
    books = world.books
    books.history[None] = [row("0000009", 1, 1, 0)]
    await world.reconciler.run(load_positions=True)
    world.clock.advance(86_400)
    books.history[None] = []
    await world.reconciler.run()
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")  # answer lost
    await world.oms.drain(1.0)
    books.history[None] = [row("0000001", 3, 0, 3, time=time(10, 0, 0))]
    books.open = [open_row("0000001", 3, 3)]
    await world.reconciler.run()
    assert books.cursors == [None, None, None]
    assert (order.state, order.order_nos) == (S.ACCEPTED, ["0000001"])


class SlowPlace(Books):
    """A broker whose place answers only when the test lets it: the order stays SUBMITTING."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.on_history: list[Callable[[], None]] = []

    async def place(self, *args: Any, **kw: Any) -> BrokerAnswer:
        await self.answer.wait()
        return self.place_answer

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        for f in self.on_history:
            f()
        self.on_history.clear()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return await super().order_history(order_date, from_order_no=from_order_no)


async def test_an_order_in_flight_when_the_cursor_was_chosen_is_left_to_the_next_pass(
    world: World,
) -> None:
    books = SlowPlace()
    world.books = books
    world.oms.broker = books
    world.reconciler.books = books
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000), "s")
    await asyncio.sleep(0)
    assert order.state is S.SUBMITTING
    # The broker numbered it 0000001; a pass lists it (and a later order) while it is in flight.
    books.history[None] = [
        row("0000001", 3, 0, 3, time=time(10, 0, 0)),
        row("0000002", 1, 0, 1, price=60_000, time=time(10, 0, 0)),
    ]
    books.open = [open_row("0000001", 3, 3)]
    await world.reconciler.run()
    # Next pass: its cursor (0000002) is chosen while the call is in flight; the answer is
    # lost during the read. The order's row lies before the cursor: no miss may count.
    books.on_history.append(books.answer.set)
    await world.reconciler.run()
    assert order.state is S.UNKNOWN
    assert books.cursors[-1] == "0000002"
    assert world.reconciler._misses == {}
    await world.reconciler.run()
    assert (order.state, order.order_nos) == (S.ACCEPTED, ["0000001"])


# --- issue 15: the account is read on every venue traded ------------------------------------


def holding(qty: int) -> Holding:
    return Holding(SYMBOL, "삼성전자", qty, qty, 70_000, 70_000, qty * 70_000, qty * 70_000, 0, 0.0)


async def test_holdings_are_read_per_venue_traded_and_merged_per_symbol(world: World) -> None:
    await world.reconciler.run(load_positions=True)
    assert world.books.balance_venues == [Exchange.KRX]  # only KRX traded yet

    world.books.place_answer = BrokerAnswer(Answer.TAKEN, order_no="0000001")
    order = world.oms.submit(OrderRequest(SYMBOL, Side.BUY, 3, 70_000, venue=Exchange.SOR), "s")
    await world.oms.drain(1.0)
    assert order.venue is Exchange.SOR
    world.books.history[None] = [row("0000001", 3, 3, 0, exchange="SOR")]
    world.books.balance_venues.clear()
    # The same 3 shares on both lists: one pool, counted once (never 6).
    world.books.holdings = [holding(3)]
    world.books.nxt_holdings = [holding(3)]
    result = await world.reconciler.run()
    assert world.books.balance_venues == [Exchange.KRX, Exchange.NXT]
    assert result.divergences == 0
    # Only NXT's list shows them: they are the account's all the same.
    world.books.holdings = []
    result = await world.reconciler.run()
    assert result.divergences == 0
