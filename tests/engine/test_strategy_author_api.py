"""What strategy authors asked for, on a running engine against the simulator: their own
average price and PnL, the trading state and its changes, and the KRX helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import config
from engine.events import RiskRejected, Side, TradingState
from engine.sim.simulator import Simulator
from engine.strategy import TradingStatus
from tests.engine.conftest import SYMBOL, Tape, running_engine, sim_config, write_strategy
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


BOOKKEEPER = """
class Bookkeeper(Strategy):
    def on_start(self):
        self.fills = []
        self.bought = None
        self.sold = None
        self.before_any = (self.avg_price(self.symbols[0]),
                           self.unrealized_pnl(self.symbols[0]), self.realized_pnl())

    def on_trade(self, trade):
        if self.bought is None and trade.best_ask:
            self.bought = self.buy(trade.symbol, 3, trade.best_ask)

    def on_fill(self, fill):
        self.fills.append(fill)
        if (self.bought.state is OrderState.FILLED and self.sold is None):
            self.after_buy = self.avg_price(fill.symbol), self.realized_pnl()
            self.sold = self.sell(fill.symbol, 1, None)
"""


async def test_a_strategy_reads_its_own_average_price_and_pnl(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "b", BOOKKEEPER, "Bookkeeper")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["b"].instance
        assert strat.before_any == (0, 0, 0)
        await until(lambda: strat.sold is not None and strat.sold.state.value == "filled", 10)
        buys = [f for f in strat.fills if f.side is Side.BUY]
        sells = [f for f in strat.fills if f.side is Side.SELL]
        cost = sum(f.price * f.qty for f in buys)
        assert sum(f.qty for f in buys) == 3
        buy_fees = sum(f.fee + f.tax for f in buys)
        assert strat.after_buy == (cost // 3, -buy_fees)
        # After selling 1 of 3 at average cost: the basis of one share leaves the book.
        basis = cost // 3
        (sell,) = sells
        realized = -buy_fees + sell.price - basis - sell.fee - sell.tax
        assert strat.realized_pnl() == realized
        assert strat.avg_price(SYMBOL) == (cost - basis) // 2
        last = trader.portfolio.last[SYMBOL]
        assert strat.unrealized_pnl(SYMBOL) == last * 2 - (cost - basis)
        with pytest.raises(ValueError, match="not one of this strategy's symbols"):
            strat.avg_price("000660")


WATCHES_STATE = """
class WatchesState(Strategy):
    def on_start(self):
        self.seen = [self.trading_state]

    def on_trading_state(self, state):
        self.seen.append((state, self.trading_state))
"""


async def test_a_strategy_sees_the_trading_state_and_its_changes(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "w", WATCHES_STATE, "WatchesState")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["w"].instance
        trader.halt("news")
        await until(lambda: len(strat.seen) == 2, 5)
        trader.resume("all clear")
        await until(lambda: len(strat.seen) == 3, 5)
        active = TradingStatus(TradingState.ACTIVE, ())
        halted = TradingStatus(TradingState.HALTED, ("news",))
        assert strat.seen == [active, (halted, halted), (active, active)]


def test_the_krx_helpers_are_exported_for_strategies() -> None:
    from engine.strategy import round_to_tick, tick_size

    assert tick_size(70_000) == 100
    assert round_to_tick(70_050, "down") == 70_000
    assert round_to_tick(70_050, "up") == 70_100


async def test_the_shipped_example_never_trips_its_own_duplicate_check(tmp_path: Path) -> None:
    # The shipped table and file, as `make run` loads them; a busier market than the default
    # gives it more decisions per second than `make run` does.
    shipped = config.load(ROOT / "config.toml", env={})
    (momentum,) = [sc for sc in shipped.strategies if sc.name == "momentum"]
    momentum = dataclasses.replace(momentum, path=str(ROOT / momentum.path))
    async with (
        Simulator(sim_config(events_per_s=1000.0)) as sim,
        running_engine(sim, tmp_path / "state", (momentum,)) as (trader, _ws, _api),
    ):
        tape = Tape(trader)
        await until(lambda: trader.oms.stats.submitted >= 12, 40)
        refused = [e for e in tape.events if isinstance(e, RiskRejected)]
        assert [e.reason for e in refused if e.reason == "DUPLICATE"] == []
        assert trader.host.by_name["momentum"].enabled


async def test_a_trading_state_change_is_logged_once(sim: Simulator, tmp_path: Path) -> None:
    import structlog.testing

    async with running_engine(sim, tmp_path / "state") as (trader, _ws, _api):
        with structlog.testing.capture_logs() as logs:
            trader.halt("news")
            trader.resume("all clear")
    changes = [e for e in logs if e["event"] == "trading_state_changed"]
    # Once each (it was logged at warning by risk and again at error by the trader).
    assert [e["state"] for e in changes] == ["halted", "active"]
