"""The portfolio's arithmetic with literal expected values: average cost, fees and tax (carried
by the fill or estimated), cash, per-strategy shares, and the rebuild after a restart (issue 14
items 8 and 25)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import PortfolioConfig
from engine.events import Exchange, Fill, PositionDivergence, Side, Trade
from engine.models import CashBalance, Holding
from engine.trading.portfolio import Portfolio, Position

SYM = "005930"
OTHER = "000660"
B, S_ = Side.BUY, Side.SELL


def fill(side: Side, qty: int, price: int, fee: int = 0, tax: int = 0, **kw: object) -> Fill:
    base: dict[str, object] = {
        "client_id": "c1",
        "strategy": "s1",
        "order_no": "0000001",
        "fill_no": "1",
        "symbol": SYM,
        "side": side,
        "qty": qty,
        "price": price,
        "fee": fee,
        "tax": tax,
    }
    base.update(kw)
    return Fill(**base)  # type: ignore[arg-type]


def holding(symbol: str, qty: int, avg: int) -> Holding:
    return Holding(symbol, "name", qty, qty, avg, avg, avg * qty, avg * qty, 0, 0.0)


def cash(orderable: int) -> CashBalance:
    return CashBalance(orderable, orderable, orderable, orderable, orderable)


@dataclass(frozen=True)
class Past:
    trading_day: str
    strategy: str | None
    symbol: str
    side: Side
    qty: int
    price: int
    fee: int


def test_fees_carried_by_fills_move_pnl_and_cash() -> None:
    pf = Portfolio(PortfolioConfig())
    pf.cash = 1_000_000
    assert pf.on_fill(fill(B, 10, 70_000, fee=105)) == -105
    pos = pf.positions[SYM]
    assert (pos.qty, pos.cost, pos.avg_price) == (10, 700_000, 70_000)
    assert pf.on_fill(fill(S_, 4, 71_000, fee=42, tax=511)) == 3_447  # 284,000 - 280,000 - 553
    assert (pos.qty, pos.cost, pos.realized, pos.fees) == (6, 420_000, 3_342, 658)
    assert (pf.realized_today, pf.fees_today, pf.cash) == (3_342, 658, 583_342)


def test_fees_are_estimated_for_a_fill_that_carries_none() -> None:
    pf = Portfolio(PortfolioConfig(commission_bp=1.5, sell_tax_bp=18.0, sell_tax_table=False))
    assert pf.fee_for(B, 10, 70_000) == 105
    assert pf.fee_for(S_, 10, 69_000) == 1_345  # (1.5 + 18) bp of 690,000, truncated
    assert pf.on_fill(fill(B, 10, 70_000)) == -105
    assert pf.on_fill(fill(S_, 10, 69_000)) == -11_345  # 690,000 - 700,000 - 1,345
    assert (pf.realized_today, pf.fees_today, pf.cash) == (-11_450, 1_450, -11_450)
    assert pf.position_qty(SYM) == 0


def test_average_cost_over_several_buys_and_a_partial_sell() -> None:
    pf = Portfolio(PortfolioConfig(commission_bp=0.0, sell_tax_bp=0.0, sell_tax_table=False))
    pf.on_fill(fill(B, 3, 100))
    pf.on_fill(fill(B, 1, 104))
    assert pf.positions[SYM].avg_price == 101
    assert pf.on_fill(fill(S_, 2, 110)) == 18  # 220 - 404 x 2 / 4
    assert (pf.positions[SYM].qty, pf.positions[SYM].cost) == (2, 202)
    # Selling more than the book holds (our view lags the broker's): only what is held.
    assert pf.on_fill(fill(S_, 5, 100)) == -2  # 200 - 202
    assert (pf.positions[SYM].qty, pf.positions[SYM].cost) == (0, 0)


def test_each_strategy_has_its_own_position_and_external_fills_only_the_accounts() -> None:
    pf = Portfolio(PortfolioConfig(commission_bp=0.0, sell_tax_bp=0.0, sell_tax_table=False))
    pf.on_fill(fill(B, 5, 100, strategy="a"))
    pf.on_fill(fill(B, 3, 200, strategy="b"))
    pf.on_fill(fill(B, 2, 300, strategy=None, client_id=None))
    assert pf.on_fill(fill(S_, 5, 120, strategy="a")) == -250  # account avg 170
    assert (pf.strategy_qty("a", SYM), pf.strategy_qty("b", SYM), pf.position_qty(SYM)) == (
        0,
        3,
        5,
    )
    assert pf.by_strategy["a"][SYM].realized == 100  # its own cost: 5 x 100
    assert pf.by_strategy["b"][SYM].cost == 600


def test_market_prices_unrealized_and_exposure() -> None:
    pf = Portfolio(PortfolioConfig(commission_bp=0.0, sell_tax_bp=0.0, sell_tax_table=False))
    pf.on_fill(fill(B, 10, 1_000))
    assert pf.gross_exposure() == 10_000  # no trade seen yet: the average price
    pf.on_trade(Trade(SYM, Exchange.KRX, 93000, 1_100, 1, 1, 50, 0, 0, 0, 0, 0))
    assert (pf.unrealized(), pf.gross_exposure(), pf.base[SYM]) == (1_000, 11_000, 1_050)
    assert Position(SYM).unrealized(1_100) == 0


def test_load_takes_the_brokers_holdings_and_keeps_what_was_realised() -> None:
    pf = Portfolio(PortfolioConfig(commission_bp=0.0, sell_tax_bp=0.0, sell_tax_table=False))
    pf.on_fill(fill(B, 2, 500, symbol=OTHER))
    pf.on_fill(fill(S_, 2, 600, symbol=OTHER))
    pf.load([holding(SYM, 7, 70_000)], cash(5_000_000))
    assert (pf.positions[SYM].qty, pf.positions[SYM].cost) == (7, 490_000)
    assert (pf.positions[OTHER].qty, pf.positions[OTHER].realized) == (0, 200)
    assert pf.cash == 5_000_000
    assert pf.compare([holding(SYM, 6, 70_000)]) == [PositionDivergence(SYM, 7, 6)]


def test_restore_rebuilds_each_strategys_cost_and_todays_pnl_from_journaled_fills() -> None:
    pf = Portfolio(PortfolioConfig(commission_bp=1.5, sell_tax_bp=18.0, sell_tax_table=False))
    pf.restore(
        [
            Past("20260105", "a", SYM, B, 10, 70_000, 105),
            Past("20260105", "a", SYM, S_, 4, 71_000, 553),
            Past("20260105", None, SYM, B, 5, 60_000, 45),
            Past("20260106", "a", SYM, B, 2, 73_000, 0),  # no fee carried: 21 estimated
            Past("20260106", "b", OTHER, B, 3, 10_000, 4),
        ],
        "20260106",
        -1_234,
    )
    a = pf.by_strategy["a"][SYM]
    # 6 left of yesterday's 10 at 70,000, then 2 at 73,000 today.
    assert (a.qty, a.cost, a.avg_price) == (8, 566_000, 70_750)
    assert (a.realized, a.fees) == (-21, 21)  # today's only
    assert (pf.strategy_qty("b", OTHER), pf.by_strategy["b"][OTHER].cost) == (3, 30_000)
    assert (pf.position_qty(SYM), pf.positions[SYM].cost) == (13, 866_000)
    # The day's PnL is the risk counter's, as before the restart.
    assert (pf.realized_today, pf.fees_today) == (-1_234, 25)
    # A sell after the restart is booked against the strategy's own cost.
    pf.on_fill(fill(S_, 8, 70_000, fee=84, tax=1_008, strategy="a"))
    assert pf.by_strategy["a"][SYM].realized == -21 + 560_000 - 566_000 - 1_092


def test_restore_with_no_fill_today_keeps_positions_and_realises_nothing() -> None:
    pf = Portfolio(PortfolioConfig())
    pf.restore([Past("20260105", "a", SYM, B, 10, 70_000, 105)], "20260106", 0)
    a = pf.by_strategy["a"][SYM]
    assert (a.qty, a.cost, a.realized, a.fees) == (10, 700_000, 0, 0)
    assert (pf.realized_today, pf.fees_today) == (0, 0)


def test_a_new_day_starts_the_day_s_pnl_and_fees_afresh_and_keeps_the_positions() -> None:
    pf = Portfolio(PortfolioConfig())
    pf.cash = 10_000_000
    told: list[int] = []
    pf.on_new_day.append(lambda: told.append(pf.realized_today))
    pf.on_fill(fill(B, 10, 70_000, fee=105))
    pf.on_fill(fill(S_, 4, 71_000, fee=42, tax=511))  # 284,000 - 280,000 - 553 = 3,447
    pf.on_fill(fill(B, 5, 20_000, fee=15, symbol=OTHER, strategy=None))
    pf.on_trade(Trade(SYM, Exchange.KRX, 100000, 72_000, 1, 1, 0, 0, 0, 0, 0, 0))
    assert (pf.realized_today, pf.fees_today) == (3_447 - 105 - 15, 105 + 553 + 15)
    cash_before = pf.cash

    pf.new_day()

    assert told == [0]  # told once, after the figures started afresh
    assert (pf.realized_today, pf.fees_today) == (0, 0)
    # Positions, average costs, cash and last prices stay.
    mine = pf.by_strategy["s1"][SYM]
    assert (mine.qty, mine.cost, mine.avg_price, mine.realized, mine.fees) == (
        6,
        420_000,
        70_000,
        0,
        0,
    )
    acct = pf.positions[SYM]
    assert (acct.qty, acct.avg_price, acct.realized, acct.fees) == (6, 70_000, 0, 0)
    ext = pf.positions[OTHER]
    assert (ext.qty, ext.avg_price, ext.realized) == (5, 20_000, 0)
    assert pf.cash == cash_before
    assert pf.last[SYM] == 72_000
    snap = pf.snapshot()
    assert snap["strategies"] == {"s1": {SYM: {"qty": 6, "realized": 0}}}
    mark = pf.mark()
    assert (mark.realized, mark.fees, mark.strategies["s1"].realized) == (0, 0, 0)
    # The new day's fills count from 0.
    assert pf.on_fill(fill(S_, 6, 70_000, fee=63, tax=756)) == -819
    assert (pf.realized_today, pf.fees_today) == (-819, 819)
    assert pf.by_strategy["s1"][SYM].realized == -819
