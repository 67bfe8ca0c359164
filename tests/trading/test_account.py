"""The exchange core's account rules (engine/trading/account.py) on literal numbers."""

from __future__ import annotations

from engine.events import Side
from engine.trading.account import (
    CASH,
    PRICE_LIMIT,
    SHARES,
    TICK,
    Account,
    OrderLife,
    buy_reservation,
    limit_refusal,
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


def test_an_amend_needs_only_the_cash_its_new_reservation_adds() -> None:
    a = Account(1_000_000, RATES)
    a.hold("1", Side.BUY, "005930", 10, 50_000)  # 500,075 held, 499,925 free
    # All 10 to 90,000: 900,135 needed, 500,075 given back: 400,060 more, which is free.
    assert a.amend_refusal("1", Side.BUY, 0, 0, 10, 90_000) is None
    # All 10 to 100,000: 1,000,150 - 500,075 = 500,075 more than the 499,925 free.
    assert a.amend_refusal("1", Side.BUY, 0, 0, 10, 100_000) == CASH
    # 5 of 10 to 100,000, 5 kept at 50,000: 500,075 + 250,037 - 500,075 = 250,037 more.
    assert a.amend_refusal("1", Side.BUY, 5, 50_000, 5, 100_000) is None
    assert a.amend_refusal("1", Side.SELL, 0, 0, 10, 10**9) is None  # a sell moves shares


def test_an_execution_moves_the_order_s_life_and_holds_for_what_stays_open() -> None:
    a = Account(1_000_000, RATES)
    life = OrderLife(open_qty=10)
    a.hold("1", Side.BUY, "005930", 10, 50_000)
    assert a.execute("1", life, Side.BUY, "005930", 4, 49_900, 50_000) == (29, 0)  # 199,600
    assert (life.open_qty, life.filled_qty, life.filled_value) == (6, 4, 199_600)
    assert (life.fee, life.tax) == (29, 0)
    assert a.cash_held == {"1": 300_000 + 45}
    assert a.execute("1", life, Side.BUY, "005930", 6, 50_000, 50_000) == (45, 0)
    assert life.open_qty == 0
    assert a.cash_held == {}
    assert a.cash == 1_000_000 - 199_600 - 29 - 300_000 - 45


def test_limits_given_as_prices_refuse_as_the_base_price_does() -> None:
    assert limit_refusal(65_000, 35_000, 65_000) is None
    assert limit_refusal(65_100, 35_000, 65_000) == PRICE_LIMIT
    assert limit_refusal(0, 35_000, 65_000) == TICK
    assert limit_refusal(49_990, 35_000, 65_000) == TICK  # 20,000..50,000: 50s
