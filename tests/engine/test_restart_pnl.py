"""Positions and PnL after a restart (issue 14 item 8): each strategy's shares and average
cost come from its journaled fills, the account's holdings from the broker (kt00018), fills
the journal missed are booked against those, shares no strategy bought stay external, and the
day's realised PnL reads the same before and after the restart.

Expected values come from the broker's side (the simulator's fills and its order list) and
the fee rates written here, never from the portfolio's own arithmetic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import Config
from engine.events import Fill, OrderState, OrderUpdate, Side
from engine.journal import Journal
from engine.sim.simulator import Simulator
from engine.trading.order_events import Acked, Filled, Sent, apply
from engine.trading.orders import Order
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

COMMISSION_BP = 15
SELL_TAX_BP = 18
QUIET = "class Quiet(Strategy):\n    pass\n"


def same_fees(cfg: Config) -> Config:
    """The engine's [sim] rates: in mode sim the portfolio estimates a fill that carries no
    fee (one booked from the broker's order list) at the simulator's rates."""
    sim = dataclasses.replace(
        cfg.sim, commission_bp=COMMISSION_BP, sell_tax_bp=SELL_TAX_BP, sell_tax_table=False
    )
    return dataclasses.replace(cfg, sim=sim)


def sim_with_fees() -> Simulator:
    return Simulator(
        sim_config(
            events_per_s=1_000.0,
            commission_bp=COMMISSION_BP,
            sell_tax_bp=SELL_TAX_BP,
            sell_tax_table=False,
        )
    )


async def test_buy_restart_sell_realises_about_the_fees_not_the_whole_sale(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with sim_with_fees() as sim:
        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, _api):
            await until(lambda: SYMBOL in trader.portfolio.last, 5)
            bought = trader.host.by_name["s"].instance.buy(SYMBOL, 10, None)
            await until(lambda: bought.state is OrderState.FILLED, 5)
            await until(lambda: trader.journal_queue.depth == 0)
            before = trader.portfolio.realized_today
            counter_before = trader.risk.counters()["realized_pnl"]
        buys = [f for f in sim.exchange.fills() if f.ord_no == bought.order_no]
        buy_cost = sum(f.price * f.qty for f in buys)
        buy_fees = sum(f.fee for f in buys)
        assert buy_fees == sum(f.price * f.qty * 15 // 10_000 for f in buys) > 0
        assert before == counter_before == -buy_fees

        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, _api):
            pf = trader.portfolio
            # The day's PnL as before the restart; the strategy's cost is its own buy's.
            assert pf.realized_today == trader.risk.counters()["realized_pnl"] == -buy_fees
            mine = pf.by_strategy["s"][SYMBOL]
            assert (mine.qty, mine.cost) == (10, buy_cost)
            assert pf.position_qty(SYMBOL) == 10
            await until(lambda: SYMBOL in pf.last, 5)
            sold = trader.host.by_name["s"].instance.sell(SYMBOL, 10, None)
            await until(lambda: sold.state is OrderState.FILLED, 5)
            sells = [f for f in sim.exchange.fills() if f.ord_no == sold.order_no]
            proceeds = sum(f.price * f.qty for f in sells)
            sell_costs = sum(f.fee + f.tax for f in sells)
            expected = proceeds - buy_cost - buy_fees - sell_costs
            assert pf.by_strategy["s"][SYMBOL].realized == expected
            assert pf.realized_today == trader.risk.counters()["realized_pnl"] == expected
            # A round trip in a quiet market: fees and a few ticks, far from the sale's value.
            assert abs(expected) < proceeds // 100
            assert (pf.strategy_qty("s", SYMBOL), pf.position_qty(SYMBOL)) == (0, 0)


async def test_shares_no_strategy_bought_stay_external_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with sim_with_fees() as sim:
        sim.exchange.place("buy", SYMBOL, 5, 0, "3")  # by hand, before the engine
        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, _api):
            await until(lambda: SYMBOL in trader.portfolio.last, 5)
            bought = trader.host.by_name["s"].instance.buy(SYMBOL, 10, None)
            await until(lambda: bought.state is OrderState.FILLED, 5)
            await until(lambda: trader.journal_queue.depth == 0)
            before = trader.portfolio.realized_today
        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, _api):
            pf = trader.portfolio
            assert (pf.position_qty(SYMBOL), pf.strategy_qty("s", SYMBOL)) == (15, 10)
            assert pf.realized_today == before
            # The strategy may sell its 10, not the account's 15.
            assert trader.journal.strategy_positions() == {"s": {SYMBOL: 10}}


async def test_a_sell_the_journal_missed_is_booked_against_the_strategys_cost(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with sim_with_fees() as sim:
        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, _api):
            await until(lambda: SYMBOL in trader.portfolio.last, 5)
            bought = trader.host.by_name["s"].instance.buy(SYMBOL, 10, None)
            await until(lambda: bought.state is OrderState.FILLED, 5)
            await until(lambda: trader.journal_queue.depth == 0)
        buys = [f for f in sim.exchange.fills() if f.ord_no == bought.order_no]
        buy_cost = sum(f.price * f.qty for f in buys)
        buy_fees = sum(f.fee for f in buys)

        # The strategy's sell: its intent journaled, then the process died before the answer
        # and every notice; the broker filled it meanwhile.
        journal = Journal(state, sim.clock)
        journal.open()
        lower = sim.market.limits(SYMBOL)[0]  # a sell there takes the best bids
        lost = Order(f"{journal.next_client_seq()}.1", "s", SYMBOL, Side.SELL, 10, lower)
        lost.created_ns = sim.clock.time_ns()
        journal.record_intent(lost)
        journal.close()
        at_broker = sim.exchange.place("sell", SYMBOL, 10, lower)
        assert at_broker.filled_qty == 10

        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, api):
            (row,) = [r for r in await api.order_history() if r.order_no == at_broker.ord_no]
            # Booked from the broker's order list: its average price, the fee estimated at the
            # [portfolio] rates the simulator charges.
            estimate = 10 * row.fill_price * (COMMISSION_BP + SELL_TAX_BP) // 10_000
            expected = 10 * row.fill_price - buy_cost - buy_fees - estimate
            pf = trader.portfolio
            assert trader.oms.orders[lost.client_id].state is OrderState.FILLED
            assert pf.by_strategy["s"][SYMBOL].realized == expected
            assert pf.realized_today == trader.risk.counters()["realized_pnl"] == expected
            assert abs(expected) < 10 * row.fill_price // 100  # not minus the fee alone
            assert (pf.strategy_qty("s", SYMBOL), pf.position_qty(SYMBOL)) == (0, 0)


async def test_fills_numbered_per_order_give_a_restarted_strategy_all_its_shares(
    tmp_path: Path,
) -> None:
    # Issue 14 item 7: a broker that numbers fills per order (each order's first fill is "1").
    # The journal as such a broker's notices left it: two orders of the strategy, 1 and 5
    # shares, the second filled in two parts.
    state = tmp_path / "state"
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with sim_with_fees() as sim:
        first = sim.exchange.place("buy", SYMBOL, 1, 0, "3")
        second = sim.exchange.place("buy", SYMBOL, 5, 0, "3")
        journal = Journal(state, sim.clock)
        journal.open()
        prefix = journal.next_client_seq()
        events: list[OrderUpdate | Fill] = []
        for n, (at_broker, parts) in enumerate(((first, [1]), (second, [3, 2])), start=1):
            order = Order(f"{prefix}.{n}", "s", SYMBOL, Side.BUY, at_broker.qty, None)
            order.created_ns = sim.clock.time_ns()
            journal.record_intent(order)
            for ev in (Sent(), Acked(order_no=at_broker.ord_no)):
                update = apply(order, ev).update
                assert update is not None
                events.append(update)
            for fill_no, qty in enumerate(parts, start=1):
                fx = apply(
                    order,
                    Filled(order_no=at_broker.ord_no, fill_no=str(fill_no), qty=qty, price=70_000),
                )
                assert fx.fill is not None
                assert fx.update is not None
                events.append(fx.update)
                events.append(
                    Fill(
                        order.client_id,
                        "s",
                        at_broker.ord_no,
                        str(fill_no),
                        SYMBOL,
                        Side.BUY,
                        qty,
                        70_000,
                        0,
                        0,
                        ts_recv=sim.clock.time_ns(),
                    )
                )
            assert order.state is OrderState.FILLED
        journal.write(events)
        journal.close()

        async with running_engine(sim, state, (sc,), configure=same_fees) as (trader, _ws, _api):
            pf = trader.portfolio
            assert pf.position_qty(SYMBOL) == 6  # the broker's (kt00018)
            assert pf.strategy_qty("s", SYMBOL) == 6  # all of it the strategy's
            assert trader.host.by_name["s"].instance.position(SYMBOL) == 6
