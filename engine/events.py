"""Every realtime event the engine reacts to, in domain terms.

Frozen, slotted dataclasses; KRW and shares are ints, times of day are HHMMSS ints as the
exchange stamps them (e.g. 93005 = 09:30:05 KST). Nothing here knows a Kiwoom FID number:
engine/kiwoom/codec.py builds these from the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Exchange(StrEnum):
    """Where a price or an order lives. SOR is Kiwoom's combined (통합, `_AL`) view/routing."""

    KRX = "KRX"
    NXT = "NXT"
    SOR = "SOR"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    """The broker-side state carried by an order notice (접수/체결/확인/취소/거부)."""

    ACCEPTED = "accepted"  # 접수
    FILLED = "filled"  # 체결 (partial or complete; see unfilled_qty)
    CONFIRMED = "confirmed"  # 확인: an amend or cancel was confirmed
    CANCELED = "canceled"  # 취소
    REJECTED = "rejected"  # 거부


class OrderKind(StrEnum):
    """What the order that produced a notice asked for (주문구분 without its side)."""

    NEW = "new"
    AMEND = "amend"  # 정정
    CANCEL = "cancel"  # 취소


class MarketSession(StrEnum):
    PRE = "pre"  # 장전 시간외
    REGULAR = "regular"  # 장중
    POST = "post"  # 장후 시간외


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade print. `qty` > 0 buyer-initiated, < 0 seller-initiated, 0 unknown.

    `change` is signed against the previous close; `best_ask`/`best_bid` are 0 when absent.
    """

    symbol: str
    exchange: Exchange
    time: int
    price: int
    qty: int
    cum_volume: int
    change: int
    best_ask: int
    best_bid: int
    open: int
    high: int
    low: int
    session: MarketSession | None = None

    @property
    def aggressor(self) -> Side | None:
        """The side that crossed the spread, or None when the sign was missing."""
        if self.qty > 0:
            return Side.BUY
        if self.qty < 0:
            return Side.SELL
        return None


@dataclass(frozen=True, slots=True)
class Quote:
    """Best ask and bid (0 when a side is empty)."""

    symbol: str
    exchange: Exchange
    best_ask: int
    best_bid: int


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Ten (price, qty) levels each side, best first. Empty levels are (0, 0)."""

    symbol: str
    exchange: Exchange
    time: int
    asks: tuple[tuple[int, int], ...]
    bids: tuple[tuple[int, int], ...]
    total_ask_qty: int
    total_bid_qty: int


@dataclass(frozen=True, slots=True)
class OrderExecution:
    """A notice about one of the account's orders: accepted, filled, confirmed, ... .

    `fill_price`/`fill_qty` are the broker's 체결가/체결량 as sent (0 when nothing filled);
    `unit_fill_price`/`unit_fill_qty` the 단위체결가/단위체결량 of this notice.
    """

    account: str
    order_no: str
    orig_order_no: str | None
    symbol: str
    name: str
    side: Side
    kind: OrderKind
    status: OrderStatus
    order_type: str
    order_qty: int
    order_price: int
    unfilled_qty: int
    cum_fill_amount: int
    fill_no: str | None
    fill_price: int
    fill_qty: int
    unit_fill_price: int
    unit_fill_qty: int
    fee: int
    tax: int
    reject_reason: str
    exchange: Exchange | None
    sor: bool
    time: int


@dataclass(frozen=True, slots=True)
class Balance:
    """A position changed. Money in KRW, quantities in shares, rates in percent."""

    account: str
    symbol: str
    name: str
    qty: int
    avg_price: int
    total_cost: int
    orderable_qty: int
    today_net_buy_qty: int
    price: int
    best_ask: int
    best_bid: int
    base_price: int
    today_sell_pnl: int
    today_realized_pnl: int
    today_realized_pnl_rate: float
    today_credit_realized_pnl: int
    today_credit_realized_pnl_rate: float
    realized_pnl_rate: float
    credit_amount: int
    credit_interest: int
    collateral_loan_qty: int
    credit_kind: str
    loan_date: str
    maturity_date: str
    side_kind: str


@dataclass(frozen=True, slots=True)
class RealtimeGeneric:
    """A realtime type the engine has no model for; values are the broker's, untouched."""

    type: str
    name: str
    item: str
    values: dict[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The realtime feed is down; market state and order notices may have been missed."""

    reason: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The feed is back and every registration was restored; reconcile orders now.

    Comes before any event of the new connection."""

    attempt: int
    downtime_s: float


@dataclass(frozen=True, slots=True)
class FeedStale:
    """Nothing, not even a PING, arrived for `silent_s`: prices and order notices may be late.

    Followed by `FeedResumed` when frames flow again on the same connection, or, after a
    grace period, by `Disconnected` (reason "stale") and a reconnect."""

    silent_s: float


@dataclass(frozen=True, slots=True)
class FeedResumed:
    """Frames arrive again after `FeedStale`, on the same connection: the registrations held;
    what the server sent meanwhile arrives late and in order."""

    silent_s: float


MarketEvent = Trade | Quote | OrderBook
Event = (
    Trade
    | Quote
    | OrderBook
    | OrderExecution
    | Balance
    | RealtimeGeneric
    | Disconnected
    | Reconnected
    | FeedStale
    | FeedResumed
)
FeedStatus = Disconnected | Reconnected | FeedStale | FeedResumed
"""Events about the feed itself rather than the market or the account."""
