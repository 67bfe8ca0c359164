"""The exchange core's account rules (engine/trading/account.py) on literal numbers."""

from __future__ import annotations

from engine.events import Side
from engine.trading.account import (
    CASH,
    PRICE_LIMIT,
    SHARES,
    TICK,
    Account,
    buy_reservation,
    price_refusal,
)
from engine.trading.fees import FeeRates

RATES = FeeRates(1.5, 18.0)


def test_prices_must_be_on_the_tick_grid_and_inside_the_day_s_limits() -> None:
    assert price_refusal(50_000, 50_000) is None
    assert price_refusal(50_010, 50_000) == TICK  # 50,000..200,000 trades in 100s
    assert price_refusal(65_000, 50_000) is None  # the upper limit itself
    assert price_refusal(65_100, 50_000) == PRICE_LIMIT
    assert price_refusal(34_950, 50_000) == PRICE_LIMIT  # the lower limit is 35,000


def test_reservations_hold_cash_and_shares_until_released() -> None:
    a = Account(1_000_000, RATES)
    assert buy_reservation(RATES, 50_000, 10) == 500_000 + 75
    a.hold("1", Side.BUY, "005930", 10, 50_000)
    assert a.orderable_cash() == 1_000_000 - 500_075
    assert a.refusal(Side.BUY, "005930", 10, 50_000) == CASH
    assert a.refusal(Side.SELL, "005930", 1, 50_000) == SHARES
    a.release("1")
    assert a.orderable_cash() == 1_000_000


def test_a_fill_moves_cash_shares_and_cost_with_fee_and_tax() -> None:
    a = Account(1_000_000, RATES)
    assert a.settle(Side.BUY, "005930", 10, 50_000) == (75, 0)
    assert (a.cash, a.shares["005930"], a.cost["005930"]) == (499_925, 10, 500_000)
    a.hold("2", Side.SELL, "005930", 4, 51_000)
    assert a.sellable("005930") == 6
    # 204,000: fee + tax = floor(204,000 x 19.5 / 10,000) = 397, fee 30, tax 367
    assert a.settle(Side.SELL, "005930", 4, 51_000) == (30, 367)
    assert (a.cash, a.shares["005930"], a.cost["005930"]) == (499_925 + 204_000 - 397, 6, 300_000)
