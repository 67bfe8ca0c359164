"""One order's life: the states, the one table of allowed moves, and the order record.

The table is the only authority on transitions (NautilusTrader's habit): `Order.apply` refuses
a move the table does not list with `IllegalTransition`, and never overwrites state. Pure: no
I/O, no clock; the OMS (engine/trading/oms.py) drives it and publishes what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.events import OrderState, OrderUpdate, Side, TimeInForce

S = OrderState

TERMINAL: frozenset[OrderState] = frozenset({S.FILLED, S.CANCELED, S.REJECTED})

# Fills and cancels can overtake the acknowledgement (Kiwoom's 00 push may come before the
# REST answer), so every live state may move straight to a fill or an end; UNKNOWN settles to
# whatever reconciliation finds. A pending cancel or amend refused by the broker goes back
# to the state it left (ACCEPTED or PARTIALLY_FILLED); the order itself may be refused (00
# 거부 after 접수) while a cancel or amend of it is on its way.
TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = {
    S.NEW: frozenset({S.SUBMITTING, S.REJECTED}),
    S.SUBMITTING: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.UNKNOWN}
    ),
    S.ACCEPTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED, S.REJECTED}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED}
    ),
    S.PENDING_CANCEL: frozenset(
        {S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.ACCEPTED, S.PENDING_CANCEL, S.REJECTED}
    ),
    S.PENDING_REPLACE: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.PENDING_CANCEL, S.REJECTED}
    ),
    S.UNKNOWN: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
}

OPEN: frozenset[OrderState] = frozenset(s for s in OrderState if s not in TERMINAL)


class IllegalTransition(Exception):
    """A move the table does not allow; the order keeps its state."""

    def __init__(self, client_id: str, current: OrderState, wanted: OrderState) -> None:
        super().__init__(f"order {client_id}: {current.value} -> {wanted.value} is not allowed")
        self.client_id = client_id
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asked for. `price` None is a market order."""

    symbol: str
    side: Side
    qty: int
    price: int | None
    tif: TimeInForce = TimeInForce.DAY


@dataclass(slots=True, eq=False)
class Order:
    """One order as the engine tracks it. Strategies get this object back from buy/sell and
    read it; only the OMS changes it.

    `order_no` is the broker's number of the live order: an amend gets a new number, linked
    here through `order_nos` (every number this order has had, oldest first).
    """

    client_id: str
    strategy: str | None
    symbol: str
    side: Side
    qty: int
    price: int | None
    tif: TimeInForce = TimeInForce.DAY
    state: OrderState = OrderState.NEW
    order_no: str | None = None
    order_nos: list[str] = field(default_factory=list)
    filled_qty: int = 0
    fill_amount: int = 0
    """Sum of fill price x qty, KRW: the average fill price is this over `filled_qty`."""
    reason: str = ""
    """Why it was rejected or ended (a reason code, or the broker's text)."""
    created_ns: int = 0
    external: bool = False
    fill_nos: set[tuple[str, str]] = field(default_factory=set)
    """(broker order number, fill number) of every fill counted: a broker may number fills
    per order, so the number alone does not name a fill."""
    filled_by_no: dict[str, int] = field(default_factory=dict)
    """Shares filled under each broker number: reconciliation compares these with the
    broker's per-number figures, so a fill is never counted twice."""
    prev_state: OrderState = OrderState.NEW
    """The state before a pending cancel/amend, to return to if the broker refuses it."""

    @property
    def open_qty(self) -> int:
        return max(self.qty - self.filled_qty, 0)

    @property
    def avg_fill_price(self) -> int:
        return self.fill_amount // self.filled_qty if self.filled_qty else 0

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def is_buy(self) -> bool:
        return self.side is Side.BUY

    def can_move_to(self, state: OrderState) -> bool:
        return state in TRANSITIONS[self.state]

    def apply(self, state: OrderState, reason: str = "") -> OrderUpdate:
        """Move to `state`; returns the update to publish. Raises IllegalTransition (and
        changes nothing) when the table does not allow the move."""
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.client_id, self.state, state)
        prev = self.state
        if state in (OrderState.PENDING_CANCEL, OrderState.PENDING_REPLACE) and prev not in (
            OrderState.PENDING_CANCEL,
            OrderState.PENDING_REPLACE,
        ):
            self.prev_state = prev
        self.state = state
        if reason:
            self.reason = reason
        return self.snapshot(prev)

    def link(self, order_no: str) -> None:
        """Learn a broker order number (the first one, or an amend's new one)."""
        if order_no not in self.order_nos:
            self.order_nos.append(order_no)
        self.order_no = order_no

    def add_fill(self, fill_no: str, qty: int, price: int, order_no: str) -> bool:
        """Count a fill once: False (and nothing changes) when `fill_no` under `order_no` was
        seen already."""
        key = (order_no, fill_no)
        if key in self.fill_nos:
            return False
        self.fill_nos.add(key)
        self.filled_qty += qty
        self.fill_amount += qty * price
        self.filled_by_no[order_no] = self.filled_by_no.get(order_no, 0) + qty
        return True

    def snapshot(self, prev: OrderState | None = None) -> OrderUpdate:
        return OrderUpdate(
            client_id=self.client_id,
            strategy=self.strategy,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            price=self.price or 0,
            state=self.state,
            prev_state=self.state if prev is None else prev,
            order_no=self.order_no,
            filled_qty=self.filled_qty,
            avg_fill_price=self.avg_fill_price,
            reason=self.reason,
            fill_amount=self.fill_amount,
        )
