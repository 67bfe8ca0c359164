"""The exchange core's order rules (engine/trading/exchange_core.py) on literal numbers, and
its two liquidity models (the simulator's book, the backtest's quote at arrival)."""

from __future__ import annotations

from engine.backtest.broker import QuoteLiquidity
from engine.clock import ManualClock
from engine.events import Side, TimeInForce
from engine.sim.exchange import BookLiquidity
from engine.sim.market import MarketGenerator
from engine.trading import exchange_core as core
from engine.trading.account import CASH, PRICE_LIMIT, SHARES, TICK, Account, OrderLife
from engine.trading.fees import FeeRates

FREE = FeeRates(0, 0)
# base 50,000: limits 35,000 .. 65,000, tick 100


def test_a_new_order_is_judged_on_its_price_then_on_what_it_reserves() -> None:
    a = Account(650_000, FREE, shares={"A": 3})
    assert core.order_refusal(a, Side.BUY, "A", 1, 50_050, 35_000, 65_000) == TICK
    assert core.order_refusal(a, Side.BUY, "A", 1, 65_100, 35_000, 65_000) == PRICE_LIMIT
    assert core.order_refusal(a, Side.BUY, "A", 1, 34_900, 35_000, 65_000) == PRICE_LIMIT
    # a market buy reserves at the upper limit: 10 x 65,000 is all the cash, 11 is not
    assert core.order_refusal(a, Side.BUY, "A", 10, None, 35_000, 65_000) is None
    assert core.order_refusal(a, Side.BUY, "A", 11, None, 35_000, 65_000) == CASH
    # the price rule comes before the cash: an off-tick price that is also too dear is TICK
    assert core.order_refusal(a, Side.BUY, "A", 100, 50_050, 35_000, 65_000) == TICK
    assert core.order_refusal(a, Side.SELL, "A", 3, None, 35_000, 65_000) is None
    assert core.order_refusal(a, Side.SELL, "A", 4, 50_000, 35_000, 65_000) == SHARES
    assert core.reserve_price(None, 65_000) == 65_000
    assert core.reserve_price(50_000, 65_000) == 50_000


def test_a_taken_order_holds_and_a_cancel_shrinks_the_hold_to_what_stays_open() -> None:
    a = Account(1_000_000, FREE)
    life = OrderLife()
    core.take_order(a, "0000001", life, Side.BUY, "A", 5, 10_000)
    assert (life.open_qty, a.orderable_cash()) == (5, 950_000)
    core.cancel(a, "0000001", life, Side.BUY, "A", 2, 10_000)
    assert (life.open_qty, a.cash_held) == (3, {"0000001": 30_000})
    core.expire(a, "0000001", life)
    assert (life.open_qty, a.cash_held, a.orderable_cash()) == (0, {}, 1_000_000)


def test_an_amend_moves_the_hold_and_keeps_what_stays_behind() -> None:
    a = Account(100_000, FREE)
    orig = OrderLife()
    core.take_order(a, "0000001", orig, Side.BUY, "A", 5, 10_000)
    # keep 2 at 10,000 (20,000), move 3 to 9,000 (27,000): 47,000 of 100,000 is held
    assert core.amend_refusal(a, "0000001", Side.BUY, 2, 10_000, 3, 9_000, 7_000, 13_000) is None
    core.amend(a, Side.BUY, "A", "0000001", 2, 10_000, "0000002", 3, 9_000)
    assert a.cash_held == {"0000001": 20_000, "0000002": 27_000}
    # all 3 of the new number to 13,000 needs 39,000 - 27,000 more of the 53,000 free
    assert core.amend_refusal(a, "0000002", Side.BUY, 0, 0, 3, 13_000, 7_000, 13_000) is None
    assert core.amend_refusal(a, "0000002", Side.BUY, 0, 0, 3, 13_100, 7_000, 13_000) == (
        PRICE_LIMIT
    )
    assert core.amend_refusal(a, "0000002", Side.BUY, 0, 0, 3, 10_005, 7_000, 13_000) == TICK
    # renumbered in place (the backtest's way): keeping nothing releases the old number
    core.amend(a, Side.BUY, "A", "0000002", 0, 0, "0000003", 3, 12_000)
    assert a.cash_held == {"0000001": 20_000, "0000003": 36_000}
    poor = Account(50_000, FREE)
    core.take_order(poor, "0000001", OrderLife(), Side.BUY, "A", 5, 10_000)
    # 5 x 10,100 = 50,500 needs 500 more than the 50,000 held, and nothing is free
    assert core.amend_refusal(poor, "0000001", Side.BUY, 0, 0, 5, 10_100, 7_000, 13_000) == CASH


def test_a_cancel_or_amend_must_reach_an_order_with_enough_open() -> None:
    open3 = OrderLife(open_qty=3)
    assert core.target_refusal(None, False, 0) == core.NO_ORDER
    assert core.target_refusal(open3, True, 0, cancelled=True) == core.NO_ORDER
    assert core.target_refusal(open3, False, 0) == core.SYMBOL_MISMATCH
    assert core.target_refusal(OrderLife(filled_qty=3), True, 0) == core.NOTHING_OPEN
    assert core.target_refusal(open3, True, 4) == core.QTY_EXCEEDS
    assert core.target_refusal(open3, True, -1) == core.QTY_EXCEEDS
    assert core.target_refusal(open3, True, 3) is None
    assert core.target_refusal(open3, True, 0) is None  # 0: all that is open


def test_ioc_and_fok_remainders_end_and_day_orders_rest() -> None:
    assert core.ends_unfilled(TimeInForce.IOC)
    assert core.ends_unfilled(TimeInForce.FOK)
    assert not core.ends_unfilled(TimeInForce.DAY)
    assert core.after_arrival(0, TimeInForce.IOC) is core.AfterArrival.DONE
    assert core.after_arrival(2, TimeInForce.IOC) is core.AfterArrival.ENDS
    assert core.after_arrival(2, TimeInForce.FOK) is core.AfterArrival.ENDS
    assert core.after_arrival(2, TimeInForce.DAY) is core.AfterArrival.RESTS
    assert core.after_arrival(0, TimeInForce.DAY) is core.AfterArrival.DONE
    lives = [OrderLife(open_qty=1), OrderLife(filled_qty=2), OrderLife(open_qty=4)]
    assert core.open_at_close(lives) == [lives[0], lives[2]]


def test_order_numbers_are_seven_digits_and_restart_each_day() -> None:
    n = core.OrderNumbers()
    assert [n.next(), n.next(), n.next()] == ["0000001", "0000002", "0000003"]
    n.restart()
    assert n.next() == "0000001"


def test_the_backtest_s_arrival_takes_the_quote_whole_or_nothing() -> None:
    ask, bid, halted = {"A": 50_100}, {"A": 50_000}, set[str]()
    liq = QuoteLiquidity(ask, bid, halted)
    assert core.arrival_fills(liq, "A", Side.BUY, 7, None, TimeInForce.DAY) == [(50_100, 7)]
    assert core.arrival_fills(liq, "A", Side.BUY, 7, 50_000, TimeInForce.FOK) == []
    assert core.arrival_fills(liq, "A", Side.SELL, 7, 50_000, TimeInForce.FOK) == [(50_000, 7)]
    assert core.arrival_fills(liq, "B", Side.SELL, 7, None, TimeInForce.IOC) == []  # no quote
    halted.add("A")  # a VI: nothing is taken
    assert core.arrival_fills(liq, "A", Side.BUY, 7, None, TimeInForce.DAY) == []


def test_the_simulator_s_fok_is_killed_past_the_visible_book() -> None:
    market = MarketGenerator(["005930"], 42, ManualClock())
    liq = BookLiquidity(market)
    book = market.book("005930")
    visible = sum(q for _, q in book.asks)
    top = book.asks[-1][0]
    assert liq.fillable("005930", Side.BUY, visible + 1, top) == visible
    assert core.arrival_fills(liq, "005930", Side.BUY, visible + 1, top, TimeInForce.FOK) == []
    assert market.book("005930") == book  # a killed FOK takes nothing
    best_price, best_qty = book.asks[0]
    got = core.arrival_fills(liq, "005930", Side.BUY, best_qty, best_price, TimeInForce.FOK)
    assert got == [(best_price, best_qty)]
