"""The order manager: every order's life, from a strategy's buy to its last fill.

It owns the orders and the links from broker order numbers to them. Everything that happens
to an order (a broker's answer, a 00 notice, a reconciliation finding, a strategy's cancel)
becomes an order event, which `order_events.apply` applies through the one table in
engine/trading/orders.py; the OMS carries out what it returns and publishes every change on
the bus. The broker is a port (engine/trading/broker.py): its answers become events through
one table here (`OUTCOMES`). Orders go out only after the risk engine passes them and the
journal holds their intent; an order whose outcome is unknown is never sent again: it waits,
with its symbol held, for reconciliation (engine/trading/reconcile.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog

from engine.bus import EventBus
from engine.clock import KST, Clock
from engine.events import (
    Exchange,
    Fill,
    OrderBook,
    OrderExecution,
    OrderKind,
    OrderState,
    OrderStatus,
    Quote,
    RiskRejected,
    Side,
    Trade,
)
from engine.trading.broker import Answer, BrokerAnswer, BrokerPort
from engine.trading.order_events import (
    Accepted,
    Acked,
    AmendRefused,
    BrokerRejected,
    CancelAcked,
    Canceled,
    CancelRefused,
    CancelRequested,
    Effects,
    Expired,
    Filled,
    Linked,
    NotSent,
    OrderEvent,
    OutcomeUnknown,
    Refused,
    Replaced,
    ReplaceRefused,
    ReplaceRequested,
    Restarted,
    Sent,
    apply,
    new_fill_qty,
    with_fees,
)
from engine.trading.orders import INT64_MAX, PENDING, Order, OrderReason, OrderRequest
from engine.trading.portfolio import Portfolio
from engine.trading.risk import Rejection, RiskEngine

log = structlog.get_logger(__name__)

S = OrderState

_SENT = Sent()
_CANCEL_REQUESTED = CancelRequested()
_REPLACE_REQUESTED = ReplaceRequested()
_CANCELLED_CALL = BrokerAnswer(Answer.UNKNOWN, detail="cancelled")
_FAILED_CALL = BrokerAnswer(Answer.UNKNOWN, detail="internal_error")

ENDED_KEPT = 4_096
"""Ended orders kept (with their numbers) after they end, newest first: a late notice or
answer for one still finds it, and status shows it. Older ones are forgotten, so the maps
stay bounded by what is open plus this window (a daemon placing orders all day kept every
one). Late news comes seconds after an end, not thousands of orders later; a strategy keeps
its own handles."""

HELD_NOTICES_MAX = 1_000
"""Early 00 notices held while more than one unanswered order could be theirs. Each waits
for a REST answer or reconciliation to name its order; past this many (answers that never
come) the oldest are dropped, and reconciliation books what they carried."""


class JournalWriter(Protocol):
    def record_intent(self, order: Order) -> None:
        """Hold `order`'s intent durably before it is sent; raises when it cannot."""
        ...


class Call(StrEnum):
    PLACE = "place"
    CANCEL = "cancel"
    AMEND = "amend"


def _not_sent(a: BrokerAnswer, price: int) -> OrderEvent:
    return NotSent(reason=a.code or OrderReason.NOT_SENT, detail=a.detail)


OUTCOMES: Mapping[tuple[Call, Answer], Callable[[BrokerAnswer, int], OrderEvent]] = {
    (Call.PLACE, Answer.TAKEN): lambda a, _: Acked(order_no=a.order_no),
    (Call.PLACE, Answer.NOT_SENT): _not_sent,
    (Call.PLACE, Answer.REFUSED): lambda a, _: BrokerRejected(detail=f"{a.code}: {a.detail}"),
    (Call.PLACE, Answer.UNKNOWN): lambda a, _: OutcomeUnknown(detail=a.detail),
    # A refused cancel typically found nothing left to cancel (it filled meanwhile): the
    # order goes back to where it was, and the fills, if any, arrive on the feed.
    (Call.CANCEL, Answer.TAKEN): lambda a, _: CancelAcked(order_no=a.order_no),
    (Call.CANCEL, Answer.NOT_SENT): lambda a, _: CancelRefused(detail=a.detail),
    (Call.CANCEL, Answer.REFUSED): lambda a, _: CancelRefused(detail=f"{a.code}: {a.detail}"),
    (Call.CANCEL, Answer.UNKNOWN): lambda a, _: OutcomeUnknown(detail=a.detail),
    (Call.AMEND, Answer.TAKEN): lambda a, price: Replaced(order_no=a.order_no, price=price),
    (Call.AMEND, Answer.NOT_SENT): lambda a, _: ReplaceRefused(detail=a.detail),
    (Call.AMEND, Answer.REFUSED): lambda a, _: ReplaceRefused(detail=f"{a.code}: {a.detail}"),
    (Call.AMEND, Answer.UNKNOWN): lambda a, _: OutcomeUnknown(detail=a.detail),
}
"""How each order call's answer becomes an event of its order. A call that raised (the
port promises it does not) is UNKNOWN: it may have reached the broker."""


_UNKNOWN_EVENT = {
    Call.PLACE: "order_outcome_unknown",
    Call.CANCEL: "cancel_outcome_unknown",
    Call.AMEND: "modify_outcome_unknown",
}


def _order_day(order: Order) -> str:
    """The KST day, "YYYYMMDD", the order was placed on ("" when not known)."""
    if not order.created_ns:
        return ""
    return datetime.fromtimestamp(order.created_ns / 1e9, KST).strftime("%Y%m%d")


def _in_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "orders are placed, cancelled and amended from the event loop's thread only "
            "(a strategy's handlers run there); nothing was journaled or sent"
        ) from None


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
    held_notices: int = 0
    journal_refused: int = 0


class OrderManager:
    """Places, amends and cancels orders and tracks them to the end.

    `submit`, `cancel` and `modify` return at once; the broker calls run as tasks, so the
    strategy that called them is never blocked. Every state change is published on `bus`.
    """

    def __init__(
        self,
        broker: BrokerPort,
        bus: EventBus,
        risk: RiskEngine,
        portfolio: Portfolio,
        journal: JournalWriter,
        clock: Clock,
        *,
        max_order_delay_s: float = 3.0,
        id_prefix: str = "O",
        on_unknown: Callable[[], None] | None = None,
        on_journal_refused: Callable[[Exception], None] | None = None,
        ended_kept: int = ENDED_KEPT,
    ) -> None:
        self.broker = broker
        self.bus = bus
        self.risk = risk
        self.portfolio = portfolio
        self.journal = journal
        self.clock = clock
        self.max_order_delay_s = max_order_delay_s
        self.id_prefix = id_prefix
        self._on_unknown = on_unknown or (lambda: None)
        self.on_journal_refused = on_journal_refused or (lambda e: None)
        """Called when the journal refused an order's intent (the order ended REJECTED,
        reason JOURNAL, nothing sent): the trader halts new orders on it while the journal
        cannot write."""
        self.orders: dict[str, Order] = {}
        """The open orders and the last `ended_kept` ended ones, by client id (strategies'
        on_order and status read them)."""
        self.ended_kept = ended_kept
        self._ended: deque[str] = deque()
        """Client ids of ended orders still in `orders`, oldest first."""
        self._open: dict[str, Order] = {}
        """Today's orders not yet ended: what risk and matching scan, so they stay cheap."""
        self._open_of: dict[str | None, dict[str, Order]] = {}
        """`_open` by strategy (None: external), in the same order: a strategy reads its own
        open orders on every tick (`open_orders`)."""
        self._carried: dict[str, Order] = {}
        """Orders still open from a day before (see `new_day`): kept out of `_open`, so out of
        today's risk counts and matching, until reconciliation ends them."""
        self.by_order_no: dict[str, Order] = {}
        """Today's broker numbers of our orders (read-only outside the OMS)."""
        self.venues: set[Exchange] = {Exchange.KRX}
        """Venues orders went to (or may have) since start-up: reconciliation reads the
        account's holdings as each of them lists them."""
        risk.on_new_day.append(self.new_day)
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost: set[str] = set()
        """Client ids of orders whose pending cancel or amend call ended without an answer:
        reconciliation settles them from the broker's list (`call_lost`)."""
        self._held: list[OrderExecution] = []
        self._replaying = False
        self.stats = OmsStats()
        self.accepting = True
        """False once shutdown began: new orders are refused (STOPPING); cancels still go."""
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

        Orders still open are carried over: nothing of the new day is matched to them (the
        new day's lists hold other orders under their numbers), no cancel or amend goes out
        under their numbers, and they leave today's risk counts. KRX day orders do not
        outlive their day: reconciliation reads their own day's list, books what filled and
        ends them (CANCELED, EXPIRED); until it can, they are kept."""
        self.by_order_no.clear()
        ended = [cid for cid, o in self.orders.items() if not o.is_open]
        for cid in ended:
            del self.orders[cid]
        self._ended.clear()
        self._carried.update(self._open)
        self._open.clear()
        self._open_of.clear()
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

    def carried_by_day(self) -> dict[str, list[Order]]:
        """The carried-over orders by the day ("YYYYMMDD") they were placed on."""
        out: dict[str, list[Order]] = {}
        for order in self._carried.values():
            out.setdefault(_order_day(order), []).append(order)
        return out

    def submit(self, req: OrderRequest, strategy: str | None) -> Order:
        """Risk-check `req`, journal its intent and send it. Returns the order at once: state
        SUBMITTING, or REJECTED with the reason code when a check, the shutdown (STOPPING) or
        the journal (JOURNAL) refused it. Raises ValueError for a quantity or price the
        journal cannot hold (beyond int64) and RuntimeError off the event loop's thread:
        programming errors, like a quantity below 1; nothing is journaled then."""
        _in_loop()
        if req.qty > INT64_MAX or (req.price or 0) > INT64_MAX:
            raise ValueError(f"qty and price must fit in int64, got {req.qty}, {req.price}")
        order = Order(
            client_id=self.next_client_id(),
            strategy=strategy,
            symbol=req.symbol,
            side=req.side,
            qty=req.qty,
            price=req.price,
            tif=req.tif,
            venue=req.venue,
            created_ns=self.clock.time_ns(),
        )
        if not self.accepting:
            self._track(order)
            self._refuse(order, req, OrderReason.STOPPING, "shutting down")
            return order
        rejection = self.risk.check(req, strategy, self, exchange=req.venue)
        # Tracked only now: the checks must not count the order they are judging as open.
        self._track(order)
        if rejection is not None:
            self._refuse(order, req, rejection.reason.value, rejection.detail, rejection)
            return order
        try:
            self.journal.record_intent(order)
        except Exception as e:
            # Not held, so never sent: a crash would leave an order no restart knows of.
            self.stats.journal_refused += 1
            log.error("order_journal_refused", client_id=order.client_id, error=str(e))
            self._apply(order, Refused(reason=OrderReason.JOURNAL, detail=str(e)))
            self.on_journal_refused(e)
            return order
        self.risk.record_sent(req, strategy)
        self.venues.add(order.venue)
        self.stats.submitted += 1
        self._apply(order, _SENT)
        deadline = self.clock.monotonic() + self.max_order_delay_s
        # A strategy orders from inside the bus's dispatch of the tick it reacts to; a timer's
        # or an operator's order has no tick.
        tick = self.bus.current
        tick_ns = tick.ts_recv if isinstance(tick, Trade | Quote | OrderBook) else 0
        call = self.broker.place(
            order.symbol,
            order.side,
            order.qty,
            order.price,
            order.tif,
            deadline=deadline,
            venue=order.venue,
        )
        self._spawn(
            self._call(order, Call.PLACE, call, tick_ns=tick_ns), f"place-{order.client_id}"
        )
        return order

    def _refuse(
        self,
        order: Order,
        req: OrderRequest,
        reason: str,
        detail: str,
        rej: Rejection | None = None,
    ) -> None:
        self._publish_rejection(
            order,
            req.qty,
            req.price or 0,
            reason,
            detail,
            rej.limit if rej else 0,
            rej.value if rej else 0,
        )
        self._apply(order, Refused(reason=reason, detail=detail))

    def _publish_rejection(
        self,
        order: Order,
        qty: int,
        price: int,
        reason: str,
        detail: str,
        limit: int = 0,
        value: int = 0,
    ) -> None:
        self.stats.risk_rejected += 1
        self.bus.publish(
            RiskRejected(
                order.client_id,
                order.strategy,
                order.symbol,
                order.side,
                qty,
                price,
                reason,
                limit,
                value,
                detail,
            )
        )

    async def _call(
        self,
        order: Order,
        call: Call,
        answer_of: Coroutine[Any, Any, BrokerAnswer],
        *,
        tick_ns: int = 0,
        price: int = 0,
    ) -> None:
        """Run one broker call for `order` and apply its answer as an event (`OUTCOMES`)."""
        if tick_ns and self.tick_to_order:
            elapsed_ns = self.clock.time_ns() - tick_ns
            for observe in self.tick_to_order:
                try:
                    observe(elapsed_ns)
                except Exception:  # a metrics bug must not keep an order from going out
                    log.exception("tick_to_order_observer_failed")
        try:
            answer = await answer_of
        except asyncio.CancelledError:
            self._answered(order, call, _CANCELLED_CALL, price)
            raise
        except Exception:
            log.exception("order_call_failed", client_id=order.client_id, call=call.value)
            answer = _FAILED_CALL
        self._answered(order, call, answer, price)

    def _answered(self, order: Order, call: Call, answer: BrokerAnswer, price: int) -> None:
        kind = answer.kind
        if call is not Call.PLACE:
            if kind is Answer.UNKNOWN:
                self._lost.add(order.client_id)
            else:
                self._lost.discard(order.client_id)
        if kind is not Answer.TAKEN:
            # Off the hot path: an answer that is not a plain yes is logged with its order.
            olog = log.bind(client_id=order.client_id, call=call.value)
            if kind is Answer.UNKNOWN:
                olog.warning(_UNKNOWN_EVENT[call], reason=answer.detail)
                self.stats.unknown += call is Call.PLACE
            else:
                olog.info(
                    "order_call_refused", answer=kind.value, code=answer.code, detail=answer.detail
                )
                self.stats.broker_rejected += call is Call.PLACE
        self._apply(order, OUTCOMES[(call, kind)](answer, price))

    # --- cancel and modify -----------------------------------------------------------------

    def cancel(self, order: Order) -> None:
        """Ask the broker to cancel what is open of `order`. Never risk-checked. An order
        still waiting for its number is cancelled as soon as the number comes. Raises
        ValueError for something that is not an order."""
        if not isinstance(order, Order):
            raise ValueError(f"cancel takes an Order, got {order!r}")
        _in_loop()
        self.risk.roll_day()
        if self.carried_over(order):
            # Its number names another order today: a cancel would reach that one.
            log.warning("cancel_refused_carried_over", client_id=order.client_id)
            return
        if order.state in (S.SUBMITTING, S.UNKNOWN, S.NEW):
            self._apply(order, _CANCEL_REQUESTED)
            return
        if order.state not in (S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_REPLACE):
            return  # done, or a cancel is already on its way
        order_no = order.order_no
        assert order_no is not None
        self._apply(order, _CANCEL_REQUESTED)
        call = self.broker.cancel(order_no, order.symbol, venue=order.venue)
        self._spawn(self._call(order, Call.CANCEL, call), f"cancel-{order.client_id}")

    def modify(self, order: Order, qty: int | None = None, price: int | None = None) -> None:
        """Move all that is open of a limit order to `price`. `qty`, when given, must be the
        open quantity: Kiwoom amends part of an order by leaving the rest at the old price
        under the old number, which one order here cannot follow (to reduce, cancel and place
        anew). Raises ValueError for a market order, an order with nothing open, a bad price,
        or another qty, or an order carried over from a day before (see `new_day`).

        The amend passes every check a new order at that price and quantity would, judged as
        if this order were replaced (`RiskEngine.check_amend`). A refused amend leaves the
        order as it was, with risk's code in `order.refusal`, and is published (on_order)."""
        if not isinstance(order, Order):
            raise ValueError(f"modify takes an Order, got {order!r}")
        _in_loop()
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
        if not 0 < new_price <= INT64_MAX:
            raise ValueError(f"modify needs a positive int64 price, got {new_price}")
        req = OrderRequest(order.symbol, order.side, new_qty, new_price, order.tif, order.venue)
        rejection = self.risk.check_amend(
            req, order.strategy, self, replacing=order, exchange=order.venue
        )
        if rejection is not None:
            code = rejection.reason.value
            self._publish_rejection(
                order,
                new_qty,
                new_price,
                code,
                rejection.detail,
                rejection.limit,
                rejection.value,
            )
            self._apply(order, AmendRefused(reason=code, detail=rejection.detail))
            return
        order_no = order.order_no
        assert order_no is not None
        self._apply(order, _REPLACE_REQUESTED)
        call = self.broker.amend(order_no, order.symbol, new_price, venue=order.venue)
        self._spawn(
            self._call(order, Call.AMEND, call, price=new_price), f"modify-{order.client_id}"
        )

    def call_lost(self, order: Order) -> bool:
        """Whether `order`'s pending cancel or amend went out and no answer came (its outcome
        is unknown): only the broker's list can settle it."""
        return order.client_id in self._lost

    # --- the 00 feed -------------------------------------------------------------------------

    def on_execution(self, ev: OrderExecution) -> None:
        """Apply one 00 notice: learn a number, count a fill, end an order. Idempotent: a
        notice seen twice changes nothing the second time. A notice that could be more than
        one unanswered order's is held until an answer or reconciliation names its order."""
        self.risk.roll_day()
        order = self.by_order_no.get(ev.order_no)
        if order is None and ev.orig_order_no:
            order = self.by_order_no.get(ev.orig_order_no)
            if order is not None:
                self.by_order_no[ev.order_no] = order
        if order is None:
            if ev.kind is OrderKind.NEW:
                like = self._unanswered_like(ev)
                if len(like) > 1:
                    self._hold(ev, like)
                    return
                if like:
                    order = like[0]
                    self._apply(order, Linked(order_no=ev.order_no))
            if order is None:
                order = self._external(ev)
        for event in self._notice_events(ev):
            self._apply(order, event)

    def _unanswered_like(self, ev: OrderExecution) -> list[Order]:
        """Our orders whose REST answer has not come yet (Kiwoom may push 00 first) that the
        notice could be: no number, same symbol, side, qty and price."""
        return [
            order
            for order in self._open.values()
            if order.order_no is None
            and order.state in (S.SUBMITTING, S.UNKNOWN)
            and order.symbol == ev.symbol
            and order.side is ev.side
            and order.qty == ev.order_qty
            and (order.price or 0) == ev.order_price
        ]

    def _hold(self, ev: OrderExecution, like: list[Order]) -> None:
        self.stats.held_notices += 1
        self._held.append(ev)
        log.info(
            "notice_held",
            order_no=ev.order_no,
            could_be=[o.client_id for o in like],
        )
        if len(self._held) > HELD_NOTICES_MAX:
            dropped = self._held.pop(0)
            self.stats.unmatched_notices += 1
            log.warning("notice_dropped", order_no=dropped.order_no)

    def _replay_held(self) -> None:
        """Try the held notices again: an answer or reconciliation may have named their
        order, or left only one that they can be."""
        if self._replaying or not self._held:
            return
        self._replaying = True
        try:
            while self._held:
                held, self._held = self._held, []
                for ev in held:
                    self.on_execution(ev)
                if len(self._held) >= len(held):
                    break
        finally:
            self._replaying = False

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
        self._apply(order, Linked(order_no=ev.order_no))
        log.info("external_order", order_no=ev.order_no, symbol=ev.symbol, side=ev.side.value)
        return order

    @staticmethod
    def _notice_events(ev: OrderExecution) -> list[OrderEvent]:
        """What a 00 notice says happened to its order."""
        status = ev.status
        if ev.kind is OrderKind.NEW or status is OrderStatus.FILLED:
            if status is OrderStatus.ACCEPTED:
                return [Accepted()]
            if status is OrderStatus.FILLED:
                qty = ev.unit_fill_qty or ev.fill_qty
                price = ev.unit_fill_price or ev.fill_price
                if qty <= 0 or price <= 0:
                    log.warning("fill_without_qty", order_no=ev.order_no)
                    return []
                cum = ev.order_qty - ev.unfilled_qty
                return [
                    Filled(
                        order_no=ev.order_no,
                        fill_no=ev.fill_no or f"{ev.order_no}:{cum}",
                        qty=qty,
                        price=price,
                        cum=max(cum, 0),
                        cum_fee=ev.fee,
                        cum_tax=ev.tax,
                    )
                ]
            if status is OrderStatus.CANCELED:
                return [Canceled(detail=ev.reject_reason)]
            if status is OrderStatus.REJECTED:
                return [BrokerRejected(detail=ev.reject_reason)]
            # CONFIRMED on the original number: an amend or cancel took part of it; the
            # child order's own notice carries what happened.
            return []
        if ev.kind is OrderKind.AMEND:
            if status is OrderStatus.CONFIRMED:
                return [Replaced(order_no=ev.order_no, price=ev.order_price)]
            if status is OrderStatus.REJECTED:
                return [ReplaceRefused(detail=ev.reject_reason)]
            return []
        if status is OrderStatus.CONFIRMED:
            return [Canceled()]
        if status is OrderStatus.REJECTED:
            return [CancelRefused(detail=ev.reject_reason)]
        return []

    # --- events from elsewhere -------------------------------------------------------------

    def reconciled(self, order: Order, event: OrderEvent) -> Effects:
        """Apply what reconciliation found about `order` (engine/trading/reconcile.py)."""
        return self._apply(order, event)

    def restarted(self, order: Order) -> None:
        """An order the journal rebuilt with no answer (NEW, SUBMITTING): its POST may have
        reached the broker, and the answer died with the process that sent it. UNKNOWN, for
        reconciliation to settle (never resent)."""
        self._apply(order, Restarted())

    def expire(self, order: Order) -> None:
        """End a carried-over order whose day is over (see `new_day`)."""
        self._apply(order, Expired())

    # --- plumbing --------------------------------------------------------------------------

    def _apply(self, order: Order, event: OrderEvent) -> Effects:
        """Apply `event` to `order` and carry out what follows."""
        if isinstance(event, Filled) and not (event.cum_fee or event.cum_tax):
            event = self._estimated(order, event)
        fx = apply(order, event)
        if fx.illegal:
            self.stats.illegal_transitions += 1
            log.error(
                "order_illegal_event",
                client_id=order.client_id,
                state=order.state.value,
                event=event.kind.value,
            )
            return fx
        if fx.duplicate:
            self.stats.duplicate_fills += 1
            return fx
        if fx.unlinked and self.by_order_no.get(fx.unlinked) is order:
            del self.by_order_no[fx.unlinked]
            log.warning("order_number_corrected", client_id=order.client_id, was=fx.unlinked)
        if fx.linked and order.client_id not in self._carried:
            # A carried-over order's number is of its own day: today's map must not hold it.
            self.by_order_no[fx.linked] = order
        if fx.fill is not None:
            self._book(fx.fill)
        if fx.ended:
            if self._open.pop(order.client_id, None) is not None:
                mine = self._open_of.get(order.strategy)
                if mine is not None:  # (an order's strategy never changes; never raise here)
                    mine.pop(order.client_id, None)
                    if not mine:
                        del self._open_of[order.strategy]
            self._carried.pop(order.client_id, None)
            self._ended.append(order.client_id)
            if len(self._ended) > self.ended_kept:
                self._forget(self._ended.popleft())
        if fx.update is not None:
            if self._lost and order.state not in PENDING:
                self._lost.discard(order.client_id)
            self.bus.publish(fx.update)
        if fx.send_cancel:
            # A cancel asked for while the order had no number: its number is known now,
            # whether from the REST answer, a 00 notice or reconciliation.
            self.cancel(order)
        if fx.reconcile:
            self._on_unknown()
        if self._held and (fx.linked or fx.ended):
            self._replay_held()
        return fx

    def _estimated(self, order: Order, ev: Filled) -> Filled:
        """`ev`, which carries no fee figures (a fill from the broker's order list, or a
        notice without them), with the portfolio's estimate for the shares it adds on top of
        what the order booked under its number. The estimate is booked like a broker figure:
        the fill carries it (the journal keeps it, a restart rebuilds it), and the broker's
        next running totals charge only what exceeds it."""
        qty = new_fill_qty(order, ev)
        if qty <= 0:
            return ev
        fee, tax = self.portfolio.fee_parts(order.side, qty, ev.price, order.symbol)
        booked_fee, booked_tax = order.fees_by_no.get(ev.order_no, (0, 0))
        return with_fees(ev, booked_fee + fee, booked_tax + tax)

    def _book(self, fill: Fill) -> None:
        """Book a fill on the portfolio and the daily loss counter, and publish it."""
        self.risk.roll_day()  # on the day it is heard, in the portfolio as in the counters
        pnl = self.portfolio.on_fill(fill)
        change = self.risk.add_realized_pnl(pnl)
        self.bus.publish(fill)
        if change is not None:
            self.bus.publish(change)

    def _track(self, order: Order) -> None:
        self.orders[order.client_id] = order
        if order.is_open:
            self._open[order.client_id] = order
            self._open_of.setdefault(order.strategy, {})[order.client_id] = order

    def _forget(self, client_id: str) -> None:
        """Drop an order that ended `ended_kept` ends ago, and its numbers."""
        order = self.orders.pop(client_id, None)
        if order is None:
            return
        for no in order.order_nos:
            if self.by_order_no.get(no) is order:
                del self.by_order_no[no]

    def adopt(self, orders: Iterable[Order]) -> None:
        """Take orders rebuilt from the journal at start-up (before reconciliation). Those
        still open from a day before are carried over (see `new_day`)."""
        today = self.risk.trading_day()
        for order in orders:
            self.venues.add(order.venue)
            day = _order_day(order)
            if order.is_open and day and day < today:
                self.orders[order.client_id] = order
                self._carried[order.client_id] = order
                continue
            self._track(order)
            for no in order.order_nos:
                self.by_order_no[no] = order
            if not order.is_open:
                self._ended.append(order.client_id)
                if len(self._ended) > self.ended_kept:
                    self._forget(self._ended.popleft())

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        # The call runs to its POST in the task's first step: the bus lets it have that step
        # before the feed's next event and the slow consumers' next batch.
        task = self.bus.spawn_urgent(coro, name, self._tasks.discard)
        self._tasks.add(task)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for the order calls in flight; returns how many remain."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return len(self._tasks)

    # --- reading (also the risk engine's AccountView) --------------------------------------

    def open_orders(self, strategy: str | None = None) -> list[Order]:
        """The orders not yet ended, today's and those carried over from a day before."""
        if strategy is None:
            return [*self._open.values(), *self._carried.values()]
        of = self._open_of.get(strategy)
        mine = list(of.values()) if of else []
        if self._carried:  # a strategy asks on every tick: no second scan for nothing
            mine += [o for o in self._carried.values() if o.strategy == strategy]
        return mine

    def position_qty(self, symbol: str) -> int:
        return self.portfolio.position_qty(symbol)

    def open_qty(self, symbol: str, side: Side) -> int:
        return sum(o.open_qty for o in self._open.values() if o.symbol == symbol and o.side is side)

    def strategy_qty(self, strategy: str, symbol: str) -> int:
        return self.portfolio.strategy_qty(strategy, symbol)

    def strategy_open_qty(self, strategy: str, symbol: str, side: Side) -> int:
        return sum(
            o.open_qty
            for o in self._open.values()
            if o.strategy == strategy and o.symbol == symbol and o.side is side
        )

    def external_qty(self, symbol: str) -> int:
        return self.portfolio.external_qty(symbol)

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
