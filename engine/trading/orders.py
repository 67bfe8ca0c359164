"""One order's life: its states, the reason codes, the record, and the one table that decides
what each order event does in each state.

The table (`TABLE`, keyed by (state, event kind)) is the only authority on an order's state:
`engine/trading/order_events.apply` looks every event up in it, and a pair it does not list is
an illegal event that changes nothing (NautilusTrader's habit). Pure: no I/O, no clock; the
OMS (engine/trading/oms.py) turns what happened into events and carries out what `apply`
returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from engine.events import Exchange, OrderState, Side, TimeInForce

S = OrderState

TERMINAL: frozenset[OrderState] = frozenset({S.FILLED, S.CANCELED, S.REJECTED})
OPEN: frozenset[OrderState] = frozenset(s for s in OrderState if s not in TERMINAL)
PENDING: frozenset[OrderState] = frozenset({S.PENDING_CANCEL, S.PENDING_REPLACE})

INT64_MAX = 2**63 - 1
"""The largest quantity or price the journal (SQLite INTEGER) stores."""


class OrderReason(StrEnum):
    """Why an order ended or was refused, beside risk's codes (engine/trading/risk.Reason),
    which a refused order carries as they are. The broker's own text, when there is one, is
    kept apart in `Order.detail`."""

    NOT_SENT = "NOT_SENT"
    """The broker client proves the order never left (a refused connection, bad input)."""
    BROKER_REJECTED = "BROKER_REJECTED"
    NOT_AT_BROKER = "NOT_AT_BROKER"
    """Its outcome was unknown and the broker's books never listed it."""
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    UNKNOWN_RESTART = "UNKNOWN_RESTART"
    """The journal held its intent but no answer: the process that sent it died."""
    CANCEL_REFUSED = "CANCEL_REFUSED"
    MODIFY_REFUSED = "MODIFY_REFUSED"
    RECONCILED = "RECONCILED"
    """The broker's books list it ended without a notice saying so (cancelled or refused)."""
    EXPIRED = "EXPIRED"
    """Open when its trading day ended: KRX day orders do not outlive their day."""
    STOPPING = "STOPPING"
    """Placed while the engine shuts down."""
    JOURNAL = "JOURNAL"
    """The journal could not hold its intent (disk full, I/O error): never sent."""


class Kind(StrEnum):
    """What happened to an order: the events of engine/trading/order_events.py."""

    SENT = "sent"
    """Risk passed it and the journal holds its intent: handed to the broker."""
    REFUSED = "refused"
    """Refused before sending (risk, shutdown, the journal)."""
    ACKED = "acked"
    """The broker answered the placement with its number."""
    NOT_SENT = "not_sent"
    BROKER_REJECTED = "broker_rejected"
    OUTCOME_UNKNOWN = "outcome_unknown"
    """A placement, cancel or amend whose answer was lost: reconciliation will tell."""
    ACCEPTED = "accepted"
    FILLED = "filled"
    CANCELED = "canceled"
    CANCEL_REQUESTED = "cancel_requested"
    CANCEL_ACKED = "cancel_acked"
    CANCEL_REFUSED = "cancel_refused"
    REPLACE_REQUESTED = "replace_requested"
    REPLACED = "replaced"
    REPLACE_REFUSED = "replace_refused"
    AMEND_REFUSED = "amend_refused"
    """Risk refused an amend: the order stays as it was, with the code in `refusal`."""
    LINKED = "linked"
    """Its number learned elsewhere (a notice that names no other order, reconciliation)."""
    LIVE = "live"
    """Reconciliation: open at the broker."""
    GONE = "gone"
    """Reconciliation: listed, nothing open, not all filled."""
    NOT_AT_BROKER = "not_at_broker"
    EXPIRED = "expired"
    RESTARTED = "restarted"
    """Found in the journal without an answer after a restart."""


class To(Enum):
    """A table entry that is not a fixed state."""

    STAY = "stay"
    """Legal: the state stays; what the event carries (a number, a price) is taken."""
    IGNORE = "ignore"
    """Legal but late (a notice for an order already ended): nothing changes."""
    PREV = "prev"
    """Back to the state before the pending cancel or amend."""
    OPEN = "open"
    """ACCEPTED, or PARTIALLY_FILLED once anything filled."""
    FILL = "fill"
    """PARTIALLY_FILLED, or FILLED once all is filled."""
    FILL_PENDING = "fill_pending"
    """FILLED once all is filled, else the pending state stays (and returns to
    PARTIALLY_FILLED should the cancel or amend be refused)."""


Target = OrderState | To

K = Kind

_LATE: dict[Kind, Target] = {
    K.ACCEPTED: To.IGNORE,
    K.CANCELED: To.IGNORE,
    K.BROKER_REJECTED: To.IGNORE,
    K.CANCEL_REQUESTED: To.IGNORE,
    K.CANCEL_ACKED: To.STAY,
    K.CANCEL_REFUSED: To.IGNORE,
    K.REPLACED: To.IGNORE,
    K.REPLACE_REFUSED: To.IGNORE,
    K.ACKED: To.STAY,
    K.LINKED: To.STAY,
    K.LIVE: To.IGNORE,
    K.GONE: To.IGNORE,
    K.OUTCOME_UNKNOWN: To.IGNORE,
    K.NOT_AT_BROKER: To.IGNORE,
    K.EXPIRED: To.IGNORE,
}
"""An ended order takes the late news of its life (a notice overtaken by another, an answer
after the 00 push) without moving; a fill, an amend or a new send for it is illegal."""

_ANSWERED: dict[Kind, Target] = {
    K.FILLED: To.FILL,
    K.CANCELED: S.CANCELED,
    K.ACKED: To.STAY,
    K.LINKED: To.STAY,
    K.CANCEL_ACKED: To.STAY,
    K.REPLACED: To.STAY,
    K.CANCEL_REFUSED: To.IGNORE,
    K.REPLACE_REFUSED: To.IGNORE,
    K.OUTCOME_UNKNOWN: To.IGNORE,
    K.NOT_AT_BROKER: To.IGNORE,
    K.ACCEPTED: To.IGNORE,
    K.LIVE: To.OPEN,
    K.GONE: S.CANCELED,
    K.EXPIRED: S.CANCELED,
    K.CANCEL_REQUESTED: S.PENDING_CANCEL,
    K.REPLACE_REQUESTED: S.PENDING_REPLACE,
    K.AMEND_REFUSED: To.STAY,
}
"""An order the broker holds (ACCEPTED, PARTIALLY_FILLED)."""

_PENDING: dict[Kind, Target] = {
    K.FILLED: To.FILL_PENDING,
    K.CANCELED: S.CANCELED,
    K.BROKER_REJECTED: S.REJECTED,
    K.ACKED: To.STAY,
    K.LINKED: To.STAY,
    K.CANCEL_ACKED: To.STAY,
    K.OUTCOME_UNKNOWN: To.STAY,
    K.ACCEPTED: To.IGNORE,
    K.NOT_AT_BROKER: To.IGNORE,
    K.LIVE: To.PREV,
    K.GONE: S.CANCELED,
    K.EXPIRED: S.CANCELED,
}
"""A cancel or amend on its way. LIVE (reconciliation found the order open, and no call for
it is in flight) settles it back: the cancel or amend was lost, and a later one may go."""

_UNANSWERED: dict[Kind, Target] = {
    K.ACKED: To.OPEN,
    K.BROKER_REJECTED: S.REJECTED,
    K.ACCEPTED: S.ACCEPTED,
    K.FILLED: To.FILL,
    K.CANCELED: S.CANCELED,
    K.LINKED: To.STAY,
    K.LIVE: To.OPEN,
    K.GONE: S.CANCELED,
    K.EXPIRED: S.CANCELED,
    K.CANCEL_REQUESTED: To.STAY,
    K.RESTARTED: S.UNKNOWN,
}
"""Sent, no answer yet: fills and ends may overtake the answer (Kiwoom's 00 push may come
first). A cancel asked for now goes out once the number is known."""


def _rows(
    states: frozenset[OrderState] | OrderState, entries: Mapping[Kind, Target]
) -> dict[tuple[OrderState, Kind], Target]:
    each = states if isinstance(states, frozenset) else (states,)
    return {(state, kind): target for state in each for kind, target in entries.items()}


TABLE: Mapping[tuple[OrderState, Kind], Target] = {
    **_rows(
        S.NEW,
        {
            K.SENT: S.SUBMITTING,
            K.REFUSED: S.REJECTED,
            K.RESTARTED: S.UNKNOWN,
            K.CANCEL_REQUESTED: To.STAY,
        },
    ),
    **_rows(
        S.SUBMITTING,
        {
            **_UNANSWERED,
            K.NOT_SENT: S.REJECTED,
            K.OUTCOME_UNKNOWN: S.UNKNOWN,
            K.NOT_AT_BROKER: To.IGNORE,
        },
    ),
    **_rows(
        S.UNKNOWN,
        {
            **_UNANSWERED,
            K.OUTCOME_UNKNOWN: To.STAY,
            K.NOT_AT_BROKER: S.REJECTED,
            K.RESTARTED: To.STAY,
        },
    ),
    **_rows(S.ACCEPTED, {**_ANSWERED, K.BROKER_REJECTED: S.REJECTED}),
    # A 거부 cannot end an order that has filled in part.
    **_rows(S.PARTIALLY_FILLED, _ANSWERED),
    **_rows(
        S.PENDING_CANCEL,
        {
            **_PENDING,
            K.CANCEL_REQUESTED: To.IGNORE,
            K.CANCEL_REFUSED: To.PREV,
            K.REPLACED: To.STAY,
            K.REPLACE_REFUSED: To.IGNORE,
        },
    ),
    **_rows(
        S.PENDING_REPLACE,
        {
            **_PENDING,
            K.CANCEL_REQUESTED: S.PENDING_CANCEL,
            K.CANCEL_REFUSED: To.IGNORE,
            K.REPLACED: To.PREV,
            K.REPLACE_REFUSED: To.PREV,
        },
    ),
    **_rows(TERMINAL, _LATE),
}

TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = {
    S.NEW: frozenset({S.SUBMITTING, S.REJECTED, S.UNKNOWN}),
    S.SUBMITTING: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.UNKNOWN}
    ),
    S.UNKNOWN: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED}),
    S.ACCEPTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED, S.REJECTED}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED}
    ),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.ACCEPTED, S.REJECTED}),
    S.PENDING_REPLACE: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.PENDING_CANCEL, S.REJECTED}
    ),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
}
"""The state moves `TABLE` can make, written out: the published updates keep to these (the
tests check every update against it)."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asked for. `price` None is a market order; `venue` where it goes
    (KRX, NXT, or SOR: the broker's routing between the two)."""

    symbol: str
    side: Side
    qty: int
    price: int | None
    tif: TimeInForce = TimeInForce.DAY
    venue: Exchange = Exchange.KRX


@dataclass(slots=True, eq=False)
class Order:
    """One order as the engine tracks it. Strategies get this object back from buy/sell and
    read it; only the OMS changes it, through `order_events.apply`.

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
    venue: Exchange = Exchange.KRX
    """Where it was sent (KRX, NXT or SOR): cancels and amends go to the same venue."""
    order_no: str | None = None
    order_nos: list[str] = field(default_factory=list)
    filled_qty: int = 0
    fill_amount: int = 0
    """Sum of fill price x qty, KRW: the average fill price is this over `filled_qty`."""
    reason: str = ""
    """Why it was refused or ended, or why a cancel or amend was refused: a code
    (`OrderReason`, or risk's `Reason` for an order risk refused)."""
    created_ns: int = 0
    external: bool = False
    fill_nos: set[tuple[str, str]] = field(default_factory=set)
    """(broker order number, fill number) of every fill counted: a broker may number fills
    per order, so the number alone does not name a fill."""
    filled_by_no: dict[str, int] = field(default_factory=dict)
    """Shares filled under each broker number: reconciliation compares these with the
    broker's per-number figures, so a fill is never counted twice."""
    fees_by_no: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Fee and tax booked under each broker number: the broker's running totals (Kiwoom's
    00) less these are a new fill's own. An estimate booked for a fill the broker gave no
    figures for counts here too, so the next totals do not charge it again."""
    prev_state: OrderState = OrderState.NEW
    """The state before a pending cancel/amend, to return to if the broker refuses it."""
    detail: str = ""
    """The broker's own words (or the error) behind `reason`, for people; never parsed."""
    refusal: str = ""
    """The risk code that refused this order's last amend ("" when none was refused)."""
    cancel_wanted: bool = False
    """A cancel was asked for before the order had a number: it goes once the number comes."""

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
