"""Pre-trade risk driven directly: each reason code with the numbers that tripped it, the order
of the checks, the trading state, and the day's counters across restarts and midnight KST."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from engine.clock import KST, ManualClock
from engine.config import RiskConfig
from engine.events import (
    Exchange,
    OrderState,
    Side,
    TimeInForce,
    TradingState,
    TradingStateChanged,
)
from engine.trading.orders import Order, OrderRequest
from engine.trading.risk import Reason, Rejection, RiskEngine

SYM = "005930"
OTHER = "000660"
BASE = 70_000  # previous close: band 49,000 .. 91,000
LAST = 70_000


@dataclass
class Account:
    """A fake AccountView: the numbers the portfolio and the OMS would give."""

    positions: dict[str, int] = field(default_factory=dict)
    open_sells: dict[str, int] = field(default_factory=dict)
    open_buys: dict[str, int] = field(default_factory=dict)
    open_orders: int = 0
    open_buy_value: int = 0
    exposure: int = 0
    cash: int = 10**12
    last: dict[str, int] = field(default_factory=lambda: {SYM: LAST, OTHER: 200_000})
    base: dict[str, int] = field(default_factory=lambda: {SYM: BASE, OTHER: 200_000})
    unknown: set[str] = field(default_factory=set)
    mine: dict[tuple[str, str], int] | None = None
    """(strategy, symbol) -> shares its fills hold; None: the tests' one strategy ("s1")
    holds every position."""
    external: dict[str, int] = field(default_factory=dict)
    my_open_sells: dict[tuple[str, str], int] | None = None
    """(strategy, symbol) -> its open sells; None: every open sell is "s1"'s."""

    def position_qty(self, symbol: str) -> int:
        return self.positions.get(symbol, 0)

    def strategy_qty(self, strategy: str, symbol: str) -> int:
        if self.mine is None:
            return self.positions.get(symbol, 0) if strategy == "s1" else 0
        return self.mine.get((strategy, symbol), 0)

    def strategy_open_qty(self, strategy: str, symbol: str, side: Side) -> int:
        if side is Side.BUY:
            return self.open_buys.get(symbol, 0) if strategy == "s1" else 0
        if self.my_open_sells is None:
            return self.open_sells.get(symbol, 0) if strategy == "s1" else 0
        return self.my_open_sells.get((strategy, symbol), 0)

    def external_qty(self, symbol: str) -> int:
        return self.external.get(symbol, 0)

    def open_qty(self, symbol: str, side: Side) -> int:
        book = self.open_buys if side is Side.BUY else self.open_sells
        return book.get(symbol, 0)

    def open_orders_count(self) -> int:
        return self.open_orders

    def open_buy_notional(self) -> int:
        return self.open_buy_value

    def gross_exposure(self) -> int:
        return self.exposure

    def buying_power(self) -> int:
        return self.cash

    def last_price(self, symbol: str) -> int | None:
        return self.last.get(symbol)

    def base_price(self, symbol: str) -> int | None:
        return self.base.get(symbol)

    def has_unknown_order(self, symbol: str) -> bool:
        return symbol in self.unknown


# Limits far away unless a test brings one close.
LOOSE = RiskConfig(
    max_order_qty=10**6,
    max_order_notional=10**12,
    max_position_qty=10**8,
    max_gross_exposure=10**13,
    max_open_orders=1_000,
    max_orders_per_s=1_000,
    max_orders_per_min=100_000,
    daily_loss_limit=1_000_000,
    fat_finger_bp=500,
    duplicate_window_s=0,
)


def engine(
    clock: ManualClock | None = None, *, session: bool = False, **limits: object
) -> RiskEngine:
    cfg = dataclasses.replace(LOOSE, **limits)  # type: ignore[arg-type]
    return RiskEngine(cfg, clock or ManualClock(), check_session_hours=session)


def buy(qty: int = 10, price: int | None = LAST, symbol: str = SYM) -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, qty, price)


def sell(qty: int = 10, price: int | None = LAST, symbol: str = SYM) -> OrderRequest:
    return OrderRequest(symbol, Side.SELL, qty, price)


def rejected(risk: RiskEngine, req: OrderRequest, view: Account, **kw: object) -> Rejection:
    r = risk.check(req, "s1", view, **kw)  # type: ignore[arg-type]
    assert r is not None, f"{req} passed"
    return r


def test_an_ordinary_order_passes() -> None:
    risk = engine()
    assert risk.check(buy(), "s1", Account()) is None
    assert risk.check(sell(5), "s1", Account(positions={SYM: 5})) is None
    assert risk.counters()["rejected"] == 0


def test_reason_values_are_their_names() -> None:
    assert all(r.value == r.name for r in Reason)
    assert len(Reason) == 24  # + VI_ACTIVE, VENUE (issue 15)


# --- 1. trading state -----------------------------------------------------------------------


def test_halted_refuses_every_new_order_even_a_reducing_sell() -> None:
    risk = engine()
    risk.halt("kill_switch")
    held = Account(positions={SYM: 100})
    assert rejected(risk, buy(), held) == Rejection(Reason.HALTED, detail="kill_switch")
    assert rejected(risk, sell(10), held).reason is Reason.HALTED


def test_reducing_lets_only_reducing_sells_through() -> None:
    risk = engine()
    risk.set_state(TradingState.REDUCING, "operator")
    view = Account(positions={SYM: 100}, open_sells={SYM: 60})
    assert rejected(risk, buy(7), view) == Rejection(Reason.REDUCING_ONLY, 0, 7)
    # 100 held, 60 already being sold: 41 would sell more than is left.
    assert rejected(risk, sell(41), view) == Rejection(Reason.REDUCING_ONLY, 40, 41)
    assert risk.check(sell(40), "s1", view) is None


def test_reconciling_refuses_new_exposure_only() -> None:
    risk = engine()
    risk.reconciling = True
    view = Account(positions={SYM: 10})
    assert rejected(risk, buy(), view) == Rejection(Reason.RECONCILING)
    assert rejected(risk, sell(11), view).reason is Reason.RECONCILING
    assert risk.check(sell(10), "s1", view) is None
    risk.reconciling = False
    assert risk.check(buy(), "s1", view) is None


def test_feed_down_refuses_new_exposure_only() -> None:
    risk = engine()
    risk.feed_live = False
    view = Account(positions={SYM: 10})
    assert rejected(risk, buy(), view) == Rejection(Reason.FEED_DOWN)
    assert risk.check(sell(10), "s1", view) is None
    risk.feed_live = True
    assert risk.check(buy(), "s1", view) is None


def test_an_order_of_unknown_outcome_holds_new_exposure_on_its_symbol() -> None:
    risk = engine()
    view = Account(positions={SYM: 10}, unknown={SYM})
    assert rejected(risk, buy(), view) == Rejection(Reason.UNKNOWN_PENDING, detail=SYM)
    assert risk.check(buy(1, 200_000, OTHER), "s1", view) is None
    assert risk.check(sell(10), "s1", view) is None


def test_daily_loss_breach_halts_and_blocks_new_exposure_after_a_resume() -> None:
    risk = engine(daily_loss_limit=1_000_000)
    assert risk.add_realized_pnl(-999_999) is None
    assert risk.state is TradingState.ACTIVE
    change = risk.add_realized_pnl(-1)
    assert change == TradingStateChanged(
        TradingState.HALTED,
        TradingState.ACTIVE,
        "DAILY_LOSS: lost 1000000 of 1000000",
        ("DAILY_LOSS",),
    )
    assert risk.state is TradingState.HALTED
    assert risk.add_realized_pnl(-5) is None  # already halted: no second event
    risk.resume("operator")
    view = Account(positions={SYM: 10})
    assert rejected(risk, buy(), view) == Rejection(Reason.DAILY_LOSS, 1_000_000, 1_000_005)
    assert risk.check(sell(10), "s1", view) is None


def test_a_gain_does_not_halt() -> None:
    risk = engine(daily_loss_limit=1_000)
    assert risk.add_realized_pnl(5_000) is None
    assert risk.add_realized_pnl(-5_999) is None
    assert risk.state is TradingState.ACTIVE
    assert risk.add_realized_pnl(-1) is not None


# --- 2. session hours -------------------------------------------------------------------------


def test_session_closed_on_a_holiday() -> None:
    clock = ManualClock(datetime(2026, 1, 1, 10, 0, 5, tzinfo=KST))
    risk = engine(clock, session=True)
    r = rejected(risk, buy(), Account())
    assert r.reason is Reason.SESSION_CLOSED
    assert r.value == 100_005
    assert "New Year" in r.detail


def test_session_closed_in_the_krx_gap_but_nxt_trades_in_the_evening() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 15, 35, tzinfo=KST))
    risk = engine(clock, session=True)
    assert rejected(risk, buy(), Account()) == Rejection(
        Reason.SESSION_CLOSED, 0, 153_500, "KRX 2026-01-06 15:35:00"
    )
    clock.advance(3 * 3600)  # 18:35: KRX closed, NXT's after-market open
    assert rejected(risk, buy(), Account()).reason is Reason.SESSION_CLOSED
    assert risk.check(buy(), "s1", Account(), exchange=Exchange.NXT) is None


def test_session_check_off_lets_a_holiday_order_through() -> None:
    clock = ManualClock(datetime(2026, 1, 1, 3, 0, tzinfo=KST))
    assert engine(clock, session=False).check(buy(), "s1", Account()) is None
    assert engine(ManualClock(), session=True).check(buy(), "s1", Account()) is None  # Mon 9:00


# --- 3. the order itself ----------------------------------------------------------------------


def test_max_order_qty() -> None:
    risk = engine(max_order_qty=100)
    assert rejected(risk, buy(101), Account()) == Rejection(Reason.MAX_ORDER_QTY, 100, 101)
    assert rejected(risk, sell(101), Account(positions={SYM: 200})).limit == 100
    assert risk.check(buy(100), "s1", Account()) is None


def test_qty_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="qty"):
        engine().check(buy(0), "s1", Account())


@pytest.mark.parametrize(
    ("price", "tick"),
    [(70_050, 100), (2_000_500, 1_000), (4_997, 5), (19_995, 10), (0, 1), (-100, 1)],
)
def test_tick_size(price: int, tick: int) -> None:
    assert rejected(engine(), buy(1, price), Account()) == Rejection(Reason.TICK_SIZE, tick, price)


def test_on_tick_prices_pass_the_tick_check() -> None:
    view = Account(base={SYM: 4_000}, last={SYM: 4_000})
    assert engine().check(buy(1, 3_995), "s1", view) is None
    assert rejected(engine(), buy(1, 3_997), view) == Rejection(Reason.TICK_SIZE, 5, 3_997)


def test_price_band_is_30_percent_of_the_base_price() -> None:
    risk = engine(fat_finger_bp=10_000)
    view = Account()
    assert risk.check(buy(1, 91_000), "s1", view) is None
    assert risk.check(buy(1, 49_000), "s1", view) is None
    assert rejected(risk, buy(1, 91_100), view) == Rejection(
        Reason.PRICE_BAND, 91_000, 91_100, "band 49000..91000"
    )
    assert rejected(risk, buy(1, 48_950), view) == Rejection(
        Reason.PRICE_BAND, 49_000, 48_950, "band 49000..91000"
    )


def test_fat_finger_from_the_last_trade() -> None:
    risk = engine(fat_finger_bp=500)
    view = Account(last={SYM: 70_000})
    assert risk.check(buy(1, 73_500), "s1", view) is None  # exactly 500 bp
    assert risk.check(buy(1, 66_500), "s1", view) is None
    # 3,600 / 70,000 = 514.3 bp, reported rounded up so that value > limit always holds.
    assert rejected(risk, buy(1, 73_600), view) == Rejection(
        Reason.FAT_FINGER, 500, 515, "last 70000"
    )
    assert rejected(risk, sell(1, 66_400), Account(positions={SYM: 1})).value == 515


def test_fat_finger_before_the_first_trade_measures_from_the_base_price() -> None:
    view = Account(last={}, base={SYM: 70_000})
    assert rejected(engine(fat_finger_bp=100), buy(1, 71_000), view) == Rejection(
        Reason.FAT_FINGER, 100, 143, "base 70000"
    )


def test_no_price() -> None:
    risk = engine()
    nothing = Account(last={}, base={})
    assert rejected(risk, buy(1, None), nothing) == Rejection(
        Reason.NO_PRICE, detail="market order: no last or base price"
    )
    assert rejected(risk, sell(1, None), Account(positions={SYM: 1}, last={}, base={})).reason is (
        Reason.NO_PRICE
    )
    # A limit order whose daily band cannot be known is refused too.
    assert rejected(risk, buy(1, 70_000), Account(base={})) == Rejection(
        Reason.NO_PRICE, detail="no base price for the daily band"
    )


def test_max_notional_of_a_limit_order() -> None:
    risk = engine(max_order_notional=1_000_000)
    assert risk.check(buy(14, 70_000), "s1", Account()) is None  # 980,000
    # Exactly at the limit is within it (issue 14 item 25: a `>=` survived the suite).
    at_limit = engine(max_order_notional=980_000)
    assert at_limit.check(buy(14, 70_000), "s1", Account()) is None
    assert rejected(at_limit, buy(14, 70_100), Account()).reason is Reason.MAX_NOTIONAL
    assert rejected(risk, buy(15, 70_000), Account()) == Rejection(
        Reason.MAX_NOTIONAL, 1_000_000, 1_050_000
    )


def test_a_market_buy_is_valued_at_the_upper_limit_a_market_sell_at_the_last_price() -> None:
    risk = engine(max_order_notional=1_000_000)
    # Base 70,000: KRX reserves a market buy at the 91,000 upper limit.
    assert risk.check(buy(10, None), "s1", Account()) is None  # 910,000
    assert rejected(risk, buy(11, None), Account()) == Rejection(
        Reason.MAX_NOTIONAL, 1_000_000, 1_001_000
    )
    held = Account(positions={SYM: 100}, last={SYM: 70_000})
    assert risk.check(sell(14, None), "s1", held) is None
    assert rejected(risk, sell(15, None), held).value == 1_050_000
    # No base price: the last price is the best estimate left.
    assert rejected(risk, buy(15, None), Account(base={})).value == 1_050_000


# --- 4. the account ---------------------------------------------------------------------------


def test_short_sale() -> None:
    risk = engine()
    view = Account(positions={SYM: 10}, open_sells={SYM: 5})
    assert rejected(risk, sell(6), view) == Rejection(Reason.SHORT_SALE, 5, 6)
    assert rejected(risk, sell(1, symbol=OTHER, price=200_000), view) == Rejection(
        Reason.SHORT_SALE, 0, 1
    )
    assert risk.check(sell(5), "s1", view) is None


def test_max_open_orders() -> None:
    risk = engine(max_open_orders=3)
    assert risk.check(buy(), "s1", Account(open_orders=2)) is None
    assert rejected(risk, buy(), Account(open_orders=3)) == Rejection(Reason.MAX_OPEN_ORDERS, 3, 4)


def test_max_position_counts_held_and_open_buys() -> None:
    risk = engine(max_position_qty=100)
    view = Account(positions={SYM: 60}, open_buys={SYM: 30})
    assert risk.check(buy(10), "s1", view) is None
    assert rejected(risk, buy(11), view) == Rejection(Reason.MAX_POSITION, 100, 101)


def test_max_gross_exposure_counts_positions_open_buys_and_the_order() -> None:
    risk = engine(max_gross_exposure=10_000_000)
    view = Account(exposure=8_000_000, open_buy_value=1_300_000)
    assert risk.check(buy(10, 70_000), "s1", view) is None  # 8.0M + 1.3M + 0.7M = 10.0M
    assert rejected(risk, buy(11, 70_000), view) == Rejection(
        Reason.MAX_GROSS_EXPOSURE, 10_000_000, 10_070_000
    )


def test_buying_power_counts_open_buys() -> None:
    risk = engine()
    view = Account(cash=1_000_000, open_buy_value=300_000)
    assert risk.check(buy(10, 70_000), "s1", view) is None  # 300,000 + 700,000
    assert rejected(risk, buy(11, 70_000), view) == Rejection(
        Reason.BUYING_POWER, 1_000_000, 1_070_000
    )


def test_a_reducing_sell_skips_the_exposure_checks() -> None:
    risk = engine(max_position_qty=10, max_gross_exposure=1, max_open_orders=5)
    view = Account(positions={SYM: 500}, exposure=35_000_000, cash=0)
    assert risk.check(sell(500), "s1", view) is None
    assert rejected(risk, buy(1), view).reason is Reason.MAX_POSITION


# --- 5. the flow of orders --------------------------------------------------------------------


def test_order_rate_per_second_is_a_sliding_window() -> None:
    clock = ManualClock()
    risk = engine(clock, max_orders_per_s=3)
    view = Account()
    for qty in (1, 2, 3):
        assert risk.check(buy(qty), "s1", view) is None
        risk.record_sent(buy(qty), "s1")
        clock.advance(0.25)
    # Sends at 0.0, 0.25, 0.5; now 0.75: a fourth would make 4 in the last second.
    assert rejected(risk, buy(4), view) == Rejection(Reason.ORDER_RATE, 3, 4, "per second")
    clock.advance(0.25)  # 1.0: the send at 0.0 has left the window
    assert risk.check(buy(4), "s1", view) is None


def test_order_rate_per_minute() -> None:
    clock = ManualClock()
    risk = engine(clock, max_orders_per_s=100, max_orders_per_min=5)
    view = Account()
    for qty in range(1, 6):
        risk.record_sent(buy(qty), "s1")
        clock.advance(10)
    # Sends at 0, 10, ..., 40; now 50.
    assert rejected(risk, buy(9), view) == Rejection(Reason.ORDER_RATE, 5, 6, "per minute")
    clock.advance(10)  # 60: the first send is a minute old
    assert risk.check(buy(9), "s1", view) is None


def test_duplicate_guard() -> None:
    clock = ManualClock()
    risk = engine(clock, duplicate_window_s=1.0)
    view = Account()
    risk.record_sent(buy(10, 70_000), "s1")
    clock.advance(0.5)
    assert rejected(risk, buy(10, 70_000), view) == Rejection(Reason.DUPLICATE, 1000, 500)
    # Another strategy, quantity, price or side is not a duplicate.
    assert risk.check(buy(10, 70_000), "s2", view) is None
    assert risk.check(buy(11, 70_000), "s1", view) is None
    assert risk.check(buy(10, 70_100), "s1", view) is None
    assert risk.check(buy(10, None), "s1", view) is None
    clock.advance(0.5)
    assert risk.check(buy(10, 70_000), "s1", view) is None


def test_duplicate_guard_off_at_zero() -> None:
    risk = engine(duplicate_window_s=0)
    risk.record_sent(buy(), "s1")
    assert risk.check(buy(), "s1", Account()) is None


def test_duplicate_guard_survives_many_other_orders() -> None:
    clock = ManualClock()
    risk = engine(clock, duplicate_window_s=5.0)
    risk.record_sent(buy(1), "s1")
    for qty in range(2, 200):  # enough to trigger the guard's pruning
        clock.advance(0.01)
        risk.record_sent(buy(qty), "s1")
    assert rejected(risk, buy(1), Account()).reason is Reason.DUPLICATE
    clock.advance(5)
    assert risk.check(buy(1), "s1", Account()) is None


def test_stale_after_max_order_delay() -> None:
    clock = ManualClock()
    risk = engine(clock, max_order_delay_ms=3_000)
    decided = clock.monotonic()
    clock.advance(3.0)
    assert risk.check_stale(decided) is None
    clock.advance(0.25)
    assert risk.check_stale(decided) == Rejection(Reason.STALE, 3_000, 3_250)


# --- the order of the checks ------------------------------------------------------------------


def test_state_checks_come_before_static_and_account_checks() -> None:
    risk = engine(max_order_qty=1, max_open_orders=1)
    risk.reconciling = True
    huge = buy(10, 70_050)  # too big, off tick, and too many open orders
    view = Account(open_orders=5)
    assert rejected(risk, huge, view).reason is Reason.RECONCILING
    risk.reconciling = False
    assert rejected(risk, huge, view).reason is Reason.MAX_ORDER_QTY
    assert rejected(risk, buy(1, 70_050), view).reason is Reason.TICK_SIZE
    assert rejected(risk, buy(1, 70_000), view).reason is Reason.MAX_OPEN_ORDERS


def test_rejections_are_counted() -> None:
    risk = engine(max_order_qty=1)
    rejected(risk, buy(2), Account())
    rejected(risk, buy(3), Account())
    risk.check(buy(1), "s1", Account())
    assert risk.counters()["rejected"] == 2


# --- trading state ----------------------------------------------------------------------------


def test_trading_state_moves_and_their_events() -> None:
    risk = engine()
    assert risk.state is TradingState.ACTIVE
    assert risk.resume("noop") is None
    assert risk.set_state(TradingState.REDUCING, "flatten") == TradingStateChanged(
        TradingState.REDUCING, TradingState.ACTIVE, "flatten"
    )
    assert risk.halt("kill_switch") == TradingStateChanged(
        TradingState.HALTED, TradingState.REDUCING, "kill_switch", ("OPERATOR",)
    )
    assert risk.halt("again") is None
    assert risk.state_reason == "kill_switch"
    assert risk.resume("operator") == TradingStateChanged(
        TradingState.ACTIVE, TradingState.HALTED, "operator"
    )
    assert risk.check(buy(), "s1", Account()) is None


# --- daily counters ---------------------------------------------------------------------------


def test_counters_restore_on_the_same_day() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 10, 0, tzinfo=KST))
    risk = engine(clock, daily_loss_limit=1_000_000)
    for qty in (1, 2, 3):
        risk.record_sent(buy(qty), "s1")
    risk.add_realized_pnl(-250_000)
    day, saved = risk.trading_day(), risk.counters()
    assert (day, saved) == ("20260106", {"orders_sent": 3, "realized_pnl": -250_000, "rejected": 0})

    clock.advance(3600)  # a restart later the same day
    again = engine(clock, daily_loss_limit=1_000_000)
    assert again.restore(day, saved) is None
    assert again.counters() == saved
    # The restored loss counts towards the limit.
    assert again.add_realized_pnl(-750_000) is not None
    assert again.state is TradingState.HALTED


def test_a_restored_breach_halts_again() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 10, 0, tzinfo=KST))
    risk = engine(clock, daily_loss_limit=1_000_000)
    change = risk.restore("20260106", {"orders_sent": 9, "realized_pnl": -1_200_000})
    assert change is not None
    assert change.state is TradingState.HALTED
    assert risk.state is TradingState.HALTED


def test_counters_of_another_day_are_not_restored() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 8, 0, tzinfo=KST))
    risk = engine(clock)
    assert risk.restore("20260105", {"orders_sent": 7, "realized_pnl": -5_000_000}) is None
    assert risk.counters() == {"orders_sent": 0, "realized_pnl": 0, "rejected": 0}
    assert risk.state is TradingState.ACTIVE


def test_counters_reset_at_midnight_kst() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 23, 59, 59, tzinfo=KST))
    risk = engine(clock, daily_loss_limit=1_000_000)
    risk.record_sent(buy(), "s1")
    risk.add_realized_pnl(-900_000)
    assert risk.trading_day() == "20260106"
    clock.advance(0.5)
    assert risk.counters()["orders_sent"] == 1
    days: list[str] = []
    risk.on_new_day.append(lambda: days.append(risk.trading_day()))
    clock.advance(0.5)  # 00:00:00 KST on the 7th (15:00 UTC on the 6th)
    assert days == []  # told by the first call of the new day, not by the clock
    assert risk.trading_day() == "20260107"
    risk.roll_day()
    assert days == ["20260107"]  # once
    assert risk.counters() == {"orders_sent": 0, "realized_pnl": 0, "rejected": 0}
    # Yesterday's loss no longer counts towards today's limit.
    assert risk.add_realized_pnl(-900_000) is None
    assert risk.state is TradingState.ACTIVE


def test_a_halt_outlives_midnight() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 15, 0, tzinfo=KST))
    risk = engine(clock, daily_loss_limit=1_000)
    assert risk.add_realized_pnl(-1_000) is not None
    clock.advance(10 * 3600)  # 01:00 the next day
    assert risk.counters()["realized_pnl"] == 0
    assert risk.state is TradingState.HALTED  # a person resumes, not the calendar
    assert rejected(risk, buy(), Account()).reason is Reason.HALTED
    risk.resume("operator")
    assert risk.check(buy(), "s1", Account()) is None


def test_extra_holidays_from_config_reach_the_default_calendar() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 10, 0, tzinfo=KST))
    risk = engine(clock, session=True, extra_holidays=("2026-01-06",))
    r = rejected(risk, buy(), Account())
    assert r.reason is Reason.SESSION_CLOSED
    assert "extra holiday" in r.detail


def test_ioc_and_fok_orders_are_checked_like_day_orders() -> None:
    risk = engine(max_order_qty=5)
    for tif in (TimeInForce.IOC, TimeInForce.FOK):
        req = OrderRequest(SYM, Side.BUY, 6, LAST, tif)
        assert rejected(risk, req, Account()) == Rejection(Reason.MAX_ORDER_QTY, 5, 6)


# --- item 9 of issue 14: a strategy sells only its own shares ------------------------------


def test_a_strategy_sells_its_own_shares_never_another_s() -> None:
    risk = engine()
    # The account holds 10: "a" bought 5, "b" 3, and 2 were bought by hand.
    view = Account(
        positions={SYM: 10},
        mine={("a", SYM): 5, ("b", SYM): 3},
        external={SYM: 2},
        my_open_sells={("a", SYM): 1},
    )
    assert risk.check(sell(4), "a", view) is None
    # One more than its own (5, one of them already on sale) is refused, though the account
    # holds enough: the rest is "b"'s and the hand's.
    assert risk.check(sell(5), "a", view) == Rejection(Reason.NOT_OWN_POSITION, 4, 5, SYM)
    assert risk.check(sell(1), "c", view) == Rejection(Reason.NOT_OWN_POSITION, 0, 1, SYM)
    # The operator's own orders (no strategy) may sell whatever the account holds.
    assert risk.check(sell(9), None, view) is None


def test_may_sell_external_adds_the_hand_bought_shares_but_never_another_strategy_s() -> None:
    risk = engine()
    risk.may_sell_external = frozenset({"b"})
    view = Account(
        positions={SYM: 10},
        mine={("a", SYM): 5, ("b", SYM): 3},
        external={SYM: 2},
        my_open_sells={},
    )
    assert risk.check(sell(5), "b", view) is None  # its 3 and the 2 external
    assert risk.check(sell(6), "b", view) == Rejection(Reason.NOT_OWN_POSITION, 5, 6, SYM)
    assert risk.check(sell(3), "a", view) is None
    assert risk.check(sell(6), "a", view) == Rejection(Reason.NOT_OWN_POSITION, 5, 6, SYM)


def test_an_amend_of_a_strategy_s_own_sell_is_not_counted_against_itself() -> None:
    risk = engine()
    view = Account(
        positions={SYM: 5},
        open_sells={SYM: 5},
        mine={("a", SYM): 5},
        my_open_sells={("a", SYM): 5},
    )
    o = Order("c1", "a", SYM, Side.SELL, 5, LAST, state=OrderState.ACCEPTED)
    assert risk.check_amend(sell(5, LAST + 100), "a", view, replacing=o) is None
    # Without the order it replaces, the same sell is more than "a" has left to sell.
    assert risk.check(sell(5, LAST + 100), "a", view) is not None
