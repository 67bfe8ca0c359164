"""The order manager: every order's life, from a strategy's buy to its last fill.

It owns the orders and the links from broker order numbers to them, applies 00 notices and
REST answers through the one transition table (engine/trading/orders.py), and publishes every
change on the bus. Orders go out only after the risk engine passes them and the journal holds
their intent; an order whose outcome is unknown is never sent again: it waits, with its symbol
held, for reconciliation (engine/trading/reconcile.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from engine.bus import EventBus
from engine.clock import Clock
from engine.events import (
    Fill,
    OrderBook,
    OrderExecution,
    OrderKind,
    OrderState,
    OrderStatus,
    Quote,
    RiskRejected,
    Side,
    TimeInForce,
    Trade,
    TradingState,
)
from engine.kiwoom.errors import (
    BrokerError,
    KiwoomError,
    OrderExpiredError,
    OutcomeUnknownError,
)
from engine.models import OrderAck, OrderType
from engine.trading import krx
from engine.trading.orders import IllegalTransition, Order, OrderRequest
from engine.trading.portfolio import Portfolio
from engine.trading.risk import Reason, Rejection, RiskEngine

log = structlog.get_logger(__name__)

S = OrderState


class OrderGateway(Protocol):
    """What the OMS needs of the broker (KiwoomApi satisfies it)."""

    async def buy(
        self,
        symbol: str,
        qty: int,
        order_type: OrderType = ...,
        price: int | None = ...,
        *,
        deadline: float | None = ...,
        shield: bool = ...,
    ) -> OrderAck: ...

    async def sell(
        self,
        symbol: str,
        qty: int,
        order_type: OrderType = ...,
        price: int | None = ...,
        *,
        deadline: float | None = ...,
        shield: bool = ...,
    ) -> OrderAck: ...

    async def modify(
        self, original_order_no: str, symbol: str, qty: int, price: int
    ) -> OrderAck: ...

    async def cancel(self, original_order_no: str, symbol: str, qty: int = ...) -> OrderAck: ...


class JournalWriter(Protocol):
    def record_intent(self, order: Order) -> None: ...


_ORDER_TYPES = {
    (False, TimeInForce.DAY): OrderType.LIMIT,
    (False, TimeInForce.IOC): OrderType.LIMIT_IOC,
    (False, TimeInForce.FOK): OrderType.LIMIT_FOK,
    (True, TimeInForce.DAY): OrderType.MARKET,
    (True, TimeInForce.IOC): OrderType.MARKET_IOC,
    (True, TimeInForce.FOK): OrderType.MARKET_FOK,
}


@dataclass
class OmsStats:
    submitted: int = 0
    risk_rejected: int = 0
    broker_rejected: int = 0
    unknown: int = 0
    illegal_transitions: int = 0
    duplicate_fills: int = 0
    external_orders: int = 0
    unmatched_notices: int = 0


class OrderManager:
    """Places, amends and cancels orders and tracks them to the end.

    `submit`, `cancel` and `modify` return at once; the REST calls run as tasks, so the
    strategy that called them is never blocked. Every state change is published on `bus`.
    """

    def __init__(
        self,
        gateway: OrderGateway,
        bus: EventBus,
        risk: RiskEngine,
        portfolio: Portfolio,
        journal: JournalWriter,
        clock: Clock,
        *,
        max_order_delay_s: float = 3.0,
        id_prefix: str = "O",
        on_unknown: Callable[[], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.bus = bus
        self.risk = risk
        self.portfolio = portfolio
        self.journal = journal
        self.clock = clock
        self.max_order_delay_s = max_order_delay_s
        self.id_prefix = id_prefix
        self._on_unknown = on_unknown or (lambda: None)
        self.orders: dict[str, Order] = {}
        """The orders of today and those still open from before, by client id (ended ones
        too until the day rolls: strategies and status read them)."""
        self._open: dict[str, Order] = {}
        """The orders not yet ended: what risk and matching scan, so they stay cheap."""
        self.by_order_no: dict[str, Order] = {}
        risk.on_new_day.append(self.new_day)
        self._carried: set[str] = set()
        """Client ids of the orders that were open when the day rolled: nothing of a later
        day (a notice, a reconciliation) is matched to them."""
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel_after_ack: set[str] = set()
        self.stats = OmsStats()
        self.accepting = True
        """False once shutdown began: new orders are refused (cancels still go)."""
        self.tick_to_order: list[Callable[[int], None]] = []
        """Called with the nanoseconds from the receipt (`ts_recv`) of the market event a new
        order answers to the moment the order is handed to the broker client (metrics)."""

    # --- placing -------------------------------------------------------------------------

    def next_client_id(self) -> str:
        self._next += 1
        return f"{self.id_prefix}{self._next}"

    def new_day(self) -> None:
        """Called by the risk engine as it rolls into a new KST day (`RiskEngine.on_new_day`):
        forget the order numbers of the days before (Kiwoom numbers orders again from the
        start each day: today's 0000001 is not yesterday's) and the orders that ended then (a
        process that runs for weeks would keep them all). Every path that looks a number up
        asks the risk engine to roll first; a new order is risk-checked, which rolls.

        Orders still open are carried over as they are, and nothing of the new day is matched
        to them: the new day's lists hold other orders under their numbers. What became of
        them is the broker's list of their own day; the log names them for the operator."""
        self.by_order_no.clear()
        ended = [cid for cid, o in self.orders.items() if not o.is_open]
        for cid in ended:
            del self.orders[cid]
        self._carried = set(self._open)
        log_at = log.warning if self._carried else log.info
        log_at(
            "oms_day_rolled",
            day=self.risk.trading_day(),
            ended_forgotten=len(ended),
            carried_over=sorted(self._carried),
        )

    def carried_over(self, order: Order) -> bool:
        """Whether `order` was open when a day rolled (see `new_day`)."""
        return order.client_id in self._carried

    def submit(self, req: OrderRequest, strategy: str | None) -> Order:
        """Risk-check `req`, journal its intent and send it. Returns the order at once: state
        SUBMITTING, or REJECTED with the reason code when a check (or shutdown) refused it."""
        order = Order(
            client_id=self.next_client_id(),
            strategy=strategy,
            symbol=req.symbol,
            side=req.side,
            qty=req.qty,
            price=req.price,
            tif=req.tif,
            created_ns=self.clock.time_ns(),
        )
        rejection = (
            self.risk.check(req, strategy, self)
            if self.accepting
            else Rejection(Reason.HALTED, detail="shutting down")
        )
        # Tracked only now: the checks must not count the order they are judging as open.
        self._track(order)
        if rejection is not None:
            self._publish_rejection(order, req.qty, req.price or 0, rejection)
            self._move(order, S.REJECTED, rejection.reason.value)
            return order
        self.journal.record_intent(order)
        self.risk.record_sent(req, strategy)
        self.stats.submitted += 1
        self._move(order, S.SUBMITTING)
        deadline = self.clock.monotonic() + self.max_order_delay_s
        # A strategy orders from inside the bus's dispatch of the tick it reacts to; a timer's
        # or an operator's order has no tick.
        tick = self.bus.current
        tick_ns = tick.ts_recv if isinstance(tick, Trade | Quote | OrderBook) else 0
        self._spawn(self._place(order, deadline, tick_ns), f"place-{order.client_id}")
        return order

    def _publish_rejection(self, order: Order, qty: int, price: int, rej: Rejection) -> None:
        self.stats.risk_rejected += 1
        self.bus.publish(
            RiskRejected(
                order.client_id,
                order.strategy,
                order.symbol,
                order.side,
                qty,
                price,
                rej.reason.value,
                rej.limit,
                rej.value,
                rej.detail,
            )
        )

    async def _place(self, order: Order, deadline: float, tick_ns: int = 0) -> None:
        order_type = _ORDER_TYPES[(order.price is None, order.tif)]
        send = self.gateway.buy if order.side is Side.BUY else self.gateway.sell
        if tick_ns and self.tick_to_order:
            elapsed_ns = self.clock.time_ns() - tick_ns
            for observe in self.tick_to_order:
                try:
                    observe(elapsed_ns)
                except Exception:  # a metrics bug must not keep an order from going out
                    log.exception("tick_to_order_observer_failed")
        try:
            # Unshielded: this task is the POST's own (one turn of the loop less), nobody
            # cancels it but the shutdown, and a cancel is an unknown outcome below.
            ack = await send(
                order.symbol, order.qty, order_type, order.price, deadline=deadline, shield=False
            )
        except OutcomeUnknownError as e:
            self._outcome_unknown(order, e.reason)
        except OrderExpiredError:
            self._broker_rejected(order, Reason.STALE.value)
        except BrokerError as e:
            self._broker_rejected(order, f"BROKER_{e.code or e.return_code}: {e.return_msg}")
        except KiwoomError as e:
            # Everything else the client raises proves the order was not sent (validation, a
            # refused connection): TransportErrors that might have reached the broker are
            # OutcomeUnknownError, handled above.
            self._broker_rejected(order, f"NOT_SENT: {type(e).__name__}")
        except asyncio.CancelledError:
            self._outcome_unknown(order, "cancelled")
            raise
        except Exception:
            log.exception("order_place_failed", client_id=order.client_id)
            self._outcome_unknown(order, "internal_error")
        else:
            self._acked(order, ack.order_no)

    def _acked(self, order: Order, order_no: str) -> None:
        self._link(order, order_no)
        if order.state in (S.SUBMITTING, S.UNKNOWN):
            self._move(order, S.ACCEPTED)

    def _outcome_unknown(self, order: Order, reason: str) -> None:
        self.stats.unknown += 1
        if order.state is S.SUBMITTING:
            self._move(order, S.UNKNOWN, f"UNKNOWN: {reason}")
        log.warning("order_outcome_unknown", client_id=order.client_id, reason=reason)
        self._on_unknown()

    def _broker_rejected(self, order: Order, reason: str) -> None:
        self.stats.broker_rejected += 1
        self._cancel_after_ack.discard(order.client_id)
        if order.state in (S.SUBMITTING, S.UNKNOWN):
            self._move(order, S.REJECTED, reason)

    # --- cancel and modify -----------------------------------------------------------------

    def cancel(self, order: Order) -> None:
        """Ask the broker to cancel what is open of `order`. Never risk-checked. An order
        still waiting for its number is cancelled as soon as the number comes."""
        self.risk.roll_day()
        if self.carried_over(order):
            # Its number names another order today: a cancel would reach that one.
            log.warning("cancel_refused_carried_over", client_id=order.client_id)
            return
        if order.state in (S.SUBMITTING, S.UNKNOWN, S.NEW):
            self._cancel_after_ack.add(order.client_id)
            return
        if order.state not in (S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_REPLACE):
            return  # done, or a cancel is already on its way
        assert order.order_no is not None
        self._move(order, S.PENDING_CANCEL)
        self._spawn(self._cancel(order, order.order_no), f"cancel-{order.client_id}")

    async def _cancel(self, order: Order, order_no: str) -> None:
        try:
            ack = await self.gateway.cancel(order_no, order.symbol, 0)
        except OutcomeUnknownError as e:
            log.warning("cancel_outcome_unknown", client_id=order.client_id, reason=e.reason)
            self._on_unknown()
        except KiwoomError as e:
            # Refused (typically: nothing left to cancel because it filled meanwhile): the
            # order goes back to where it was; the fills, if any, arrive on the feed.
            log.info("cancel_refused", client_id=order.client_id, error=str(e))
            if order.state is S.PENDING_CANCEL:
                self._move(order, order.prev_state, "CANCEL_REFUSED")
        except Exception:
            log.exception("cancel_failed", client_id=order.client_id)
        else:
            self.by_order_no.setdefault(ack.order_no, order)

    def modify(self, order: Order, qty: int | None = None, price: int | None = None) -> None:
        """Move all that is open of a limit order to `price`. `qty`, when given, must be the
        open quantity: Kiwoom amends part of an order by leaving the rest at the old price
        under the old number, which one order here cannot follow (to reduce, cancel and place
        anew). Raises ValueError for a market order, an order with nothing open, a bad price,
        or another qty, or an order carried over from a day before (see `new_day`)."""
        self.risk.roll_day()
        if self.carried_over(order):
            raise ValueError(
                f"order {order.client_id} is from a day before: its number names another order"
            )
        if order.price is None:
            raise ValueError("a market order cannot be modified")
        for name, value in (("qty", qty), ("price", price)):
            if value is not None and type(value) is not int:  # True, 1.5, "2": not shares, won
                raise ValueError(f"modify {name} must be an int, got {value!r}")
        if order.state not in (S.ACCEPTED, S.PARTIALLY_FILLED):
            raise ValueError(f"order {order.client_id} is {order.state.value}: cannot modify")
        new_price = order.price if price is None else price
        new_qty = order.open_qty
        if qty is not None and qty != new_qty:
            raise ValueError(
                f"modify moves all that is open ({new_qty}), got qty={qty}: to reduce, "
                "cancel and place a new order"
            )
        if new_price <= 0:
            raise ValueError("modify needs a positive price")
        rejection = self._check_amend(order, new_price)
        if rejection is not None:
            self._publish_rejection(order, new_qty, new_price, rejection)
            return
        assert order.order_no is not None
        self._move(order, S.PENDING_REPLACE)
        self._spawn(self._modify(order, order.order_no, new_price), f"modify-{order.client_id}")

    def _check_amend(self, order: Order, price: int) -> Rejection | None:
        """An amend moves a price: the halt, the tick and the daily band still apply."""
        if self.risk.state is TradingState.HALTED:
            return Rejection(Reason.HALTED)
        if not krx.is_on_tick(price):
            return Rejection(Reason.TICK_SIZE, krx.tick_size(price), price)
        base = self.base_price(order.symbol)
        if base is not None and not krx.within_limits(price, base):
            lower, upper = krx.price_limits(base)
            return Rejection(Reason.PRICE_BAND, upper if price > upper else lower, price)
        return None

    async def _modify(self, order: Order, order_no: str, price: int) -> None:
        try:
            # 0: all that is open when the amend arrives, should a fill have come meanwhile
            ack = await self.gateway.modify(order_no, order.symbol, 0, price)
        except OutcomeUnknownError as e:
            log.warning("modify_outcome_unknown", client_id=order.client_id, reason=e.reason)
            self._on_unknown()
        except KiwoomError as e:
            log.info("modify_refused", client_id=order.client_id, error=str(e))
            if order.state is S.PENDING_REPLACE:
                self._move(order, order.prev_state, "MODIFY_REFUSED")
        except Exception:
            log.exception("modify_failed", client_id=order.client_id)
        else:
            self.by_order_no.setdefault(ack.order_no, order)
            if order.state is S.PENDING_REPLACE:
                order.price = price
                self._link(order, ack.order_no)
                self._move(order, order.prev_state)

    # --- the 00 feed -------------------------------------------------------------------------

    def on_execution(self, ev: OrderExecution) -> None:
        """Apply one 00 notice: learn a number, count a fill, end an order. Idempotent: a
        notice seen twice changes nothing the second time."""
        self.risk.roll_day()
        order = self.by_order_no.get(ev.order_no)
        if order is None and ev.orig_order_no:
            order = self.by_order_no.get(ev.orig_order_no)
            if order is not None:
                self.by_order_no[ev.order_no] = order
        if order is None:
            order = self._match_unacked(ev) or self._external(ev)
        if ev.kind is OrderKind.NEW or ev.status is OrderStatus.FILLED:
            self._apply_notice(order, ev)
        elif ev.kind is OrderKind.AMEND:
            self._apply_amend(order, ev)
        else:
            self._apply_cancel(order, ev)

    def _match_unacked(self, ev: OrderExecution) -> Order | None:
        """Our order whose REST answer has not come yet (Kiwoom may push 00 first): the oldest
        SUBMITTING or UNKNOWN order with no number and the same symbol, side, qty and price."""
        if ev.kind is not OrderKind.NEW:
            return None
        for order in self._open.values():
            if (
                order.order_no is None
                and order.client_id not in self._carried
                and order.state in (S.SUBMITTING, S.UNKNOWN)
                and order.symbol == ev.symbol
                and order.side is ev.side
                and order.qty == ev.order_qty
                and (order.price or 0) == ev.order_price
            ):
                self._link(order, ev.order_no)
                return order
        return None

    def _external(self, ev: OrderExecution) -> Order:
        """An order this engine did not place: tracked and shown, never given to a strategy."""
        self.stats.external_orders += 1
        order = Order(
            client_id=f"X{self.risk.trading_day()}-{ev.order_no}",  # numbers restart daily
            strategy=None,
            symbol=ev.symbol,
            side=ev.side,
            qty=ev.order_qty,
            price=ev.order_price or None,
            state=S.SUBMITTING,
            created_ns=self.clock.time_ns(),
            external=True,
        )
        self._track(order)
        self._link(order, ev.order_no)
        log.info("external_order", order_no=ev.order_no, symbol=ev.symbol, side=ev.side.value)
        return order

    def _apply_notice(self, order: Order, ev: OrderExecution) -> None:
        status = ev.status
        if status is OrderStatus.ACCEPTED:
            if order.state in (S.SUBMITTING, S.UNKNOWN):
                self._move(order, S.ACCEPTED)
        elif status is OrderStatus.FILLED:
            self._fill(order, ev)
        elif status is OrderStatus.CANCELED:
            if order.is_open and order.state is not S.CANCELED:
                self._move(order, S.CANCELED, ev.reject_reason)
        elif status is OrderStatus.REJECTED and order.is_open:
            self._move(order, S.REJECTED, ev.reject_reason or "BROKER_REJECTED")
        # CONFIRMED on the original number: an amend or cancel took part of it; the child
        # order's own notice carries what happened.

    def _fill(self, order: Order, ev: OrderExecution) -> None:
        qty = ev.unit_fill_qty or ev.fill_qty
        price = ev.unit_fill_price or ev.fill_price
        if qty <= 0 or price <= 0:
            log.warning("fill_without_qty", order_no=ev.order_no)
            return
        cum = ev.order_qty - ev.unfilled_qty
        fill_no = ev.fill_no or f"{ev.order_no}:{cum}"
        already = order.filled_by_no.get(ev.order_no, 0)
        if 0 < cum <= already and (ev.order_no, fill_no) not in order.fill_nos:
            # Reconciliation booked this fill from the broker's order list before the notice
            # came (a late or replayed 00): the broker's cumulative figure says it is counted.
            self.stats.duplicate_fills += 1
            return
        if cum > already:
            qty = min(qty, cum - already)
        if not order.add_fill(fill_no, qty, price, ev.order_no):
            self.stats.duplicate_fills += 1
            return
        fill = Fill(
            None if order.external else order.client_id,
            order.strategy,
            ev.order_no,
            fill_no,
            order.symbol,
            order.side,
            qty,
            price,
            ev.fee,
            ev.tax,
        )
        self.book_fill(fill)
        self._after_fill(order)

    def book_fill(self, fill: Fill) -> None:
        """Book a fill on the portfolio and the daily loss counter, and publish it."""
        pnl = self.portfolio.on_fill(fill)
        change = self.risk.add_realized_pnl(pnl)
        self.bus.publish(fill)
        if change is not None:
            self.bus.publish(change)

    def _after_fill(self, order: Order) -> None:
        if order.filled_qty >= order.qty:
            if order.state is not S.FILLED:
                self._move(order, S.FILLED)
        elif order.state in (S.PENDING_CANCEL, S.PENDING_REPLACE):
            order.prev_state = S.PARTIALLY_FILLED
        elif order.state in (S.SUBMITTING, S.UNKNOWN, S.ACCEPTED, S.PARTIALLY_FILLED):
            self._move(order, S.PARTIALLY_FILLED)

    def _apply_amend(self, order: Order, ev: OrderExecution) -> None:
        if ev.status is OrderStatus.CONFIRMED:
            if ev.order_no != order.order_no and ev.order_no in order.order_nos:
                # An earlier amend's number confirmed as amended away (its open part moved on
                # to the newer number): not this amend's confirmation. Linking it would put the
                # order back on a dead number at its old price.
                return
            self._link(order, ev.order_no)
            order.price = ev.order_price or order.price
            if order.state is S.PENDING_REPLACE:
                self._move(order, order.prev_state)
        elif ev.status is OrderStatus.REJECTED and order.state is S.PENDING_REPLACE:
            self._move(order, order.prev_state, ev.reject_reason or "MODIFY_REFUSED")

    def _apply_cancel(self, order: Order, ev: OrderExecution) -> None:
        if ev.status is OrderStatus.CONFIRMED:
            if order.is_open:
                self._move(order, S.CANCELED)
        elif ev.status is OrderStatus.REJECTED and order.state is S.PENDING_CANCEL:
            self._move(order, order.prev_state, ev.reject_reason or "CANCEL_REFUSED")

    # --- plumbing --------------------------------------------------------------------------

    def _link(self, order: Order, order_no: str) -> None:
        order.link(order_no)
        self.by_order_no[order_no] = order

    def _move(self, order: Order, state: OrderState, reason: str = "") -> bool:
        """Apply a transition and publish it; an illegal one is logged and counted, and the
        order keeps its state."""
        if order.state is state and state is not S.PARTIALLY_FILLED:
            return False
        try:
            update = order.apply(state, reason)
        except IllegalTransition as e:
            self.stats.illegal_transitions += 1
            log.error(
                "order_illegal_transition",
                client_id=order.client_id,
                current=e.current.value,
                wanted=e.wanted.value,
            )
            return False
        if not order.is_open:
            self._open.pop(order.client_id, None)
            self._cancel_after_ack.discard(order.client_id)
        self.bus.publish(update)
        if state in (S.ACCEPTED, S.PARTIALLY_FILLED) and order.client_id in self._cancel_after_ack:
            # A cancel asked for while the order had no number: its number is known now,
            # whether from the REST answer, a 00 notice or reconciliation.
            self._cancel_after_ack.discard(order.client_id)
            self.cancel(order)
        return True

    def _track(self, order: Order) -> None:
        self.orders[order.client_id] = order
        if order.is_open:
            self._open[order.client_id] = order

    def move(self, order: Order, state: OrderState, reason: str = "") -> bool:
        """Apply a transition decided elsewhere (reconciliation); see `_move`."""
        return self._move(order, state, reason)

    def link(self, order: Order, order_no: str) -> None:
        self._link(order, order_no)

    def adopt(self, orders: Iterable[Order]) -> None:
        """Take orders rebuilt from the journal at start-up (before reconciliation)."""
        for order in orders:
            self._track(order)
            for no in order.order_nos:
                self.by_order_no[no] = order

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        # The call runs to its POST in the task's first step: the bus lets it have that step
        # before the feed's next event and the slow consumers' next batch.
        task = self.bus.spawn_urgent(coro, name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for the order calls in flight; returns how many remain."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return len(self._tasks)

    # --- reading (also the risk engine's AccountView) --------------------------------------

    def open_orders(self, strategy: str | None = None) -> list[Order]:
        return [o for o in self._open.values() if strategy is None or o.strategy == strategy]

    def position_qty(self, symbol: str) -> int:
        return self.portfolio.position_qty(symbol)

    def open_qty(self, symbol: str, side: Side) -> int:
        return sum(o.open_qty for o in self._open.values() if o.symbol == symbol and o.side is side)

    def open_orders_count(self) -> int:
        return len(self._open)

    def open_buy_notional(self) -> int:
        total = 0
        for o in self._open.values():
            if o.side is Side.BUY:
                total += o.open_qty * (o.price or self.portfolio.last.get(o.symbol, 0))
        return total

    def gross_exposure(self) -> int:
        return self.portfolio.gross_exposure()

    def buying_power(self) -> int:
        return self.portfolio.cash

    def last_price(self, symbol: str) -> int | None:
        return self.portfolio.last.get(symbol)

    def base_price(self, symbol: str) -> int | None:
        return self.portfolio.base.get(symbol)

    def has_unknown_order(self, symbol: str) -> bool:
        return any(o.state is S.UNKNOWN and o.symbol == symbol for o in self._open.values())

    def counts_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.orders.values():
            out[o.state.value] = out.get(o.state.value, 0) + 1
        return out
