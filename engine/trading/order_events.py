"""Order events and `apply`: the one way an order changes.

Every change to an order is an event (an answer, a 00 notice, a reconciliation finding, a
strategy's cancel); `apply(order, event)` looks (state, kind) up in `orders.TABLE`, changes
that order in place (strategies hold live `Order` handles) and returns the `Effects` for the
OMS to carry out: publish the update or the fill, forget the order as open, index a number,
send a cancel that waited for the number, reconcile. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.events import Fill, OrderState, OrderUpdate, maker
from engine.trading.orders import PENDING, TABLE, TERMINAL, Kind, Order, OrderReason, To

S = OrderState


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent:
    """What happened. `reason` is a code (set on the order when not empty) and `detail` the
    words behind it; `order_no` a broker number the event names. Built by keyword."""

    kind: Kind
    reason: str = ""
    detail: str = ""
    order_no: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent(OrderEvent):
    """Risk passed it and the journal holds its intent: it goes to the broker."""

    kind: Kind = field(default=Kind.SENT, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused(OrderEvent):
    """Refused before sending: `reason` is risk's code, STOPPING or JOURNAL."""

    kind: Kind = field(default=Kind.REFUSED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked(OrderEvent):
    """The broker answered the placement with its number (`order_no`)."""

    kind: Kind = field(default=Kind.ACKED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotSent(OrderEvent):
    """The broker client proves the placement never left."""

    kind: Kind = field(default=Kind.NOT_SENT, init=False)
    reason: str = OrderReason.NOT_SENT


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerRejected(OrderEvent):
    """The broker refused the order (its REST answer, or a 00 거부)."""

    kind: Kind = field(default=Kind.BROKER_REJECTED, init=False)
    reason: str = OrderReason.BROKER_REJECTED


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeUnknown(OrderEvent):
    """A placement, cancel or amend whose answer was lost."""

    kind: Kind = field(default=Kind.OUTCOME_UNKNOWN, init=False)
    reason: str = OrderReason.OUTCOME_UNKNOWN


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted(OrderEvent):
    """The broker took the order (00 접수)."""

    kind: Kind = field(default=Kind.ACCEPTED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Canceled(OrderEvent):
    """The broker ended the order (00 취소, a cancel confirmed, IOC rest)."""

    kind: Kind = field(default=Kind.CANCELED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequested(OrderEvent):
    """Someone asked to cancel the order."""

    kind: Kind = field(default=Kind.CANCEL_REQUESTED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAcked(OrderEvent):
    """The broker took the cancel, under its own number (`order_no`)."""

    kind: Kind = field(default=Kind.CANCEL_ACKED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRefused(OrderEvent):
    """The broker refused the cancel (typically: nothing left to cancel)."""

    kind: Kind = field(default=Kind.CANCEL_REFUSED, init=False)
    reason: str = OrderReason.CANCEL_REFUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceRequested(OrderEvent):
    """An amend passed risk and goes to the broker."""

    kind: Kind = field(default=Kind.REPLACE_REQUESTED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceRefused(OrderEvent):
    """The broker refused the amend."""

    kind: Kind = field(default=Kind.REPLACE_REFUSED, init=False)
    reason: str = OrderReason.MODIFY_REFUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class AmendRefused(OrderEvent):
    """Risk refused an amend (`reason` is its code): the order stays as it was."""

    kind: Kind = field(default=Kind.AMEND_REFUSED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Linked(OrderEvent):
    """The order's number (`order_no`), learned from a notice or reconciliation."""

    kind: Kind = field(default=Kind.LINKED, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Live(OrderEvent):
    """Reconciliation: the order is open at the broker."""

    kind: Kind = field(default=Kind.LIVE, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gone(OrderEvent):
    """Reconciliation: listed, nothing open, not all filled."""

    kind: Kind = field(default=Kind.GONE, init=False)
    reason: str = OrderReason.RECONCILED


@dataclass(frozen=True, slots=True, kw_only=True)
class NotAtBroker(OrderEvent):
    """Reconciliation: its outcome was unknown and the broker never listed it."""

    kind: Kind = field(default=Kind.NOT_AT_BROKER, init=False)
    reason: str = OrderReason.NOT_AT_BROKER


@dataclass(frozen=True, slots=True, kw_only=True)
class Expired(OrderEvent):
    """Its trading day ended with it open."""

    kind: Kind = field(default=Kind.EXPIRED, init=False)
    reason: str = OrderReason.EXPIRED


@dataclass(frozen=True, slots=True, kw_only=True)
class Restarted(OrderEvent):
    """The journal held it unanswered at a restart."""

    kind: Kind = field(default=Kind.RESTARTED, init=False)
    reason: str = OrderReason.UNKNOWN_RESTART


@dataclass(frozen=True, slots=True, kw_only=True)
class Replaced(OrderEvent):
    """An amend was taken: its number (`order_no`) is the live one now, at `price`."""

    kind: Kind = field(default=Kind.REPLACED, init=False)
    price: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Filled(OrderEvent):
    """A fill under the broker number `order_no`. `cum` is what the broker says is filled
    under that number in all (0 when it does not say): a fill it already covers counts once.
    `cum_fee` and `cum_tax` are likewise running totals, what the broker has charged under
    that number so far (Kiwoom's 00 carries them so, not this fill's own); the fill books
    what they add to what the order booked under the number. Both 0: the broker did not
    say (the OMS gives such a fill an estimate before it is applied)."""

    kind: Kind = field(default=Kind.FILLED, init=False)
    fill_no: str
    qty: int
    price: int
    cum: int = 0
    cum_fee: int = 0
    cum_tax: int = 0


def with_fees(ev: Filled, cum_fee: int, cum_tax: int) -> Filled:
    """`ev` with these running fee totals: `dataclasses.replace`, built by hand because every
    fill without broker figures takes this path and replace costs as much again."""
    return Filled(
        order_no=ev.order_no,
        reason=ev.reason,
        detail=ev.detail,
        fill_no=ev.fill_no,
        qty=ev.qty,
        price=ev.price,
        cum=ev.cum,
        cum_fee=cum_fee,
        cum_tax=cum_tax,
    )


@dataclass(slots=True)
class Effects:
    """What the OMS does after `apply`. Nothing set: the event changed nothing."""

    update: OrderUpdate | None = None
    """Publish (the journal, the strategy's on_order and the mirror read it)."""
    fill: Fill | None = None
    """Book on the portfolio and the loss counter, and publish."""
    ended: bool = False
    """No longer open: out of the open set that risk and matching scan."""
    linked: str = ""
    """A number of this order to index."""
    unlinked: str = ""
    """A number wrongly taken for this order: no longer its."""
    send_cancel: bool = False
    """The cancel asked for before the number came: send it now."""
    reconcile: bool = False
    illegal: bool = False
    """The table does not list (state, kind): nothing changed."""
    duplicate: bool = False
    """A fill already counted: nothing changed."""


_NOTHING = Effects()


def apply(order: Order, event: OrderEvent) -> Effects:
    """Apply `event` to `order` as `orders.TABLE` says; see the module docstring. Never
    raises: an event the table does not list for the order's state returns `illegal`."""
    kind = event.kind
    fill_qty = 0
    if kind is Kind.FILLED:
        assert isinstance(event, Filled)
        fill_qty = new_fill_qty(order, event)
        if fill_qty <= 0:
            return Effects(duplicate=True)
    elif (
        kind is Kind.REPLACED
        and event.order_no != order.order_no
        and event.order_no in order.order_nos
    ):
        # An earlier amend's number confirmed as amended away (its open part moved on to the
        # newer number): not this amend's confirmation. Taking it would put the order back on
        # a dead number at its old price.
        return _NOTHING
    prev = order.state
    target = TABLE.get((prev, kind))
    if target is None:
        return Effects(illegal=True)
    if target is To.IGNORE:
        return _NOTHING

    fx = Effects()
    if kind is Kind.FILLED:
        assert isinstance(event, Filled)
        fx.fill = _add_fill(order, event, fill_qty)
    elif event.order_no:
        _take_number(order, event, fx)
    if kind is Kind.AMEND_REFUSED:
        order.refusal = event.reason
    elif kind is Kind.REPLACE_REQUESTED:
        order.refusal = ""
    elif event.reason:
        order.reason = event.reason
        order.detail = event.detail
    elif event.detail:
        order.detail = event.detail
    if kind is Kind.CANCEL_REQUESTED and target is To.STAY:
        order.cancel_wanted = True

    new = _resolve(target, order, prev)
    if new is not prev:
        if new in PENDING and prev not in PENDING:
            order.prev_state = prev
        order.state = new
    elif new in PENDING and fill_qty:
        order.prev_state = S.PARTIALLY_FILLED
    if new is not prev or kind is Kind.AMEND_REFUSED or (fill_qty and new is S.PARTIALLY_FILLED):
        fx.update = _snapshot(order, prev)
    if new in TERMINAL and prev not in TERMINAL:
        fx.ended = True
        order.cancel_wanted = False
    elif order.cancel_wanted and new is not prev and new in (S.ACCEPTED, S.PARTIALLY_FILLED):
        order.cancel_wanted = False
        fx.send_cancel = True
    if kind is Kind.OUTCOME_UNKNOWN:
        fx.reconcile = True
    return fx


def _resolve(target: OrderState | To, order: Order, prev: OrderState) -> OrderState:
    if isinstance(target, OrderState):
        return target
    if target is To.STAY:
        return prev
    if target is To.PREV:
        return order.prev_state
    if target is To.OPEN:
        return S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED
    done = order.filled_qty >= order.qty
    if target is To.FILL:
        return S.FILLED if done else S.PARTIALLY_FILLED
    return S.FILLED if done else prev  # FILL_PENDING


def new_fill_qty(order: Order, ev: Filled) -> int:
    """The shares of `ev` not counted yet (0: a duplicate): a fill number seen before, or a
    cumulative figure the fills under that number already reach, counts nothing."""
    if (ev.order_no, ev.fill_no) in order.fill_nos:
        return 0
    qty = ev.qty
    if ev.cum:
        already = order.filled_by_no.get(ev.order_no, 0)
        if ev.cum <= already:
            return 0
        qty = min(qty, ev.cum - already)
    return min(qty, order.open_qty)


def _add_fill(order: Order, ev: Filled, qty: int) -> Fill:
    order.fill_nos.add((ev.order_no, ev.fill_no))
    order.filled_qty += qty
    order.fill_amount += qty * ev.price
    order.filled_by_no[ev.order_no] = order.filled_by_no.get(ev.order_no, 0) + qty
    # The broker's totals only grow: what they add is this fill's. Totals below what was
    # booked (an estimate above the broker's figure) refund nothing.
    fee_booked, tax_booked = order.fees_by_no.get(ev.order_no, (0, 0))
    fee = max(ev.cum_fee - fee_booked, 0)
    tax = max(ev.cum_tax - tax_booked, 0)
    if fee or tax:
        order.fees_by_no[ev.order_no] = (fee_booked + fee, tax_booked + tax)
    return Fill(
        None if order.external else order.client_id,
        order.strategy,
        ev.order_no,
        ev.fill_no,
        order.symbol,
        order.side,
        qty,
        ev.price,
        fee,
        tax,
    )


def _take_number(order: Order, ev: OrderEvent, fx: Effects) -> None:
    no = ev.order_no
    nos = order.order_nos
    kind = ev.kind
    if kind is Kind.CANCEL_ACKED:
        # A cancel's number names this order (a late notice under it finds it) but is never
        # the live one.
        if no not in nos:
            nos.append(no)
            fx.linked = no
        return
    if kind is Kind.REPLACED:
        assert isinstance(ev, Replaced)
        if no not in nos:
            nos.append(no)
            fx.linked = no
        order.order_no = no
        if ev.price:
            order.price = ev.price
        return
    if not nos:
        nos.append(no)
        order.order_no = no
        fx.linked = no
    elif kind is Kind.ACKED and nos[0] != no and no not in nos:
        # The placement's own answer names its number: a notice matched to this order before
        # it (an identical order placed elsewhere) named another's. That one is not ours.
        fx.unlinked = nos[0]
        nos[0] = no
        if order.order_no == fx.unlinked:
            order.order_no = no
        fx.linked = no


_update = maker(OrderUpdate)
"""OrderUpdate(...) by position (engine/events.py `maker`): every order step builds one."""


def _snapshot(order: Order, prev: OrderState) -> OrderUpdate:
    update: OrderUpdate = _update(
        order.client_id,
        order.strategy,
        order.symbol,
        order.side,
        order.qty,
        order.price or 0,
        order.state,
        prev,
        order.order_no,
        order.filled_qty,
        order.avg_fill_price,
        order.reason,
        order.fill_amount,
        0,  # ts_recv and seq: the bus stamps them
        0,
    )
    return update


def snapshot(order: Order) -> OrderUpdate:
    """The order as it is, for a reader that wants an update without a move."""
    return _snapshot(order, order.state)
