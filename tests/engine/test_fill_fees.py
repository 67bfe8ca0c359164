"""An order that fills in several parts is charged what the broker charged it, once.

The simulator's 00 notices carry the order's running fee and tax (as Kiwoom's 938/939 do); a
market order larger than the best level's size fills level by level, one notice each. The
expected figures are the simulator's own charges, never the portfolio's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.events import OrderState
from engine.sim.simulator import Simulator
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

QUIET = "class Quiet(Strategy):\n    pass\n"
LEVEL_QTY_MAX = 400
"""The simulator's largest size of one book level: one more share spans two levels."""


async def test_an_order_filled_in_parts_is_charged_the_broker_s_fees_once(
    tmp_path: Path,
) -> None:
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    cfg = sim_config(events_per_s=1_000.0, commission_bp=15, sell_tax_bp=18, sell_tax_table=False)
    async with (
        Simulator(cfg) as sim,
        running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api),
    ):
        await until(lambda: SYMBOL in trader.portfolio.last, 5)
        strat = trader.host.by_name["s"].instance
        bought = strat.buy(SYMBOL, LEVEL_QTY_MAX + 1, None)
        await until(lambda: bought.state is OrderState.FILLED, 5)
        parts = [f for f in sim.exchange.fills() if f.ord_no == bought.order_no]
        assert len(parts) >= 2  # filled in parts, one notice each
        await until(lambda: trader.portfolio.strategy_qty("s", SYMBOL) == LEVEL_QTY_MAX + 1)
        charged = sum(f.fee + f.tax for f in parts)
        (at_broker,) = [o for o in sim.exchange.orders() if o.ord_no == bought.order_no]
        assert charged == at_broker.fee + at_broker.tax > 0
        pf = trader.portfolio
        assert pf.fees_today == charged
        assert pf.realized_today == trader.risk.counters()["realized_pnl"] == -charged
        assert pf.by_strategy["s"][SYMBOL].fees == charged

        # Selling them hits the bids level by level too: the tax runs in totals as well.
        sold = strat.sell(SYMBOL, LEVEL_QTY_MAX + 1, None)
        await until(lambda: sold.state is OrderState.FILLED, 5)
        parts = [f for f in sim.exchange.fills() if f.ord_no == sold.order_no]
        assert len(parts) >= 2
        await until(lambda: trader.portfolio.strategy_qty("s", SYMBOL) == 0)
        sell_charged = sum(f.fee + f.tax for f in parts)
        assert sum(f.tax for f in parts) > 0
        assert pf.fees_today == charged + sell_charged
        proceeds = sum(f.price * f.qty for f in parts)
        cost = sum(f.price * f.qty for f in sim.exchange.fills() if f.ord_no == bought.order_no)
        expected = proceeds - cost - charged - sell_charged
        assert pf.realized_today == trader.risk.counters()["realized_pnl"] == expected
