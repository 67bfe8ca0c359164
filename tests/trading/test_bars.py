"""Bars close on the clock (engine/trading/bars.py): at their end plus the grace, or when a
print of a later bar arrives; never only at the next bar's first trade."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from engine.clock import KST
from engine.events import Exchange, Trade
from engine.trading.bars import CLOSE_GRACE, BarBuilder

DAY = date(2026, 3, 3)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(DAY, time(hh, mm, ss), KST)


def trade(hhmmss: int, price: int, qty: int = 1) -> Trade:
    return Trade("005930", Exchange.KRX, hhmmss, price, qty, 0, 0, 0, 0, 0, 0, 0)


def test_the_day_s_last_bar_closes_on_the_clock_with_no_later_print() -> None:
    b = BarBuilder("005930", "1m")
    assert b.on_trade(trade(152959, 50_000), DAY) is None
    assert b.close_due(at(15, 30)) is None  # the end itself: late prints may still come
    assert b.next_close(at(15, 30)) == at(15, 30) + CLOSE_GRACE
    bar = b.close_due(at(15, 30) + CLOSE_GRACE)
    assert bar is not None
    assert (bar.start, bar.open, bar.close, bar.volume) == (at(15, 29), 50_000, 50_000, 1)
    assert b.close_due(at(15, 40)) is None  # closed once


def test_a_late_print_within_the_grace_counts_and_one_after_the_close_does_not() -> None:
    b = BarBuilder("005930", "1m")
    b.on_trade(trade(90010, 50_000, 3), DAY)
    b.on_trade(trade(90059, 50_100, 2), DAY)  # stamped 09:00:59, heard within the grace
    bar = b.close_due(at(9, 1) + CLOSE_GRACE)
    assert bar is not None
    assert (bar.high, bar.close, bar.volume) == (50_100, 50_100, 5)
    assert b.on_trade(trade(90059, 40_000, 9), DAY) is None  # after its close: ignored
    assert b.bars()[-1].volume == 5
    # The next bar starts fresh and is not closed by the old bar's close.
    assert b.on_trade(trade(90105, 50_200), DAY) is None
    assert b.close_due(at(9, 1, 30)) is None


def test_a_print_of_a_later_bar_closes_the_open_one_at_once() -> None:
    b = BarBuilder("005930", "5m")
    b.on_trade(trade(90010, 50_000), DAY)
    bar = b.on_trade(trade(90500, 50_500), DAY)
    assert bar is not None
    assert bar.start == at(9, 0)
    assert b.next_close(at(9, 5)) == at(9, 5) + CLOSE_GRACE
    assert b.next_close(at(9, 5) + CLOSE_GRACE) == at(9, 10) + CLOSE_GRACE


def test_a_daily_bar_ends_with_the_last_session() -> None:
    b = BarBuilder("005930", "1d")
    b.on_trade(trade(90000, 50_000), DAY)
    assert b.next_close(at(12, 0)) == at(18, 0) + CLOSE_GRACE
    assert b.close_due(at(17, 59)) is None
    bar = b.close_due(at(18, 0) + CLOSE_GRACE)
    assert bar is not None
    assert bar.start == at(0, 0)
    assert b.next_close(at(18, 0) + CLOSE_GRACE) == at(18, 0) + timedelta(days=1) + CLOSE_GRACE
