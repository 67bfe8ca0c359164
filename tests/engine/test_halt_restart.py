"""Halts outlive a restart (issue 14 item 1): an operator, divergence or daily-loss halt is
journaled and holds across a restart on the same state directory until `resume`; the reasons
in force are a set, shown by `status` and the retained `risk_state`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import Config
from engine.events import OrderState, TradingState
from engine.mirror import engine_snapshots
from engine.sim.simulator import Simulator
from engine.trading.risk import HaltReason
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

BUYER = """
class Buyer(Strategy):
    def on_start(self):
        self.orders_seen = []

    def on_order(self, order):
        self.orders_seen.append((order.state, order.reason))
"""


async def test_an_operator_halt_survives_a_restart_until_resume(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sc = write_strategy(tmp_path, "b", BUYER, "Buyer")
    async with Simulator(sim_config(events_per_s=1_000.0)) as sim:
        async with running_engine(sim, state, (sc,)) as (trader, _ws, _api):
            trader.halt("OPERATOR_HALT: lunch")
            assert trader.risk.state is TradingState.HALTED

        async with running_engine(sim, state, (sc,)) as (trader, _ws, _api):
            assert trader.risk.state is TradingState.HALTED
            assert trader.status()["trading_state_reasons"] == {"OPERATOR": "OPERATOR_HALT: lunch"}
            snapshot = engine_snapshots(trader)()["risk_state"]
            assert (snapshot["state"], snapshot["reasons"]) == (
                "halted",
                {"OPERATOR": "OPERATOR_HALT: lunch"},
            )
            await until(lambda: SYMBOL in trader.portfolio.last, 5)
            order = trader.host.by_name["b"].instance.buy(SYMBOL, 1, None)
            assert (order.state, order.reason) == (OrderState.REJECTED, "HALTED")
            trader.resume("OPERATOR_RESUME")
            assert trader.risk.state is TradingState.ACTIVE

        # The resume is journaled too: the next start is active.
        async with running_engine(sim, state, (sc,)) as (trader, _ws, _api):
            assert trader.risk.state is TradingState.ACTIVE
            assert trader.status()["trading_state_reasons"] == {}


async def test_halts_of_each_kind_are_a_set_and_a_resume_lifts_them_all(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Simulator(sim_config()) as sim:
        async with running_engine(sim, state, daily_loss_limit=1_000) as (trader, _ws, _api):
            trader.halt("POSITION_DIVERGENCE", kind=HaltReason.DIVERGENCE)
            change = trader.risk.add_realized_pnl(-1_000)
            assert change is not None
            trader.bus.publish(change)
            assert set(trader.risk.halts) == {HaltReason.DIVERGENCE, HaltReason.DAILY_LOSS}

        async with running_engine(sim, state, daily_loss_limit=1_000) as (trader, _ws, _api):
            assert trader.risk.state is TradingState.HALTED
            assert trader.status()["trading_state_reasons"] == {
                "DIVERGENCE": "POSITION_DIVERGENCE",
                "DAILY_LOSS": "DAILY_LOSS: lost 1000 of 1000",
            }
            trader.resume("OPERATOR_RESUME")
            assert trader.risk.state is TradingState.ACTIVE

        # Resumed: the restored loss at the limit still refuses new exposure (DAILY_LOSS), but
        # does not halt again by itself.
        async with running_engine(sim, state, daily_loss_limit=1_000) as (trader, _ws, _api):
            assert trader.risk.state is TradingState.ACTIVE
            assert trader.risk.counters()["realized_pnl"] == -1_000


async def test_a_divergence_halt_from_reconciliation_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def halt_on_divergence(cfg: Config) -> Config:
        return dataclasses.replace(
            cfg, portfolio=dataclasses.replace(cfg.portfolio, halt_on_divergence=True)
        )

    async with Simulator(sim_config()) as sim:
        # Without the account streams the engine hears of a trade by hand only from the
        # broker's books: the next reconciliation finds the account's shares moved.
        async with running_engine(
            sim, state, configure=halt_on_divergence, account_streams=False
        ) as (trader, _ws, _api):
            assert trader.risk.state is TradingState.ACTIVE
            sim.exchange.place("buy", SYMBOL, 3, 0, "3")
            trader.request_reconcile()
            await until(lambda: trader.risk.state is TradingState.HALTED, 10)
            assert set(trader.risk.halts) == {HaltReason.DIVERGENCE}

        async with running_engine(sim, state, configure=halt_on_divergence) as (trader, _ws, _api):
            assert trader.risk.state is TradingState.HALTED
            assert trader.status()["trading_state_reasons"] == {"DIVERGENCE": "POSITION_DIVERGENCE"}
