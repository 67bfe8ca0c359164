"""The journal's queue bound on a running engine (issue 14, item 21): a journal that falls
JOURNAL_MAX_ACCOUNT events behind halts trading with its reason, loses none of them, and the
halt lifts itself once the journal has caught up; an operator's halt is never lifted so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.bus import JOURNAL_MAX_ACCOUNT
from engine.events import Reconciled, TradingState, TradingStateChanged
from engine.sim.simulator import Simulator
from engine.trader import JOURNAL_BACKLOG
from tests.engine.conftest import running_engine, sim_config
from tests.support import until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


async def test_a_journal_at_its_bound_halts_trading_until_it_catches_up(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_engine(sim, tmp_path / "state") as (trader, _ws, _api):
        changes: list[TradingStateChanged] = []
        trader.bus.subscribe(TradingStateChanged, changes.append)
        written_before = trader.journal_queue.offered
        # One burst with no turn of the loop: the journal's task cannot take any of it.
        for _ in range(JOURNAL_MAX_ACCOUNT):
            trader.bus.publish(Reconciled(0, 0, 0))
        assert trader.risk.state is TradingState.HALTED
        assert trader.risk.state_reason == JOURNAL_BACKLOG
        assert [(c.state, c.reason) for c in changes] == [(TradingState.HALTED, JOURNAL_BACKLOG)]
        assert trader.journal_queue.account_full
        # The journal writes them all (none dropped), and the halt lifts itself.
        await until(lambda: trader.risk.state is TradingState.ACTIVE, 30)
        assert trader.journal_queue.account_dropped == 0
        # Every burst event and both state changes reached the journal's queue.
        assert trader.journal_queue.offered - written_before == JOURNAL_MAX_ACCOUNT + 2
        await until(lambda: trader.journal_queue.depth == 0, 30)


async def test_an_operator_halt_outlives_the_journal_catching_up(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_engine(sim, tmp_path / "state") as (trader, _ws, _api):
        trader.halt("operator")
        for _ in range(JOURNAL_MAX_ACCOUNT):
            trader.bus.publish(Reconciled(0, 0, 0))
        assert trader.journal_queue.account_full
        await until(lambda: not trader.journal_queue.account_full, 30)
        assert trader.risk.state is TradingState.HALTED
        assert trader.risk.state_reason == "operator"
