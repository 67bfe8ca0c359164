"""Orders on a running engine keep to the one transition table (engine/trading/orders.py) when
the 00 feed misbehaves: late, replayed and contradictory notices, fills counted once, orders
the engine did not place kept apart; and an order ends the same whichever of its REST answer
and its 00 push comes first."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.clock import KST, ManualClock
from engine.events import (
    Exchange,
    OrderExecution,
    OrderKind,
    OrderState,
    OrderStatus,
    OrderUpdate,
    Side,
)
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.simulator import Simulator
from engine.trader import Trader
from engine.trading import krx
from engine.trading.orders import Order
from engine.trading.risk import RiskEngine
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

QUIET = """
class Quiet(Strategy):
    def on_start(self):
        self.seen = []
        self.fills = []

    def on_order(self, order):
        self.seen.append((order.client_id, order.state))

    def on_fill(self, fill):
        self.fills.append(fill)
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


def quiet_engine(
    sim: Simulator, tmp_path: Path, **risk: Any
) -> AbstractAsyncContextManager[tuple[Trader, KiwoomWebSocket, KiwoomApi]]:
    """The engine on `sim`, running one strategy, "s" (`Quiet`), with `risk` limits."""
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    return running_engine(sim, tmp_path / "state", (sc,), **risk)


def notice(**kw: Any) -> OrderExecution:
    """A 00 notice as the codec builds it; defaults to a new buy of 10 at 60,000, accepted."""
    base: dict[str, Any] = {
        "account": "5012345610",
        "order_no": "9000001",
        "orig_order_no": None,
        "symbol": SYMBOL,
        "name": "삼성전자",
        "side": Side.BUY,
        "kind": OrderKind.NEW,
        "status": OrderStatus.ACCEPTED,
        "order_type": "보통",
        "order_qty": 10,
        "order_price": 60_000,
        "unfilled_qty": 10,
        "cum_fill_amount": 0,
        "fill_no": None,
        "fill_price": 0,
        "fill_qty": 0,
        "unit_fill_price": 0,
        "unit_fill_qty": 0,
        "fee": 0,
        "tax": 0,
        "reject_reason": "",
        "exchange": Exchange.KRX,
        "sor": False,
        "time": 100_000,
    }
    return OrderExecution(**{**base, **kw})


async def test_late_and_replayed_notices_never_move_a_filled_order_back(
    sim: Simulator, tmp_path: Path
) -> None:
    async with quiet_engine(sim, tmp_path) as (trader, _ws, _api):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        order = strat.buy(SYMBOL, 1, None)
        await until(lambda: order.state is S.FILLED, 10)
        assert order.order_no is not None
        no = order.order_no
        await until(lambda: len(tape.notices(no, OrderStatus.FILLED)) == 1)
        accepted = tape.notices(no, OrderStatus.ACCEPTED)[0]
        filled = tape.notices(no, OrderStatus.FILLED)[0]
        position = trader.portfolio.position_qty(SYMBOL)
        assert position == 1
        published = len(tape.updates(order.client_id))
        stats = dataclasses.replace(trader.oms.stats)

        # A 접수 after the 체결, the same 체결 twice, then a cancel's 확인 and a 취소 and a
        # 거부 for an order that is done.
        trader.bus.publish(dataclasses.replace(accepted, seq=0))
        trader.bus.publish(dataclasses.replace(filled, seq=0))
        trader.bus.publish(
            dataclasses.replace(
                accepted,
                order_no="9000002",
                orig_order_no=no,
                kind=OrderKind.CANCEL,
                status=OrderStatus.CONFIRMED,
                seq=0,
            )
        )
        trader.bus.publish(dataclasses.replace(accepted, status=OrderStatus.CANCELED, seq=0))
        trader.bus.publish(dataclasses.replace(accepted, status=OrderStatus.REJECTED, seq=0))

        assert order.state is S.FILLED
        assert order.filled_qty == 1
        assert len(tape.updates(order.client_id)) == published  # nothing moved
        assert len(tape.fills(no)) == 1
        assert trader.oms.stats.duplicate_fills == stats.duplicate_fills + 1
        assert trader.oms.stats.external_orders == stats.external_orders == 0
        assert trader.portfolio.position_qty(SYMBOL) == position
        assert strat.position(SYMBOL) == 1
        assert [f.qty for f in strat.fills] == [1]
        assert_lawful(tape.updates(order.client_id))


async def test_a_fill_for_a_cancelled_order_is_an_illegal_transition_and_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    async with quiet_engine(sim, tmp_path, fat_finger_bp=5_000) as (trader, _ws, _api):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        lower = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
        order = strat.buy(SYMBOL, 2, lower)  # rests: the market stays well above
        await until(lambda: order.state is S.ACCEPTED, 10)
        strat.cancel(order)
        await until(lambda: order.state is S.CANCELED, 10)
        assert order.order_no is not None
        no = order.order_no
        assert sim.exchange.order(no).status == "취소"  # type: ignore[union-attr]
        await until(lambda: bool(tape.notices(no, OrderStatus.CANCELED)))
        template = tape.notices(no, OrderStatus.ACCEPTED)[0]
        assert trader.oms.stats.illegal_transitions == 0

        trader.bus.publish(
            dataclasses.replace(
                template,
                status=OrderStatus.FILLED,
                unfilled_qty=0,
                fill_no="999",
                fill_price=lower,
                fill_qty=2,
                unit_fill_price=lower,
                unit_fill_qty=2,
                seq=0,
            )
        )

        assert trader.oms.stats.illegal_transitions == 1
        assert order.state is S.CANCELED
        assert tape.updates(order.client_id)[-1].state is S.CANCELED
        assert_lawful(tape.updates(order.client_id))


async def test_notices_for_an_order_the_engine_did_not_place_track_it_as_external(
    sim: Simulator, tmp_path: Path
) -> None:
    async with quiet_engine(sim, tmp_path) as (trader, _ws, _api):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        held = trader.portfolio.position_qty(SYMBOL)
        publish = trader.bus.publish

        publish(notice())
        assert trader.oms.stats.external_orders == 1
        ext = trader.oms.by_order_no["9000001"]
        assert (ext.external, ext.strategy, ext.state) == (True, None, S.ACCEPTED)
        assert ext.client_id == f"X{trader.risk.trading_day()}-9000001"

        part = {"status": OrderStatus.FILLED, "fill_price": 60_000, "unit_fill_price": 60_000}
        publish(notice(**part, fill_no="1", fill_qty=3, unit_fill_qty=3, unfilled_qty=7))
        assert (ext.state, ext.filled_qty) == (S.PARTIALLY_FILLED, 3)
        # A 거부 cannot end an order that has filled in part: refused, counted, kept.
        publish(notice(status=OrderStatus.REJECTED, unfilled_qty=7, reject_reason="거부"))
        assert trader.oms.stats.illegal_transitions == 1
        assert ext.state is S.PARTIALLY_FILLED
        publish(notice(**part, fill_no="2", fill_qty=7, unit_fill_qty=7, unfilled_qty=0))
        publish(notice(**part, fill_no="2", fill_qty=7, unit_fill_qty=7, unfilled_qty=0))
        publish(notice())  # a late 접수
        assert (ext.state, ext.filled_qty) == (S.FILLED, 10)
        assert trader.oms.stats.duplicate_fills == 1

        # One order, shown and counted on the account, never given to a strategy.
        assert trader.oms.stats.external_orders == 1
        assert [o for o in trader.oms.orders.values() if o.external] == [ext]
        assert trader.portfolio.position_qty(SYMBOL) == held + 10
        assert strat.position(SYMBOL) == 0
        assert strat.seen == []
        assert strat.fills == []
        assert [f.strategy for f in tape.fills("9000001")] == [None, None]
        assert_lawful(tape.updates(ext.client_id))


async def test_a_new_day_s_order_numbers_never_meet_the_orders_of_the_day_before(
    sim: Simulator, tmp_path: Path
) -> None:
    # Kiwoom numbers orders from the start again each day. A risk engine on a clock the test
    # moves, wired in as in test_risk_checks: the engine's trading day follows it.
    async with quiet_engine(sim, tmp_path, fat_finger_bp=5_000) as (trader, _ws, _api):
        oms = trader.oms
        clock = ManualClock(datetime.now(KST))
        assert oms.new_day in trader.risk.on_new_day  # the engine's own is wired at start
        oms.risk = trader.risk = RiskEngine(trader.cfg.risk, clock, check_session_hours=False)
        oms.risk.on_new_day.append(oms.new_day)
        strat = trader.host.by_name["s"].instance
        yesterday = strat.buy(SYMBOL, 1, None)
        await until(lambda: yesterday.state is S.FILLED, 10)
        no = yesterday.order_no
        assert no is not None
        assert oms.by_order_no[no] is yesterday
        low = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
        tape = Tape(trader)
        resting = strat.buy(SYMBOL, 1, low)  # rests below the market: still open at the roll
        await until(lambda: resting.state is S.ACCEPTED, 10)
        # Its 접수 heard before midnight (one heard after names a number of the new day).
        await until(lambda: bool(tape.notices(resting.order_no or "", OrderStatus.ACCEPTED)))

        clock.advance(86_400)
        # Today's first notice carries yesterday's number: another order (placed elsewhere).
        trader.bus.publish(notice(order_no=no))
        today = oms.by_order_no[no]
        assert today is not yesterday
        assert (today.external, today.state) == (True, S.ACCEPTED)
        assert today.client_id == f"X{clock.now().strftime('%Y%m%d')}-{no}"
        assert oms.stats.external_orders == 1
        assert (yesterday.state, yesterday.filled_qty) == (S.FILLED, 1)
        # The ended order of the day before is forgotten; the strategy still holds it.
        assert yesterday.client_id not in oms.orders
        assert oms.counts_by_state() == {"accepted": 2}  # today's external, yesterday's open

        # The order still open from yesterday is carried over: its number names another
        # order today, so no cancel or amend goes out for it, and the new day's books are not
        # matched to it.
        assert oms.carried_over(resting)
        cancels = len([o for o in sim.exchange.orders() if o.action != "new"])
        strat.cancel(resting)
        with pytest.raises(ValueError, match="from a day before"):
            oms.modify(resting, price=low + krx.tick_size(low))
        assert len([o for o in sim.exchange.orders() if o.action != "new"]) == cancels
        # Out of the new day's risk counts: it is not today's open order.
        assert oms.open_orders_count() == 1  # today's external
        assert oms.open_qty(SYMBOL, resting.side) == 10
        # The 00 notices name numbers of today: none reaches it. Reconciliation reads its own
        # day's list and ends it: KRX day orders do not outlive their day.
        assert resting.order_no is not None
        await trader.reconciler.run()
        assert (resting.state, resting.reason) == (S.CANCELED, "EXPIRED")
        assert not oms.carried_over(resting)


@pytest.mark.parametrize("push_first", [False, True], ids=["ack_first", "push_first"])
async def test_an_order_ends_the_same_whichever_of_its_answer_and_its_00_comes_first(
    sim: Simulator, tmp_path: Path, push_first: bool
) -> None:
    async with quiet_engine(sim, tmp_path) as (trader, _ws, api):
        sim.state.faults.order_push_first = push_first
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        order: Order = strat.buy(SYMBOL, 3, None)
        await until(lambda: order.state is S.FILLED, 10)
        await trader.oms.drain(5.0)

        taken = sim.exchange.orders()
        assert len(taken) == 1
        no = taken[0].ord_no
        assert (order.order_no, order.order_nos) == (no, [no])
        # Which the engine heard first: the 00 notice, or the answer (its update carries the
        # number before any notice does).
        first_notice = tape.events.index(tape.notices(no)[0])
        first_numbered = next(
            i
            for i, e in enumerate(tape.events)
            if isinstance(e, OrderUpdate) and e.client_id == order.client_id and e.order_no
        )
        assert (first_notice < first_numbered) is push_first

        sim_fills = [f for f in sim.exchange.fills() if f.ord_no == no]
        await until(lambda: len(tape.fills(no)) == len(sim_fills))
        assert order.filled_qty == 3 == sum(f.qty for f in sim_fills)
        assert len(order.fill_nos) == len(sim_fills)
        assert sum(f.qty for f in tape.fills(no)) == 3
        assert order.fill_amount == sum(f.price * f.qty for f in sim_fills)
        assert strat.position(SYMBOL) == 3
        holdings = {h.symbol: h.qty for h in (await api.account_balance()).holdings}
        assert trader.portfolio.position_qty(SYMBOL) == holdings[SYMBOL] == 3
        stats = trader.oms.stats
        assert (stats.duplicate_fills, stats.illegal_transitions, stats.external_orders) == (
            0,
            0,
            0,
        )
        assert sim.state.request_counts["kt10000"] == 1
        assert_lawful(tape.updates(order.client_id))
        assert [u.state for u in tape.updates(order.client_id)][-1] is S.FILLED
