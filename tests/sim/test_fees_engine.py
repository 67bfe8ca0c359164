"""Fees end to end: what the engine books for a fill is what the simulator charged for it.

The simulator's FIDs 938/939 (당일매매수수료/세금) carry the order's cumulative fee and tax, as
ka10075/ka10076 do; an order that fills in two pieces must not be charged its first piece's
fee twice. The market stands still (events_per_s = 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.sim.simulator import Simulator
from engine.trading.orders import TERMINAL
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

QUIET = "class Quiet(Strategy):\n    pass\n"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config(events_per_s=0.0)) as s:
        yield s


async def test_an_order_filled_in_two_pieces_pays_each_piece_once(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "q", QUIET, "Quiet")
    (p1, q1), (p2, q2) = sim.market.book(SYMBOL).asks[:2]
    async with running_engine(sim, tmp_path / "state", (sc,), fat_finger_bp=10_000) as (
        trader,
        _ws,
        api,
    ):
        strat = trader.host.by_name["q"].instance
        order = strat.buy(SYMBOL, q1 + q2, p2)
        await until(lambda: order.state in TERMINAL and order.filled_qty == q1 + q2, 10)
        fee = p1 * q1 * 15 // 100_000 + p2 * q2 * 15 // 100_000  # 1.5 bp a piece
        await until(lambda: trader.portfolio.fees_today > 0, 5)
        assert trader.portfolio.fees_today == fee
        assert trader.portfolio.cash == 100_000_000 - p1 * q1 - p2 * q2 - fee
        assert (await api.cash_balance()).orderable == trader.portfolio.cash
