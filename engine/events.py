"""Every realtime event the engine reacts to, in domain terms.

Frozen, slotted dataclasses; KRW and shares are ints, times of day are HHMMSS ints as the
exchange stamps them (e.g. 93005 = 09:30:05 KST). Nothing here knows a Kiwoom FID number:
engine/kiwoom/codec.py builds these from the wire.

Every event carries `ts_recv` and `seq`, left 0 by whoever builds it and stamped once by the
bus (engine/bus.py) as it enters; they take no part in equality, so the same trade decoded
twice compares equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
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


class SessionState(StrEnum):
    """The one session vocabulary of the engine: where a venue's trading day stands.

    KRX (KST): PRE_OPEN_AFTER_HOURS 08:30-08:40 (장전 시간외 종가), OPENING_AUCTION 08:40-09:00
    (동시호가), REGULAR 09:00-15:20, CLOSING_AUCTION 15:20-15:30, POST_CLOSE 15:40-16:00 (장후
    시간외 종가), AFTER_HOURS_SINGLE 16:00-18:00 (시간외 단일가), CLOSED otherwise (the
    15:30-15:40 pause included: no order is taken then). NXT: NXT_PRE (프리마켓), REGULAR
    (메인마켓), NXT_AFTER (에프터마켓), CLOSED. The feed's session notices (SessionChanged) and
    the calendar (engine/trading/krx.py) speak it alike.
    """

    PRE_OPEN_AFTER_HOURS = "pre_open_after_hours"
    OPENING_AUCTION = "opening_auction"
    REGULAR = "regular"
    CLOSING_AUCTION = "closing_auction"
    POST_CLOSE = "post_close"
    AFTER_HOURS_SINGLE = "after_hours_single"
    NXT_PRE = "nxt_pre"
    NXT_AFTER = "nxt_after"
    CLOSED = "closed"


MarketSession = SessionState
"""The old name, kept so existing imports keep working; new code says SessionState."""


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
    session: SessionState | None = None
    """The trade's 장구분 when the broker sent one (pre-open, regular or after-hours)."""
    ts_recv: int = field(default=0, compare=False)
    """Receive time, ns since the epoch on the engine's clock; stamped once by the bus."""
    seq: int = field(default=0, compare=False)
    """The bus's sequence number (1, 2, ...); 0 until the bus has seen the event."""

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
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


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
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


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
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


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
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RealtimeGeneric:
    """A realtime type the engine has no model for; values are the broker's, untouched."""

    type: str
    name: str
    item: str
    values: dict[str, Any] = field(hash=False)
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RealtimeEvent:
    """A realtime type the broker documents but the engine has no model for (program trading,
    sector indices, ...). `values` are keyed by the broker's field names as its catalogue
    spells them (e.g. "현재가"), the values as sent; `item` may be a sector or index code, not
    a 6-digit symbol."""

    type: str
    name: str
    item: str
    values: dict[str, str] = field(hash=False)
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ConditionHit:
    """A symbol entered (편입) or left (이탈) a realtime condition search.

    `condition_seq` is the condition's number as the broker lists it (spaces stripped),
    `condition` its name ("" when the list did not name it); `time` HHMMSS, 0 when the hit was
    made by the engine (the members of a search, or a change found after a reconnect)."""

    symbol: str
    condition_seq: str
    condition: str
    entered: bool
    time: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


class ViKind(StrEnum):
    """Which volatility interruption applies (VI적용구분)."""

    STATIC = "static"  # 정적: the price moved +-10 % (KOSPI 200: 3 %) from the reference
    DYNAMIC = "dynamic"  # 동적: a fast move from the last trade
    BOTH = "both"  # 동적+정적


@dataclass(frozen=True, slots=True)
class ViEvent:
    """A volatility interruption (VI) started (`active`) or ended for `symbol`.

    While active, KRX runs a single-price auction for the symbol (about 2 minutes) instead of
    continuous matching. `kind` is None when the broker's code was not one we know. Prices in
    KRW, 0 when absent: `trigger_price` the price that set it off, `static_ref`/`dynamic_ref`
    the reference prices. `time` HHMMSS of the notice, `release_time` HHMMSS when the
    interruption ends (0 when not given); `count` how many times today (0 when not given)."""

    symbol: str
    exchange: Exchange
    active: bool
    kind: ViKind | None
    trigger_price: int
    static_ref: int
    dynamic_ref: int
    time: int
    release_time: int
    count: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class SessionChanged:
    """The venue's session moved to `state` (the broker's market-operation notice).

    `time` HHMMSS as stamped; `remaining_s` the seconds until the market opens when the notice
    gave it (0 otherwise)."""

    exchange: Exchange
    state: SessionState
    time: int
    remaining_s: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class StockInfo:
    """A symbol's day parameters as the broker announces them (주식종목정보).

    `upper_limit`/`lower_limit`/`base_price` in KRW (0 when absent); `extension`,
    `pre_extension`, `post_extension` the 임의연장 flags (random end extension of an auction)
    and `info` the broker's 종목정보 text, as sent ("" when absent)."""

    symbol: str
    exchange: Exchange
    upper_limit: int
    lower_limit: int
    base_price: int
    extension: str
    pre_extension: str
    post_extension: str
    info: str
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


class DisconnectReason(StrEnum):
    """Why the realtime feed went down (`Disconnected.reason`, published on MQTT as is)."""

    STALE = "stale"
    """Silent past kiwoom.ws_stale_s and its grace: the engine dropped the connection."""
    CLOSED = "closed"
    """The server closed the connection (a close frame)."""
    LOST = "lost"
    """The connection broke (reset, no close frame)."""
    LOGIN_REFUSED = "login_refused"
    """Kiwoom refused the LOGIN (a token or app-key error, ...)."""
    CONNECT_FAILED = "connect_failed"
    """A new connection could not be opened or logged in (refused, timeout, handshake)."""
    ERROR = "error"
    """Anything else (a bug or a library surprise); the detail and the log say what."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The realtime feed is down; market state and order notices may have been missed.

    `reason` is a code a machine can act on; `detail` the human text (close code, error)."""

    reason: DisconnectReason
    attempt: int
    detail: str = ""
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The feed is back and every registration was restored; reconcile orders now.

    Comes before any event of the new connection."""

    attempt: int
    downtime_s: float
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


# --- the engine's own events -----------------------------------------------------------------


class OrderState(StrEnum):
    """The engine's view of one order's life (DESIGN.md "Order life"); the allowed moves are
    one table in engine/trading/orders.py."""

    NEW = "new"
    SUBMITTING = "submitting"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    """Sent, but nothing proves whether the broker took it; reconciliation settles it."""


class TimeInForce(StrEnum):
    DAY = "day"
    IOC = "ioc"
    FOK = "fok"


class TradingState(StrEnum):
    """ACTIVE trades; REDUCING only lets orders through that shrink a position; HALTED lets
    only cancels through (the kill switch, or a breach of the daily loss limit)."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order moved from `prev_state` to `state`: a snapshot, safe to queue and journal.

    `price` 0 is a market order. `strategy` is None for an external order (placed outside this
    engine and seen on the feed or at reconciliation).
    """

    client_id: str
    strategy: str | None
    symbol: str
    side: Side
    qty: int
    price: int
    state: OrderState
    prev_state: OrderState
    order_no: str | None
    filled_qty: int
    avg_fill_price: int
    reason: str = ""
    fill_amount: int = 0
    """Sum of fill price x qty, KRW: exact, where `avg_fill_price` is truncated."""
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Fill:
    """Shares changed hands for one of the account's orders. A fill is named by its trading
    day, `order_no` and `fill_no` together: a broker may number fills per order."""

    client_id: str | None
    strategy: str | None
    order_no: str
    fill_no: str
    symbol: str
    side: Side
    qty: int
    price: int
    fee: int
    tax: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RiskRejected:
    """A pre-trade check refused an order. `reason` is a code (MAX_NOTIONAL, PRICE_BAND, ...);
    `limit` and `value` are the numbers that tripped it (0 when the check has none)."""

    client_id: str
    strategy: str | None
    symbol: str
    side: Side
    qty: int
    price: int
    reason: str
    limit: int = 0
    value: int = 0
    detail: str = ""
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The trading state or its set of halt reasons changed. `reason` says what moved it;
    `reasons` are the halt kinds in force after it (engine/trading/risk.py `HaltReason`),
    empty unless HALTED."""

    state: TradingState
    prev_state: TradingState
    reason: str
    reasons: tuple[str, ...] = ()
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class StrategyDisabled:
    """The engine stopped calling a strategy: too many errors, or too slow too often."""

    strategy: str
    reason: str
    errors: int
    overruns: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Bar:
    """OHLCV over `interval` ("1m", "5m", "1d", ...) starting at `start` (KST)."""

    symbol: str
    interval: str
    start: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class PositionDivergence:
    """Our position differs from the broker's at reconciliation."""

    symbol: str
    ours: int
    broker: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Orders and positions were checked against the broker; new exposure may flow again."""

    orders_checked: int
    orders_changed: int
    divergences: int
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class FeedStale:
    """Nothing, not even a PING, arrived for `silent_s`: prices and order notices may be late.

    Followed by `FeedResumed` when frames flow again on the same connection, or, after a
    grace period, by `Disconnected` (reason "stale") and a reconnect."""

    silent_s: float
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class FeedResumed:
    """Frames arrive again after `FeedStale`, on the same connection: the registrations held;
    what the server sent meanwhile arrives late and in order."""

    silent_s: float
    ts_recv: int = field(default=0, compare=False)
    seq: int = field(default=0, compare=False)


MarketEvent = Trade | Quote | OrderBook
MarketStateEvent = ConditionHit | ViEvent | SessionChanged | StockInfo
"""Market state a strategy acts on (membership, VI, session, limits), rarer than prices."""
Event = (
    Trade
    | Quote
    | OrderBook
    | OrderExecution
    | Balance
    | RealtimeGeneric
    | RealtimeEvent
    | ConditionHit
    | ViEvent
    | SessionChanged
    | StockInfo
    | Disconnected
    | Reconnected
    | FeedStale
    | FeedResumed
    | OrderUpdate
    | Fill
    | RiskRejected
    | TradingStateChanged
    | StrategyDisabled
    | Bar
    | PositionDivergence
    | Reconciled
)
FeedStatus = Disconnected | Reconnected | FeedStale | FeedResumed
"""Events about the feed itself rather than the market or the account."""

ACCOUNT_EVENTS: tuple[type, ...] = (
    OrderExecution,
    Balance,
    OrderUpdate,
    Fill,
    RiskRejected,
    TradingStateChanged,
    StrategyDisabled,
    PositionDivergence,
    Reconciled,
    Disconnected,
    Reconnected,
    FeedStale,
    FeedResumed,
)
"""Events the bus dispatches ahead of waiting market data, and that no queue may drop."""


def maker(cls: type) -> Callable[..., Any]:
    """A constructor of the frozen, slotted dataclass `cls` taking every field positionally
    (`ts_recv` and `seq` included) that sets the slots through their descriptors, instead of
    the generated `__init__`'s `object.__setattr__` call per field: the same object (these
    classes have no `__post_init__`) in about half the time. For the paths that build an
    event per stored row or per order step (the store's reader, the OMS's updates, the
    backtest broker's notices); a test holds each such call equal to the keyword build.
    Generated as dataclasses generates `__init__`: only the field names enter the source."""
    names = [f.name for f in dataclasses.fields(cls)]
    assert all(n.isidentifier() for n in names), names
    assert not hasattr(cls, "__post_init__"), cls
    env: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for n in names:
        env[f"s_{n}"] = getattr(cls, n).__set__
    body = "".join(f" s_{n}(o, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n o = new(cls)\n{body} return o\n", env)
    make: Callable[..., Any] = env["make"]
    return make
