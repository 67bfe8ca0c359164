"""A fill's fee and tax, from the broker's running totals.

Kiwoom's 00 notice carries 당일매매수수료 and 당일매매세금 (FID 938, 939): what the order has
been charged so far under its number, not what this one fill cost (the simulator sends the
order's running total too). Each fill books the part of those totals not booked yet, once per
broker number, across a restart, and after a fill reconciliation booked at an estimate.

Every figure here is written out: 1.5 bp commission and 18 bp sell tax, truncated to the won.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.clock import ManualClock
from engine.config import load
from engine.events import Exchange, Fill, OrderExecution, OrderKind, OrderStatus, Side
from engine.journal import Journal
from engine.trading.broker import Answer, BrokerAnswer
from engine.trading.order_events import (
    Acked,
    Filled,
    Replaced,
    ReplaceRequested,
    Sent,
    apply,
)
from engine.trading.orders import Order, OrderRequest
from engine.trading.portfolio import Portfolio
from tests.trading.test_reconcile import START, SYMBOL, World, open_row, row

NO = "0000001"


def acked(side: Side) -> Order:
    order = Order("O1", "s", SYMBOL, side, 10, 70_000)
    for ev in (Sent(), Acked(order_no=NO)):
        apply(order, ev)
    return order


def fill_of(order: Order, fill_no: str, qty: int, cum: int, fee: int, tax: int = 0) -> Fill:
    """Apply a notice of `qty` shares whose running totals are `cum` shares, `fee` and `tax`."""
    fx = apply(
        order,
        Filled(
            order_no=NO,
            fill_no=fill_no,
            qty=qty,
            price=70_000,
            cum=cum,
            cum_fee=fee,
            cum_tax=tax,
        ),
    )
    assert fx.fill is not None
    return fx.fill


def test_each_fill_books_only_what_the_running_totals_added() -> None:
    order = acked(Side.BUY)
    # 6 shares: 420,000 x 1.5 bp = 63; then 4 more: 700,000 x 1.5 bp = 105 in all.
    first = fill_of(order, "1", 6, 6, 63)
    second = fill_of(order, "2", 4, 10, 105)
    assert [(f.qty, f.fee, f.tax) for f in (first, second)] == [(6, 63, 0), (4, 42, 0)]


def test_a_replayed_notice_books_no_fee_again() -> None:
    order = acked(Side.BUY)
    fill_of(order, "1", 6, 6, 63)
    fx = apply(order, Filled(order_no=NO, fill_no="1", qty=6, price=70_000, cum=6, cum_fee=63))
    assert fx.duplicate
    assert fx.fill is None
    assert fill_of(order, "2", 4, 10, 105).fee == 42


def test_the_totals_after_a_restart_are_still_taken_against_what_was_booked(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    journal = Journal(tmp_path, clock)
    journal.open()
    order = Order(f"{journal.next_client_seq()}.1", "s", SYMBOL, Side.SELL, 10, 70_000)
    order.created_ns = clock.time_ns()
    journal.record_intent(order)
    events: list[Any] = []
    for ev in (Sent(), Acked(order_no=NO)):
        events.append(apply(order, ev).update)
    # 6 shares sold: fee 63, tax 420,000 x 18 bp = 756.
    fx = apply(
        order,
        Filled(order_no=NO, fill_no="1", qty=6, price=70_000, cum=6, cum_fee=63, cum_tax=756),
    )
    assert fx.fill is not None
    assert (fx.fill.fee, fx.fill.tax) == (63, 756)
    events += [fx.update, fx.fill]
    journal.write(events)
    journal.close()

    journal = Journal(tmp_path, clock)
    journal.open()
    try:
        (rebuilt,) = journal.load_orders()
    finally:
        journal.close()
    # The rest: 700,000 in all, fee 105 and tax 1,260 so far.
    second = fill_of(rebuilt, "2", 4, 10, 105, 1_260)
    assert (second.qty, second.fee, second.tax) == (4, 42, 504)


def notice(qty: int, cum: int, fee: int, fill_no: str) -> OrderExecution:
    """A 00 체결 notice for our buy of 10 at 70,000 under NO, as the codec builds it."""
    return OrderExecution(
        account="5012345610",
        order_no=NO,
        orig_order_no=None,
        symbol=SYMBOL,
        name="삼성전자",
        side=Side.BUY,
        kind=OrderKind.NEW,
        status=OrderStatus.FILLED,
        order_type="보통",
        order_qty=10,
        order_price=70_000,
        unfilled_qty=10 - cum,
        cum_fill_amount=70_000 * cum,
        fill_no=fill_no,
        fill_price=70_000,
        fill_qty=qty,
        unit_fill_price=70_000,
        unit_fill_qty=qty,
        fee=fee,
        tax=0,
        reject_reason="",
        exchange=Exchange.KRX,
        sor=False,
        time=100_000,
    )


async def test_a_fill_reconciliation_booked_at_an_estimate_is_not_charged_again(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    try:
        w.books.place_answer = BrokerAnswer(Answer.TAKEN, order_no=NO)
        order = w.oms.submit(OrderRequest(SYMBOL, Side.BUY, 10, 70_000), "s")
        await w.oms.drain(1.0)
        w.oms.on_execution(notice(6, 6, 63, "1"))
        # The notice of the next 2 shares (8 in all, fee 84 so far) is lost; the broker's
        # list shows them, without fees: the portfolio's 1.5 bp of 140,000 is 21.
        w.books.history[None] = [row(NO, 10, 8, 2)]
        w.books.open = [open_row(NO, 10, 2)]
        await w.reconciler.run()
        assert order.filled_qty == 8
        # The last 2: the broker's totals, 105 in all, hold the lost fill's fee too.
        w.oms.on_execution(notice(2, 10, 105, "3"))
        assert order.filled_qty == 10
        assert [(f.qty, f.fee + f.tax) for f in w.fills()] == [(6, 63), (2, 21), (2, 21)]
        assert w.portfolio.fees_today == 105
        assert w.portfolio.realized_today == -105
    finally:
        await w.oms.drain(1.0)
        w.journal.close()


def test_an_estimate_splits_into_fee_and_tax_that_add_up_to_it(tmp_path: Path) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text("[portfolio]\nsell_tax_bp = 18.0\n")  # an explicit flat rate: no table
    pf = Portfolio(load(flat, env={}).portfolio)  # 1.5 bp commission, 18 bp sell tax
    # (1.5 + 18) bp of 690,000 is 1,345 truncated; 1.5 bp of it is 103 truncated.
    assert pf.fee_for(Side.SELL, 10, 69_000) == 1_345
    assert pf.fee_parts(Side.SELL, 10, 69_000) == (103, 1_242)
    assert pf.fee_parts(Side.BUY, 10, 70_000) == (105, 0)


def test_an_amend_s_number_runs_totals_of_its_own() -> None:
    # The simulator starts an amended order's totals at 0 under its new number, as the
    # shares under it (902 미체결수량 against 900 주문수량) are counted per number too.
    order = acked(Side.BUY)
    assert fill_of(order, "1", 6, 6, 63).fee == 63
    apply(order, ReplaceRequested())
    apply(order, Replaced(order_no="0000002", price=70_000))
    fx = apply(
        order,
        Filled(order_no="0000002", fill_no="1", qty=4, price=70_000, cum=4, cum_fee=42),
    )
    assert fx.fill is not None
    assert (fx.fill.qty, fx.fill.fee) == (4, 42)
    assert order.fees_by_no == {NO: (63, 0), "0000002": (42, 0)}
