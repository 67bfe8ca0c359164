"""The sell tax by day and market (engine/trading/fees.py SELL_TAX_TABLE), charged alike by
the live portfolio's estimate, the simulator's exchange and the backtest's broker. Every rate
is typed from the published ones (증권거래세 + 농어촌특별세 on KOSPI):
2023 KOSPI 0.05 % + 0.15 % = 0.20 %, KOSDAQ 0.20 %; 2024 0.03 % + 0.15 % = 0.18 %, KOSDAQ
0.18 %; 2025 0 % + 0.15 % = 0.15 %, KOSDAQ 0.15 %; 2026 back to 0.05 % + 0.15 % = 0.20 %,
KOSDAQ 0.20 %; KONEX 0.10 % since mid-2019; ETFs none."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

import pytest

from engine.backtest.broker import InProcessBroker
from engine.backtest.clock import NS, BacktestClock
from engine.bus import EventBus
from engine.clock import KST, ManualClock
from engine.config import ConfigError, PortfolioConfig, load
from engine.events import Exchange, Side, TimeInForce, Trade
from engine.sim.exchange import SimExchange
from engine.sim.market import MarketGenerator
from engine.trading.account import Account
from engine.trading.fees import FeeRates, Market, sell_tax_bp
from engine.trading.portfolio import Portfolio

K, Q, X, E = Market.KOSPI, Market.KOSDAQ, Market.KONEX, Market.ETF


@pytest.mark.parametrize(
    ("day", "market", "bp"),
    [
        (date(2023, 1, 2), K, 20),
        (date(2023, 12, 28), Q, 20),
        (date(2024, 1, 2), K, 18),
        (date(2024, 12, 30), Q, 18),
        (date(2025, 1, 2), K, 15),
        (date(2025, 6, 30), Q, 15),
        (date(2026, 1, 2), K, 20),
        (date(2026, 12, 4), Q, 20),
        (date(2026, 12, 4), X, 10),
        (date(2022, 5, 2), K, 23),
        (date(2020, 3, 2), Q, 25),
        (date(2023, 3, 2), E, 0),
        (date(2026, 3, 2), E, 0),
    ],
)
def test_the_published_rate_of_a_day_and_market(day: date, market: Market, bp: float) -> None:
    assert sell_tax_bp(day, market) == bp


def test_a_table_rate_is_charged_by_the_day_and_market_with_the_one_rounding() -> None:
    rates = FeeRates(1.5, 99.0, sell_tax_table=True)  # 99: never charged with the table
    # 10,000,000 won sold: commission 1,500; tax 0.20 % = 20,000, 0.18 % 18,000, 0.15 % 15,000
    assert rates.on(date(2026, 1, 2), K).charge(10_000_000, sell=True) == (1_500, 20_000)
    assert rates.on(date(2024, 7, 1), Q).charge(10_000_000, sell=True) == (1_500, 18_000)
    assert rates.on(date(2025, 7, 1), K).charge(10_000_000, sell=True) == (1_500, 15_000)
    assert rates.on(date(2025, 7, 1), E).charge(10_000_000, sell=True) == (1_500, 0)
    assert rates.on(date(2025, 7, 1), K).charge(10_000_000, sell=False) == (1_500, 0)
    # Without the table the fixed rate stands, whatever the day.
    fixed = FeeRates(1.5, 18.0)
    assert fixed.on(date(2026, 1, 2), K).charge(10_000_000, sell=True) == (1_500, 18_000)


def test_the_live_portfolio_estimates_the_table_s_tax_for_the_symbol_s_market() -> None:
    cfg = PortfolioConfig(sell_tax_table=True, markets={"069500": "ETF"})
    pf = Portfolio(cfg, ManualClock(datetime(2025, 3, 4, 10, 0, tzinfo=KST)))
    # 100 x 70,000 = 7,000,000 sold on 2025-03-04: 1,050 commission + 10,500 tax (0.15 %).
    assert pf.fee_parts(Side.SELL, 100, 70_000, "005930") == (1_050, 10_500)
    assert pf.fee_parts(Side.SELL, 100, 70_000, "069500") == (1_050, 0)
    # A journaled fill of 2026 is estimated at 2026's 0.20 %: 14,000.
    assert pf.fee_for(Side.SELL, 100, 70_000, "005930", date(2026, 2, 2)) == 1_050 + 14_000


def test_the_simulator_charges_the_table_s_tax_of_its_clock_s_day() -> None:
    clock = ManualClock(datetime(2024, 5, 2, 10, 0, tzinfo=KST))
    market = MarketGenerator(["005930"], 42, clock)
    ex = SimExchange(market, 100_000_000, clock, commission_bp=0, sell_tax_table=True)
    ex.place("buy", "005930", 10, 0, "3")
    sell = ex.place("sell", "005930", 10, 0, "3")
    # 2024: 0.18 % of what the sale made, floored to the won.
    assert sell.filled_value > 0
    assert (sell.fee, sell.tax) == (0, sell.filled_value * 18 // 10_000)
    assert ex.rates_for("005930").sell_tax_bp == 18


async def test_the_backtest_broker_charges_the_table_s_tax_of_the_data_s_day() -> None:
    t0 = int(datetime(2025, 9, 1, 10, 0, tzinfo=KST).timestamp()) * NS
    clock = BacktestClock(t0)
    account = Account(10_000_000, FeeRates(0, 18.0, True), markets={"069500": E})
    broker = InProcessBroker(clock, EventBus(clock), account, latency_ms=0)
    broker.new_day()
    for sym in ("005930", "069500"):
        broker.base[sym] = 50_000
        broker.on_trade(Trade(sym, Exchange.KRX, 100000, 50_000, 1, 0, 0, 0, 0, 0, 0, 0))
        await broker.place(sym, Side.BUY, 10, 50_000, TimeInForce.DAY, deadline=1.0)
        broker.arrive(t0)
        broker.on_trade(Trade(sym, Exchange.KRX, 100000, 50_000, 100, 0, 0, 0, 0, 0, 0, 0))
        await broker.place(sym, Side.SELL, 10, 50_000, TimeInForce.DAY, deadline=1.0)
        broker.arrive(t0)
        broker.on_trade(Trade(sym, Exchange.KRX, 100000, 50_000, 100, 0, 0, 0, 0, 0, 0, 0))
    await asyncio.sleep(0)
    sold = [o for o in broker.orders.values() if o.side is Side.SELL]
    # 500,000 sold each: 2025's 0.15 % on the stock is 750, the ETF pays none.
    assert [(o.symbol, o.filled_qty, o.tax) for o in sold] == [
        ("005930", 10, 750),
        ("069500", 10, 0),
    ]
    assert account.cash == 10_000_000 - 750


# --- the table is the default; an explicit flat rate wins -------------------------------------

IN_2026 = ManualClock(datetime(2026, 3, 3, 10, 0, tzinfo=KST))


def estimate_of(tmp_path: Path, portfolio: str) -> Portfolio:
    """The live portfolio of a config file whose [portfolio] table is `portfolio`, on a 2026
    trading morning."""
    path = tmp_path / "config.toml"
    path.write_text(f"[portfolio]\ncommission_bp = 1.5\n{portfolio}\n")
    return Portfolio(load(path, env={}).portfolio, IN_2026)


def test_a_config_that_says_nothing_of_the_tax_estimates_the_table_s(tmp_path: Path) -> None:
    pf = estimate_of(tmp_path, 'markets = { "069500" = "ETF" }')
    # 100 x 70,000 = 7,000,000 sold in 2026: 1,050 commission (1.5 bp); KOSPI 0.20 % = 14,000.
    assert pf.fee_parts(Side.SELL, 100, 70_000, "005930") == (1_050, 14_000)
    assert pf.fee_parts(Side.SELL, 100, 70_000, "069500") == (1_050, 0)  # an ETF: no tax
    assert load(None, env={}).sim.sell_tax_table is True  # the simulator charges the same


@pytest.mark.parametrize(
    ("portfolio", "tax"),
    [
        # An explicit flat rate beats the default table: 0.18 % of 7,000,000, not 0.20 %.
        ("sell_tax_bp = 18.0", 12_600),
        ("sell_tax_bp = 25", 17_500),
        ("sell_tax_bp = 0", 0),
        ("sell_tax_bp = 18.0\nsell_tax_table = false", 12_600),
        # The table off and no rate: the flat default, 18 bp.
        ("sell_tax_table = false", 12_600),
    ],
)
def test_an_explicit_flat_rate_wins_over_the_table(
    tmp_path: Path, portfolio: str, tax: int
) -> None:
    pf = estimate_of(tmp_path, portfolio)
    assert pf.fee_parts(Side.SELL, 100, 70_000, "005930") == (1_050, tax)


@pytest.mark.parametrize("table", ["portfolio", "sim"])
def test_a_flat_rate_and_the_table_both_set_is_a_config_error_naming_both(
    tmp_path: Path, table: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[{table}]\nsell_tax_bp = 18.0\nsell_tax_table = true\n")
    with pytest.raises(ConfigError) as e:
        load(path, env={})
    message = str(e.value)
    assert message.startswith(f"{path}: {table}.sell_tax_bp and {table}.sell_tax_table: "), message
    # One table's explicit rate leaves the other's default (the table) alone.
    other = "sim" if table == "portfolio" else "portfolio"
    path.write_text(f"[{table}]\nsell_tax_bp = 18.0\n")
    cfg = load(path, env={})
    assert getattr(cfg, table).sell_tax_table is False
    assert getattr(cfg, other).sell_tax_table is True
