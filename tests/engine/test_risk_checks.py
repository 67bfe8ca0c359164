"""Every pre-trade check refuses on a running engine, each in its own test, with its reason code
and the numbers that tripped it, as the order handle, the strategy's on_order and a published
RiskRejected all tell (engine/trading/risk.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.clock import KST, ManualClock
from engine.config import Config
from engine.events import (
    OrderState,
    OrderUpdate,
    RiskRejected,
    TradingState,
    TradingStateChanged,
)
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.simulator import Simulator
from engine.trader import Trader
from engine.trading import krx
from engine.trading.orders import Order
from engine.trading.risk import RiskEngine
from tests.engine.conftest import OTHER, SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

S = OrderState

LIVELY = 1_000.0
"""Events per second: the first trade of a symbol (its last price) comes within ~50 ms."""

QUIET = """
class Quiet(Strategy):
    def on_start(self):
        self.seen = []

    def on_order(self, order):
        self.seen.append((order.client_id, order.state))
"""


@dataclasses.dataclass
class Ctx:
    sim: Simulator
    trader: Trader
    ws: KiwoomWebSocket
    strat: Any
    rejected: list[RiskRejected]

    @property
    def last(self) -> int:
        return self.trader.portfolio.last[SYMBOL]

    @property
    def lower(self) -> int:
        """The lower daily limit: a buy there rests (the generated market stays well above)."""
        return krx.price_limits(self.trader.portfolio.base[SYMBOL])[0]

    @property
    def upper(self) -> int:
        return krx.price_limits(self.trader.portfolio.base[SYMBOL])[1]

    async def filled(self, order: Order) -> None:
        await until(lambda: order.state is S.FILLED, 10)


Outcome = tuple[Order, int, int]
"""The rejected order, and the limit and value its RiskRejected must carry."""


@dataclasses.dataclass
class Case:
    act: Callable[[Ctx], Awaitable[Outcome]]
    risk: dict[str, Any] = dataclasses.field(default_factory=dict)
    sim: dict[str, Any] = dataclasses.field(default_factory=dict)
    account_streams: bool = True


CASES: dict[str, Case] = {}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config(events_per_s=LIVELY)) as s:
        yield s


def case(reason: str, **kw: Any) -> Callable[[Callable[[Ctx], Awaitable[Outcome]]], None]:
    def register(fn: Callable[[Ctx], Awaitable[Outcome]]) -> None:
        CASES[reason] = Case(fn, **kw)

    return register


@case("MAX_ORDER_QTY", risk={"max_order_qty": 10})
async def _max_order_qty(c: Ctx) -> Outcome:
    assert c.strat.buy(SYMBOL, 10, c.last).state is S.SUBMITTING  # at the limit: passes
    return c.strat.buy(SYMBOL, 11, c.last), 10, 11


@case("MAX_NOTIONAL", risk={"max_order_notional": 100_000})
async def _max_notional(c: Ctx) -> Outcome:
    last = c.last  # ~70,000: one share fits, two do not
    assert c.strat.buy(SYMBOL, 1, last).state is S.SUBMITTING
    return c.strat.buy(SYMBOL, 2, last), 100_000, 2 * last


@case("MAX_POSITION", risk={"max_position_qty": 2, "fat_finger_bp": 5_000})
async def _max_position(c: Ctx) -> Outcome:
    # Open buys count with what is held: 1 resting + 2 more is 3.
    assert c.strat.buy(SYMBOL, 1, c.lower).state is S.SUBMITTING
    return c.strat.buy(SYMBOL, 2, c.last), 2, 3


@case("MAX_GROSS_EXPOSURE", risk={"max_gross_exposure": 100_000})
async def _max_gross_exposure(c: Ctx) -> Outcome:
    held = c.strat.buy(SYMBOL, 1, None)  # valued at the upper limit (91,000): fits
    await c.filled(held)
    last = c.last
    # One share held at the last price plus one more at it: ~140,000.
    return c.strat.buy(SYMBOL, 1, last), 100_000, 2 * last


@case("MAX_OPEN_ORDERS", risk={"max_open_orders": 1, "fat_finger_bp": 5_000})
async def _max_open_orders(c: Ctx) -> Outcome:
    assert c.strat.buy(SYMBOL, 1, c.lower).state is S.SUBMITTING
    tick = krx.tick_size(c.lower)
    return c.strat.buy(SYMBOL, 1, c.lower + tick), 1, 2


@case("ORDER_RATE", risk={"max_orders_per_s": 1, "fat_finger_bp": 5_000})
async def _order_rate(c: Ctx) -> Outcome:
    assert c.strat.buy(SYMBOL, 1, c.lower).state is S.SUBMITTING
    tick = krx.tick_size(c.lower)
    order = c.strat.buy(SYMBOL, 1, c.lower + tick)
    assert c.rejected[-1].detail == "per second"
    return order, 1, 2


@case("DAILY_LOSS", risk={"daily_loss_limit": 500}, sim={"commission_bp": 100})
async def _daily_loss(c: Ctx) -> Outcome:
    changes: list[TradingStateChanged] = []
    c.trader.bus.subscribe(TradingStateChanged, changes.append)
    # A 1 % fee on one share (~700 KRW) is a realised loss past the 500 limit.
    bought = c.strat.buy(SYMBOL, 1, None)
    await c.filled(bought)
    fee = c.sim.exchange.orders()[0].fee
    assert fee > 500
    assert c.trader.risk.counters()["realized_pnl"] == -fee
    assert c.trader.risk.state is TradingState.HALTED
    assert [(e.state, e.prev_state) for e in changes] == [
        (TradingState.HALTED, TradingState.ACTIVE)
    ]
    assert changes[0].reason.startswith("DAILY_LOSS")
    later = c.strat.buy(SYMBOL, 1, c.last)
    assert (later.state, later.reason) == (S.REJECTED, "HALTED")
    # A manual resume lifts the halt, not the day's loss: new exposure is still refused.
    c.trader.resume("operator")
    assert c.trader.risk.state is TradingState.ACTIVE
    return c.strat.buy(SYMBOL, 1, c.last), 500, fee


@case("TICK_SIZE")
async def _tick_size(c: Ctx) -> Outcome:
    price = c.last + 1  # 70,000s trade in steps of 100
    return c.strat.buy(SYMBOL, 1, price), krx.tick_size(price), price


@case("PRICE_BAND", risk={"fat_finger_bp": 10_000})
async def _price_band(c: Ctx) -> Outcome:
    assert (c.lower, c.upper) == c.sim.market.limits(SYMBOL)  # the broker's band
    price = c.upper + krx.tick_size(c.upper)
    return c.strat.buy(SYMBOL, 1, price), c.upper, price


@case("FAT_FINGER", risk={"fat_finger_bp": 100})
async def _fat_finger(c: Ctx) -> Outcome:
    last = c.last
    price = last * 105 // 100 // 100 * 100  # ~5 % above, on the tick
    bp = -(-abs(price - last) * 10_000 // last)
    assert bp > 100
    return c.strat.buy(SYMBOL, 1, price), 100, bp


@case("BUYING_POWER", sim={"cash": 100_000})
async def _buying_power(c: Ctx) -> Outcome:
    last = c.last
    assert c.trader.portfolio.cash == 100_000  # kt00001 at start
    return c.strat.buy(SYMBOL, 2, last), 100_000, 2 * last


@case("SHORT_SALE")
async def _short_sale(c: Ctx) -> Outcome:
    assert c.trader.portfolio.position_qty(SYMBOL) == 0
    return c.strat.sell(SYMBOL, 1, c.last), 0, 1


@case("DUPLICATE", risk={"fat_finger_bp": 5_000})
async def _duplicate(c: Ctx) -> Outcome:
    assert c.strat.buy(SYMBOL, 1, c.lower).state is S.SUBMITTING
    order = c.strat.buy(SYMBOL, 1, c.lower)
    # The value is the milliseconds since the first: within the 1 s window.
    assert 0 <= c.rejected[-1].value < 1_000
    assert c.strat.buy(SYMBOL, 2, c.lower).state is S.SUBMITTING  # not the same order
    return order, 1_000, c.rejected[-1].value


@case("HALTED", risk={"fat_finger_bp": 5_000})
async def _halted(c: Ctx) -> Outcome:
    resting = c.strat.buy(SYMBOL, 1, c.lower)
    await until(lambda: resting.state is S.ACCEPTED)
    c.trader.halt("operator")
    order = c.strat.buy(SYMBOL, 1, c.last)
    assert c.rejected[-1].detail == "operator"
    # Cancels always pass.
    c.strat.cancel(resting)
    await until(lambda: resting.state is S.CANCELED)
    assert c.sim.exchange.open_orders() == []
    return order, 0, 0


@case("RECONCILING")
async def _reconciling(c: Ctx) -> Outcome:
    # The feed drops and comes back while the broker's order list cannot be read: until a
    # reconciliation succeeds, no new exposure.
    faults = c.sim.state.faults
    faults.http_error_queue["kt00007"] = [503] * 1_000
    faults.ws_drop_now()
    await until(lambda: c.ws.sessions == 2 and c.trader.risk.feed_live, 10)
    assert c.trader.risk.reconciling
    order = c.strat.buy(SYMBOL, 1, c.last)
    faults.http_error_queue.clear()
    await until(lambda: not c.trader.risk.reconciling, 15)
    assert c.strat.buy(SYMBOL, 1, c.last).state is S.SUBMITTING
    return order, 0, 0


@case("FEED_DOWN")
async def _feed_down(c: Ctx) -> Outcome:
    faults = c.sim.state.faults
    faults.ws_close_in_handshake = 1_000  # every reconnect fails
    faults.ws_drop_now()
    await until(lambda: not c.trader.risk.feed_live, 10)
    return c.strat.buy(SYMBOL, 1, c.last), 0, 0


@case("UNKNOWN_PENDING", account_streams=False, risk={"fat_finger_bp": 5_000})
async def _unknown_pending(c: Ctx) -> Outcome:
    # The answer to the first order is lost: its outcome is unknown until reconciliation
    # reads the broker's books. An order on the same symbol asked for meanwhile is held.
    faults = c.sim.state.faults
    faults.drop_after_accept.add("kt10000")
    held: list[Order] = []

    def on_update(u: OrderUpdate) -> None:
        if u.state is S.UNKNOWN and not held:
            faults.drop_after_accept.clear()  # before the next POST can go
            held.append(c.strat.buy(SYMBOL, 1, c.last))
            held.append(c.strat.buy(OTHER, 1, None))  # another symbol is not held

    c.trader.bus.subscribe(OrderUpdate, on_update)
    first = c.strat.buy(SYMBOL, 1, c.lower)
    await until(lambda: len(held) == 2)
    assert held[1].state is not S.REJECTED
    await until(lambda: first.state is S.ACCEPTED, 10)  # reconciliation found it resting
    assert first.order_no == c.sim.exchange.orders()[0].ord_no
    assert c.strat.buy(SYMBOL, 1, c.last).state is S.SUBMITTING
    return held[0], 0, 0


@pytest.mark.parametrize("reason", list(CASES))
async def test_each_risk_check_rejects_with_its_reason_and_numbers(
    reason: str, tmp_path: Path
) -> None:
    spec = CASES[reason]
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet", symbols=(SYMBOL, OTHER))

    def configure(cfg: Config) -> Config:
        # The engine's view of the sim's fees follows the sim it trades on (mode sim).
        return dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, **spec.sim))

    async with (
        Simulator(sim_config(events_per_s=LIVELY, **spec.sim)) as sim,
        running_engine(
            sim,
            tmp_path / "state",
            (sc,),
            configure=configure,
            account_streams=spec.account_streams,
            **spec.risk,
        ) as (trader, ws, _api),
    ):
        rejected: list[RiskRejected] = []
        trader.bus.subscribe(RiskRejected, rejected.append)
        await until(lambda: SYMBOL in trader.portfolio.last, 10)
        strat = trader.host.by_name["s"].instance
        ctx = Ctx(sim, trader, ws, strat, rejected)
        before = trader.oms.stats.risk_rejected

        order, limit, value = await spec.act(ctx)

        assert (order.state, order.reason) == (S.REJECTED, reason)
        assert order.order_no is None
        mine = [e for e in rejected if e.client_id == order.client_id]
        assert [(e.reason, e.limit, e.value) for e in mine] == [(reason, limit, value)]
        assert (mine[0].strategy, mine[0].symbol, mine[0].qty) == ("s", order.symbol, order.qty)
        assert (order.client_id, S.REJECTED) in strat.seen  # on_order saw it
        assert trader.oms.stats.risk_rejected > before
        assert trader.risk.counters()["rejected"] == trader.oms.stats.risk_rejected
        # Refused before the wire: the broker took exactly the orders that passed.
        await trader.oms.drain(5.0)
        taken = [o for o in sim.exchange.orders() if o.action == "new"]
        assert len(taken) == trader.oms.stats.submitted


async def test_session_hours_refuse_on_a_closed_day_and_pass_in_hours(
    sim: Simulator, tmp_path: Path
) -> None:
    # Mode sim never checks hours (the simulator's market never closes). A risk engine that
    # does, on a clock set to a Sunday, wired into the running engine in its place.
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        assert trader.risk.check_session_hours is False
        sunday = ManualClock(datetime(2026, 1, 4, 10, 0, tzinfo=KST))
        risk = RiskEngine(trader.cfg.risk, sunday, check_session_hours=True)
        trader.risk = trader.oms.risk = risk
        rejected: list[RiskRejected] = []
        trader.bus.subscribe(RiskRejected, rejected.append)
        await until(lambda: SYMBOL in trader.portfolio.last, 10)
        strat = trader.host.by_name["s"].instance

        order = strat.buy(SYMBOL, 1, trader.portfolio.last[SYMBOL])
        assert (order.state, order.reason) == (S.REJECTED, "SESSION_CLOSED")
        assert [(e.reason, e.limit, e.value, e.detail) for e in rejected] == [
            ("SESSION_CLOSED", 0, 100_000, "KRX 2026-01-04 10:00:00 (weekend)")
        ]
        assert (order.client_id, S.REJECTED) in strat.seen

        sunday.advance(86_400)  # Monday 10:00: the regular session
        order = strat.buy(SYMBOL, 1, trader.portfolio.last[SYMBOL])
        assert order.state is S.SUBMITTING
        await until(lambda: order.state is S.FILLED or order.state is S.ACCEPTED, 10)

        sunday.advance(9 * 3_600)  # Monday 19:00: every KRX session is over
        order = strat.buy(SYMBOL, 2, trader.portfolio.last[SYMBOL])
        assert (order.state, order.reason) == (S.REJECTED, "SESSION_CLOSED")
        assert (rejected[-1].value, rejected[-1].detail) == (190_000, "KRX 2026-01-05 19:00:00")
