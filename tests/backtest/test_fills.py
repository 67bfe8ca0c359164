"""The fill model's pure rules (engine/backtest/fills.py) on literal numbers."""

from __future__ import annotations

from engine.backtest.fills import Match, Print, bar_walk, marketable, match_print, queue_ahead
from engine.events import Side

B, S = Side.BUY, Side.SELL


def test_a_bar_walks_high_first_unless_the_low_is_nearer_the_open() -> None:
    assert [p.price for p in bar_walk(100, 110, 95, 105, 100)] == [100, 95, 110, 105]
    assert [p.price for p in bar_walk(100, 103, 90, 95, 100)] == [100, 103, 90, 95]
    assert [p.price for p in bar_walk(100, 105, 95, 100, 100)] == [100, 105, 95, 100]  # a tie
    assert [p.qty for p in bar_walk(100, 110, 95, 105, 103)] == [25, 25, 25, 28]


def test_an_arriving_order_takes_a_known_quote_when_its_limit_reaches_it() -> None:
    assert marketable(B, None, 50_100, 50_000) == 50_100
    assert marketable(B, 50_100, 50_100, 50_000) == 50_100
    assert marketable(B, 50_000, 50_100, 50_000) == 0
    assert marketable(S, 49_900, 50_100, 50_000) == 50_000
    assert marketable(S, None, 50_100, 0) == 0  # no bid known: it waits for a print


def test_a_print_through_the_limit_fills_at_the_limit_capped_by_its_volume() -> None:
    assert match_print(B, 50_000, 10, 0, Print(49_950, 4), first=False) == Match(4, 50_000, 0)
    assert match_print(B, 50_000, 3, 0, Print(49_950, -40), first=False) == Match(3, 50_000, 0)
    assert match_print(S, 50_000, 10, 0, Print(50_050, 6), first=False) == Match(6, 50_000, 0)
    # The first print after an arrival with no quote known: the order was marketable then.
    assert match_print(B, 50_000, 10, 0, Print(49_900, 6), first=True) == Match(6, 49_900, 0)


def test_a_touch_fills_only_what_trades_past_the_volume_ahead() -> None:
    assert match_print(B, 50_000, 10, 30, Print(50_000, 20), first=False) == Match(0, 0, 10)
    assert match_print(B, 50_000, 10, 10, Print(50_000, 14), first=False) == Match(4, 50_000, 0)
    assert match_print(B, 50_000, 10, 0, Print(50_000, 50), first=False) == Match(10, 50_000, 0)
    assert match_print(B, 50_000, 10, 5, Print(50_100, 50), first=False) == Match(0, 0, 5)


def test_a_market_order_takes_the_print_capped_by_its_volume() -> None:
    assert match_print(S, None, 10, 0, Print(50_000, 7), first=True) == Match(7, 50_000, 0)


def test_the_volume_ahead_is_the_book_s_quantity_at_the_order_s_price() -> None:
    bids = ((50_000, 120), (49_950, 300))
    asks = ((50_050, 80), (50_100, 10))
    assert queue_ahead(B, 49_950, bids, asks) == 300
    assert queue_ahead(S, 50_100, bids, asks) == 10
    assert queue_ahead(B, 49_900, bids, asks) == 0
