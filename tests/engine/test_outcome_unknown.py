"""An order whose answer never comes: the engine marks it UNKNOWN, holds its symbol, lets the
00 feed or reconciliation (kt00007, ka10075, kt00018, kt00001) settle it to what the broker
holds, and never sends it again (engine/trading/oms.py, engine/trading/reconcile.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import Config
from engine.events import OrderState, Reconciled
from engine.sim.simulator import Simulator
from engine.trading import krx
from tests.engine.conftest import (
    SYMBOL,
    Tape,
    assert_lawful,
    running_engine,
    sim_config,
    write_strategy,
)
from tests.support import until

pytestmark = pytest.mark.timeout(60)

S = OrderState

QUIET = "class Quiet(Strategy):\n    pass\n"

REQUEST_TIMEOUT_S = 0.5


def short_timeout(cfg: Config) -> Config:
    return dataclasses.replace(
        cfg, kiwoom=dataclasses.replace(cfg.kiwoom, request_timeout_s=REQUEST_TIMEOUT_S)
    )


@pytest.mark.parametrize(
    ("account_streams", "resting"),
    [(True, False), (False, False), (False, True)],
    ids=["00_feed-market", "books_only-market", "books_only-resting"],
)
async def test_an_order_post_that_times_out_is_settled_from_the_broker_and_sent_once(
    tmp_path: Path, account_streams: bool, resting: bool
) -> None:
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with (
        Simulator(sim_config()) as sim,
        running_engine(
            sim,
            tmp_path / "state",
            (sc,),
            configure=short_timeout,
            account_streams=account_streams,
            fat_finger_bp=5_000,
        ) as (trader, _ws, api),
    ):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        # The broker takes the order at once, and answers after the client gave up.
        sim.state.faults.rest_delay_s["kt10000"] = REQUEST_TIMEOUT_S + 0.5
        price = krx.price_limits(trader.portfolio.base[SYMBOL])[0] if resting else None
        order = strat.buy(SYMBOL, 2, price)
        await until(lambda: trader.oms.stats.unknown == 1, 10)
        sim.state.faults.rest_delay_s.clear()
        want = S.ACCEPTED if resting else S.FILLED
        await until(lambda: order.state is want, 10)

        taken = sim.exchange.orders()
        assert len(taken) == 1
        assert (order.order_no, order.order_nos) == (taken[0].ord_no, [taken[0].ord_no])
        assert order.filled_qty == taken[0].filled_qty == (0 if resting else 2)
        assert order.fill_amount == taken[0].filled_value
        states = [u.state for u in tape.updates(order.client_id)]
        if not account_streams:
            # Only the broker's books could tell: it was UNKNOWN until reconciliation.
            assert states[:2] == [S.SUBMITTING, S.UNKNOWN]
        assert_lawful(tape.updates(order.client_id))
        open_at_broker = {o.order_no for o in await api.open_orders()}
        assert {o.order_no for o in trader.oms.open_orders()} == open_at_broker
        holdings = {h.symbol: h.qty for h in (await api.account_balance()).holdings}
        assert trader.portfolio.position_qty(SYMBOL) == holdings.get(SYMBOL, 0)
        assert strat.position(SYMBOL) == holdings.get(SYMBOL, 0)

        # Another look at the books changes nothing and sends nothing.
        runs = trader.reconciler.runs
        trader.request_reconcile()
        await until(lambda: trader.reconciler.runs > runs)
        assert order.state is want
        assert sim.state.request_counts["kt10000"] == 1
        assert len(sim.exchange.orders()) == 1
        assert trader.oms.stats.duplicate_fills == 0
        assert trader.oms.stats.illegal_transitions == 0


async def test_an_order_the_broker_never_took_ends_not_at_broker_after_two_looks(
    tmp_path: Path,
) -> None:
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with (
        Simulator(sim_config()) as sim,
        running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api),
    ):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        # A 503 before the order reached the exchange: the client cannot know that.
        sim.state.faults.http_error_once["kt10000"] = 503
        order = strat.buy(SYMBOL, 1, None)
        await until(lambda: order.state is S.UNKNOWN, 10)
        assert strat.buy(SYMBOL, 1, None).reason == "UNKNOWN_PENDING"
        await until(lambda: order.state is S.REJECTED, 10)

        assert order.reason == "NOT_AT_BROKER"
        # One look is not enough: a whole pass ended with it still UNKNOWN.
        updates = tape.updates(order.client_id)
        unknown, rejected = (tape.events.index(u) for u in updates[1:3])
        passes = [e for e in tape.events[unknown:rejected] if isinstance(e, Reconciled)]
        assert len(passes) == 1
        assert [u.state for u in tape.updates(order.client_id)] == [
            S.SUBMITTING,
            S.UNKNOWN,
            S.REJECTED,
        ]
        assert sim.exchange.orders() == []
        assert sim.state.request_counts["kt10000"] == 1
        assert sim.state.handled_counts["kt10000"] == 0
        # The symbol is free again.
        again = strat.buy(SYMBOL, 1, None)
        await until(lambda: again.state is S.FILLED, 10)
        assert len(sim.exchange.orders()) == 1


async def test_a_placement_cancelled_while_its_post_is_on_the_wire_is_unknown_not_rejected(
    tmp_path: Path,
) -> None:
    # The placement task owns its POST (no shield task of its own): a cancel while it is on
    # the wire (the shutdown's) must leave the order UNKNOWN for reconciliation, since the
    # broker may have read it.
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with (
        Simulator(sim_config()) as sim,
        running_engine(sim, tmp_path / "state", (sc,), account_streams=False) as (
            trader,
            _ws,
            _api,
        ),
    ):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        sim.state.faults.rest_delay_s["kt10000"] = 5.0
        order = strat.buy(SYMBOL, 1)
        await until(lambda: sim.state.handled_counts["kt10000"] == 1, 10)
        (placing,) = [t for t in trader.oms._tasks if t.get_name().startswith("place-")]
        placing.cancel()
        await until(lambda: placing.done(), 5)
        assert trader.oms.stats.unknown == 1
        # Then reconciliation settles it to what the broker holds: the one order, filled.
        await until(lambda: order.state is S.FILLED, 10)
        updates = tape.updates(order.client_id)
        assert [(u.state, u.reason) for u in updates[:2]] == [
            (S.SUBMITTING, ""),
            (S.UNKNOWN, "OUTCOME_UNKNOWN"),
        ]
        assert order.detail == "cancelled"
        assert len(sim.exchange.orders()) == 1
