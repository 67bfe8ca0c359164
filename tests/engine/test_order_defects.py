"""Issue 14's order-path defects, each on a running engine against the simulator over real
sockets: an amend passes risk (item 2), a cancel or amend of unknown outcome settles (3),
orders from on_stop are refused (4), a journal refusal ends the order (5), an early notice
that could be two orders' is held (6), orders carried over midnight expire (10), quantities
the journal cannot hold are refused at the call (11), and cancel(None) (20)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime
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
    RiskRejected,
    Side,
)
from engine.journal import JournalError
from engine.models import OrderRecord
from engine.sim.simulator import Simulator
from engine.trading import krx
from engine.trading.risk import RiskEngine
from tests.engine.conftest import SYMBOL, Tape, assert_lawful, running_engine, sim_config
from tests.engine.conftest import write_strategy as strategy_file
from tests.support import until

pytestmark = pytest.mark.timeout(60)

S = OrderState

WATCHES = """
class Watches(Strategy):
    def on_start(self):
        self.seen = []
        self.fills = []
        self.stop_order = None
        self.buy_on_stop = False

    def on_order(self, order):
        self.seen.append((order.client_id, order.state, getattr(order, "refusal", None)))

    def on_fill(self, fill):
        self.fills.append(fill)

    def on_stop(self):
        if self.buy_on_stop:
            self.stop_order = self.buy(self.symbols[0], 1)
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


def engine(sim: Simulator, tmp_path: Path, names: tuple[str, ...] = ("s",), **kw: Any) -> Any:
    scs = tuple(strategy_file(tmp_path, n, WATCHES, "Watches") for n in names)
    return running_engine(sim, tmp_path / "state", scs, **kw)


def below_market(base: int) -> int:
    """A buy price that rests (the simulator's market stays near its base)."""
    return krx.round_to_tick(base * 95 // 100, "down")


# --- item 2: an amend passes risk ---------------------------------------------------------


async def test_an_amend_is_refused_by_every_check_a_new_order_at_its_price_would_meet(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine(sim, tmp_path, fat_finger_bp=800, max_order_notional=800_000) as (
        trader,
        _ws,
        _api,
    ):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        base = trader.portfolio.base[SYMBOL]
        price = below_market(base)
        order = strat.buy(SYMBOL, 1, price)
        await until(lambda: order.state is S.ACCEPTED, 10)
        high = krx.round_to_tick(base * 125 // 100, "down")  # inside the band, 25% over

        strat.modify(order, price=high)
        await trader.oms.drain(3.0)

        assert sim.state.request_counts["kt10002"] == 0  # never sent
        assert (order.state, order.price, order.refusal) == (S.ACCEPTED, price, "FAT_FINGER")
        rejected = [e for e in tape.events if isinstance(e, RiskRejected)]
        assert [(e.client_id, e.reason, e.price) for e in rejected] == [
            (order.client_id, "FAT_FINGER", high)
        ]
        await until(lambda: (order.client_id, S.ACCEPTED, "FAT_FINGER") in strat.seen)
        at_sim = sim.exchange.order(order.order_no or "")
        assert at_sim is not None
        assert (at_sim.price, at_sim.open_qty) == (price, 1)
        assert_lawful(tape.updates(order.client_id))


async def test_an_amend_is_judged_as_if_its_order_were_replaced(
    sim: Simulator, tmp_path: Path
) -> None:
    # One open order allowed, one share of position: the order being amended must not count
    # against itself, or no amend could ever pass.
    async with engine(sim, tmp_path, fat_finger_bp=800, max_open_orders=1, max_position_qty=1) as (
        trader,
        _ws,
        _api,
    ):
        strat = trader.host.by_name["s"].instance
        base = trader.portfolio.base[SYMBOL]
        price = below_market(base)
        order = strat.buy(SYMBOL, 1, price)
        await until(lambda: order.state is S.ACCEPTED, 10)
        assert strat.buy(SYMBOL, 1, price).reason == "MAX_OPEN_ORDERS"
        new_price = price - krx.tick_size(price)

        strat.modify(order, price=new_price)

        await until(lambda: order.price == new_price and order.state is S.ACCEPTED, 10)
        assert order.refusal == ""
        assert sim.state.request_counts["kt10002"] == 1
        assert order.order_no is not None
        at_sim = sim.exchange.order(order.order_no)
        assert at_sim is not None
        assert (at_sim.price, at_sim.open_qty) == (new_price, 1)


# --- item 3: a cancel or amend whose outcome is unknown settles ----------------------------


@pytest.mark.parametrize("api_id", ["kt10003", "kt10002"], ids=["cancel", "amend"])
async def test_a_cancel_or_amend_of_unknown_outcome_is_settled_and_a_later_cancel_goes_out(
    sim: Simulator, tmp_path: Path, api_id: str
) -> None:
    async with engine(sim, tmp_path, fat_finger_bp=5_000) as (trader, _ws, _api):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        lower = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
        price = lower + 2 * krx.tick_size(lower)  # rests: the market stays well above
        order = strat.buy(SYMBOL, 2, price)
        await until(lambda: order.state is S.ACCEPTED, 10)
        # An HTTP 500 before the call reached the exchange: the client cannot know that.
        sim.state.faults.http_error_once[api_id] = 500
        if api_id == "kt10003":
            strat.cancel(order)
            assert order.state is S.PENDING_CANCEL
        else:
            strat.modify(order, price=price - krx.tick_size(price))
            assert order.state is S.PENDING_REPLACE

        # Reconciliation (asked for by the unknown outcome) finds it open at the broker.
        await until(lambda: order.state is S.ACCEPTED, 10)
        assert order.price == price
        assert sim.state.handled_counts[api_id] == 0

        strat.cancel(order)
        await until(lambda: order.state is S.CANCELED, 10)
        assert order.order_no is not None
        at_sim = sim.exchange.order(order.order_no)
        assert at_sim is not None
        assert at_sim.status == "취소"
        assert sim.state.handled_counts["kt10003"] == 1
        assert_lawful(tape.updates(order.client_id))


# --- item 4: orders from on_stop --------------------------------------------------------


async def test_an_order_from_on_stop_is_refused_stopping_and_never_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine(sim, tmp_path) as (trader, _ws, _api):
        tape = Tape(trader)
        strat = trader.host.by_name["s"].instance
        strat.buy_on_stop = True

        await trader.stop(cancel_open=False, timeout_s=3.0)

        order = strat.stop_order
        assert order is not None
        assert (order.state, order.reason) == (S.REJECTED, "STOPPING")
        assert sim.state.request_counts["kt10000"] == 0
        assert sim.exchange.orders() == []
        assert [e.reason for e in tape.events if isinstance(e, RiskRejected)] == ["STOPPING"]


# --- item 5: the journal refuses an intent; an order from another thread ------------------


async def test_an_intent_the_journal_refuses_ends_the_order_rejected_and_nothing_is_sent(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine(sim, tmp_path) as (trader, _ws, _api):
        strat = trader.host.by_name["s"].instance
        refused: list[Exception] = []
        trader.oms.on_journal_refused = refused.append

        def disk_full(order: object) -> None:
            raise JournalError("database or disk is full")

        monkeypatch.setattr(trader.journal, "record_intent", disk_full)
        order = strat.buy(SYMBOL, 1)

        assert (order.state, order.reason) == (S.REJECTED, "JOURNAL")
        assert "disk is full" in order.detail
        assert [str(e) for e in refused] == ["database or disk is full"]
        assert trader.oms.open_orders() == []  # no ghost counted by the risk checks
        assert trader.oms.open_orders_count() == 0
        await until(lambda: (order.client_id, S.REJECTED, "") in strat.seen)
        await trader.oms.drain(1.0)
        assert sim.state.request_counts["kt10000"] == 0

        monkeypatch.undo()  # space again: the next order goes
        again = strat.buy(SYMBOL, 1)
        await until(lambda: again.state is S.FILLED, 10)


async def test_an_order_from_another_thread_raises_at_the_call_and_nothing_is_journaled(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine(sim, tmp_path) as (trader, _ws, _api):
        strat = trader.host.by_name["s"].instance
        known = dict(trader.oms.orders)
        intents = trader.journal.intents

        with pytest.raises(RuntimeError, match="event loop"):
            await asyncio.to_thread(strat.buy, SYMBOL, 1)

        assert trader.oms.orders == known
        assert trader.journal.intents == intents
        await asyncio.sleep(0.2)
        assert sim.state.request_counts["kt10000"] == 0


# --- item 6: an early notice that could be two orders' ----------------------------------


def _notice(**kw: Any) -> OrderExecution:
    base: dict[str, Any] = {
        "account": "5012345610",
        "orig_order_no": None,
        "symbol": SYMBOL,
        "name": "삼성전자",
        "side": Side.BUY,
        "kind": OrderKind.NEW,
        "order_type": "시장가",
        "order_qty": 1,
        "order_price": 0,
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


async def test_an_early_notice_two_unanswered_orders_could_own_waits_for_an_answer(
    sim: Simulator, tmp_path: Path
) -> None:
    # Two strategies send the same order at once (the duplicate guard is per strategy); the
    # broker takes both and answers late. The younger's 00 comes first.
    async with engine(sim, tmp_path, ("a", "b"), account_streams=False) as (trader, _ws, api):
        sa = trader.host.by_name["a"].instance
        sb = trader.host.by_name["b"].instance
        held = trader.portfolio.position_qty(SYMBOL)
        sim.state.faults.rest_delay_s["kt10000"] = 1.0
        oa = sa.buy(SYMBOL, 1)
        ob = sb.buy(SYMBOL, 1)
        await until(lambda: len(sim.exchange.orders()) == 2, 10)
        first, second = (o.ord_no for o in sim.exchange.orders())
        (fill,) = [f for f in sim.exchange.fills() if f.ord_no == second]
        publish = trader.bus.publish
        publish(_notice(order_no=second, status=OrderStatus.ACCEPTED, unfilled_qty=1))
        publish(
            _notice(
                order_no=second,
                status=OrderStatus.FILLED,
                unfilled_qty=0,
                fill_no=str(fill.fill_no),
                fill_price=fill.price,
                fill_qty=1,
                unit_fill_price=fill.price,
                unit_fill_qty=1,
                cum_fill_amount=fill.price,
            )
        )
        await until(lambda: oa.order_no is not None and ob.order_no is not None, 10)
        sim.state.faults.rest_delay_s.clear()
        await trader.reconciler.run()

        # Each order has its own number only, and each strategy its own share.
        assert (oa.order_nos, ob.order_nos) == ([first], [second])
        assert (oa.state, oa.filled_qty, ob.state, ob.filled_qty) == (S.FILLED, 1, S.FILLED, 1)
        assert (sa.position(SYMBOL), sb.position(SYMBOL)) == (1, 1)
        await until(lambda: len(sa.fills) + len(sb.fills) >= 2)
        assert [(f.order_no, f.qty) for f in sa.fills] == [(first, 1)]
        assert [(f.order_no, f.qty) for f in sb.fills] == [(second, 1)]
        holdings = {h.symbol: h.qty for h in (await api.account_balance()).holdings}
        assert trader.portfolio.position_qty(SYMBOL) == holdings[SYMBOL] == held + 2
        assert trader.oms.stats.external_orders == 0


# --- item 10: orders carried over midnight ------------------------------------------------


class RecordingBooks:
    """The engine's own broker port, noting which days' lists were asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.days: list[date | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        self.days.append(order_date)
        return list(await self.inner.order_history(order_date, from_order_no=from_order_no))


async def test_orders_carried_over_midnight_expire_against_their_own_day(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine(sim, tmp_path, fat_finger_bp=5_000) as (trader, _ws, _api):
        oms = trader.oms
        clock = ManualClock(datetime.now(KST))
        oms.risk = trader.risk = RiskEngine(trader.cfg.risk, clock, check_session_hours=False)
        oms.risk.on_new_day.append(oms.new_day)
        books = RecordingBooks(trader.reconciler.books)
        trader.reconciler.books = books
        strat = trader.host.by_name["s"].instance
        # At the lower limit: the market never comes down to it (no fill, no notice of a
        # day before arriving after the roll).
        price = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
        tape = Tape(trader)
        resting = strat.buy(SYMBOL, 2, price)
        await until(lambda: resting.state is S.ACCEPTED, 10)
        # Its 00 접수 heard before midnight (one heard after would name a number of the new
        # day: another order).
        await until(lambda: bool(tape.notices(resting.order_no or "", OrderStatus.ACCEPTED)))
        placed_on = datetime.fromtimestamp(resting.created_ns / 1e9, KST).date()
        assert oms.open_orders_count() == 1

        clock.advance(86_400)
        oms.risk.roll_day()
        # Out of the new day's risk counts at once.
        assert oms.open_orders_count() == 0
        assert oms.open_qty(SYMBOL, Side.BUY) == 0
        assert oms.open_buy_notional() == 0

        # While the broker's list cannot be read, the order is kept, and asked for again.
        sim.state.faults.http_error_queue["kt00007"] = [500] * 200
        with pytest.raises(Exception):  # noqa: B017, PT011 - today's list fails as well
            await trader.reconciler.run()
        assert resting.state is S.ACCEPTED
        assert resting in oms.open_orders()
        assert oms.open_orders_count() == 0
        sim.state.faults.http_error_queue.clear()

        await trader.reconciler.run()
        assert (resting.state, resting.reason) == (S.CANCELED, "EXPIRED")
        assert resting not in oms.open_orders()
        assert placed_on in books.days


# --- item 11, item 20: what the journal cannot hold; cancel(None) ------------------------


async def test_a_quantity_or_price_beyond_int64_raises_at_the_call_and_is_not_journaled(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine(sim, tmp_path) as (trader, _ws, _api):
        strat = trader.host.by_name["s"].instance
        known = dict(trader.oms.orders)
        with pytest.raises(ValueError, match="int64"):
            strat.buy(SYMBOL, 2**63)
        with pytest.raises(ValueError, match="int64"):
            strat.buy(SYMBOL, 1, 2**63 + 1)
        assert trader.oms.orders == known
        assert trader.oms.stats.risk_rejected == 0
        # The journal is still whole: the next order is written and goes.
        order = strat.buy(SYMBOL, 1)
        await until(lambda: order.state is S.FILLED, 10)
        assert trader.journal.failed_events == 0


async def test_cancel_of_none_raises_value_error(sim: Simulator, tmp_path: Path) -> None:
    async with engine(sim, tmp_path) as (trader, _ws, _api):
        strat = trader.host.by_name["s"].instance
        with pytest.raises(ValueError, match="None"):
            strat.cancel(None)
        with pytest.raises(ValueError, match="None"):
            trader.oms.cancel(None)  # type: ignore[arg-type]


# --- item 24 (the OMS's part): the order maps stay bounded ------------------------------


async def test_the_order_maps_hold_what_is_open_plus_a_window_of_ended_orders(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine(
        sim, tmp_path, fat_finger_bp=5_000, duplicate_window_s=0.0, max_orders_per_s=100
    ) as (
        trader,
        _ws,
        _api,
    ):
        oms = trader.oms
        oms.ended_kept = 3
        strat = trader.host.by_name["s"].instance
        lower = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
        resting = strat.buy(SYMBOL, 1, lower)
        done = []
        for _ in range(8):
            order = strat.buy(SYMBOL, 1)
            await until(lambda o=order: o.state is S.FILLED, 10)  # type: ignore[misc]
            done.append(order)
        await until(lambda: resting.state is S.ACCEPTED, 10)

        assert set(oms.orders) == {resting.client_id} | {o.client_id for o in done[-3:]}
        kept = {resting, *done[-3:]}
        assert set(oms.by_order_no.values()) <= kept
        assert all(oms.by_order_no[o.order_no or ""] is o for o in kept)
        # The strategy keeps its own handles, and its position is every fill.
        assert [o.state for o in done] == [S.FILLED] * 8
        assert strat.position(SYMBOL) == 8
        # What is open, by strategy (kept apart for the strategy's per-tick read).
        assert oms.open_orders("s") == [resting] == strat.orders()
        assert oms.open_orders("other") == []
        strat.cancel(resting)
        await until(lambda: resting.state is S.CANCELED, 10)
        assert oms.open_orders("s") == [] == oms.open_orders()


# --- item 9: one strategy cannot sell another's shares ------------------------------------


async def test_a_strategy_sells_its_own_and_external_shares_never_another_strategy_s(
    sim: Simulator, tmp_path: Path
) -> None:
    # Three shares bought by hand before the engine starts: external to every strategy.
    by_hand = sim.exchange.place("buy", SYMBOL, 3, 0, "3")
    await until(lambda: sim.exchange.orders()[0].open_qty == 0, 10)
    scs = (
        strategy_file(tmp_path, "a", WATCHES, "Watches"),
        strategy_file(tmp_path, "b", WATCHES, "Watches"),
        strategy_file(tmp_path, "c", WATCHES, "Watches", may_sell_external=True),
    )
    async with running_engine(sim, tmp_path / "state", scs) as (trader, _ws, _api):
        sa, sb, sc = (trader.host.by_name[n].instance for n in ("a", "b", "c"))
        assert trader.portfolio.position_qty(SYMBOL) == by_hand.qty == 3
        bought = sa.buy(SYMBOL, 2)
        await until(lambda: bought.state is S.FILLED, 10)
        assert (sa.position(SYMBOL), trader.portfolio.position_qty(SYMBOL)) == (2, 5)

        # "b" holds nothing: selling one of the account's five is selling someone else's.
        refused = sb.sell(SYMBOL, 1)
        assert (refused.state, refused.reason) == (S.REJECTED, "NOT_OWN_POSITION")
        # "c" may sell the three bought by hand, never "a"'s two.
        too_many = sc.sell(SYMBOL, 4)
        assert (too_many.state, too_many.reason) == (S.REJECTED, "NOT_OWN_POSITION")
        external = sc.sell(SYMBOL, 3)
        # "a" sells its own.
        own = sa.sell(SYMBOL, 2)
        await until(lambda: external.state is S.FILLED and own.state is S.FILLED, 10)
        assert trader.portfolio.position_qty(SYMBOL) == 0
        assert (sa.position(SYMBOL), sb.position(SYMBOL)) == (0, 0)
        await until(lambda: len(sa.fills) == 2 and len(sc.fills) == 1)
        assert [(f.side, f.qty) for f in sa.fills] == [(Side.BUY, 2), (Side.SELL, 2)]
        assert [(f.side, f.qty) for f in sc.fills] == [(Side.SELL, 3)]
        assert sb.fills == []


# --- item 25: a disabled strategy's resting orders are cancelled --------------------------

RESTS_THEN_RAISES = """
from engine.strategy import round_to_tick


class RestsThenRaises(Strategy):
    def on_start(self):
        self.resting = None

    def on_trade(self, trade):
        if self.resting is None:
            # Below the market, so it rests (the simulator's market stays near its base).
            price = round_to_tick(trade.price * 95 // 100, "down")
            self.resting = self.buy(trade.symbol, 1, price=price)
        elif self.resting.state.value == "accepted":
            raise RuntimeError("a bug")
"""


async def test_a_disabled_strategy_s_resting_orders_are_cancelled_at_the_broker(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = strategy_file(tmp_path, "r", RESTS_THEN_RAISES, "RestsThenRaises", max_errors=1)
    async with running_engine(sim, tmp_path / "state", (sc,), fat_finger_bp=800) as (
        trader,
        _ws,
        _api,
    ):
        slot = trader.host.by_name["r"]
        await until(lambda: not slot.enabled, 10)
        order = slot.instance.resting
        assert order is not None
        await until(lambda: order.state is S.CANCELED, 10)
        (at_broker,) = [o for o in sim.exchange.orders() if o.ord_no == order.order_no]
        assert at_broker.open_qty == 0
        assert trader.oms.open_orders("r") == []
