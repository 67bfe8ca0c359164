"""Domain records returned by the typed REST wrappers (engine/kiwoom/api.py).

Trading names only, no Kiwoom wire names. Money in KRW and quantities in shares are ints;
rates (percent) are floats. Frozen and slotted: safe to share between tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum

from engine.events import Exchange as Exchange
from engine.events import Side as Side


class OrderType(StrEnum):
    """Order types of domestic cash orders. Types in `PRICELESS_ORDER_TYPES` take no price."""

    LIMIT = "limit"
    MARKET = "market"
    CONDITIONAL_LIMIT = "conditional_limit"  # limit, converts to market at the close auction
    BEST_LIMIT = "best_limit"  # 최유리지정가: priced at the best opposite quote
    PRIORITY_LIMIT = "priority_limit"  # 최우선지정가: priced at the best same-side quote
    LIMIT_IOC = "limit_ioc"
    MARKET_IOC = "market_ioc"
    BEST_IOC = "best_ioc"
    LIMIT_FOK = "limit_fok"
    MARKET_FOK = "market_fok"
    BEST_FOK = "best_fok"
    STOP_LIMIT = "stop_limit"  # needs a stop price
    MID = "mid"
    MID_IOC = "mid_ioc"
    MID_FOK = "mid_fok"
    PRE_MARKET_CLOSE = "pre_market_close"  # 장시작전시간외 (previous close)
    AFTER_HOURS_CLOSE = "after_hours_close"  # 장마감후시간외 (today's close)
    AFTER_HOURS_SINGLE = "after_hours_single"  # 시간외단일가 (limit)


PRICELESS_ORDER_TYPES = frozenset(
    {
        OrderType.MARKET,
        OrderType.BEST_LIMIT,
        OrderType.PRIORITY_LIMIT,
        OrderType.MARKET_IOC,
        OrderType.BEST_IOC,
        OrderType.MARKET_FOK,
        OrderType.BEST_FOK,
        OrderType.MID,
        OrderType.MID_IOC,
        OrderType.MID_FOK,
        OrderType.PRE_MARKET_CLOSE,
        OrderType.AFTER_HOURS_CLOSE,
    }
)


@dataclass(frozen=True, slots=True)
class StockInfo:
    symbol: str
    name: str
    price: int
    change: int
    """Against the previous close, signed."""
    change_pct: float
    open: int
    high: int
    low: int
    upper_limit: int
    lower_limit: int
    base_price: int
    """The day's reference price (usually the previous close)."""
    volume: int
    listed_shares_k: int
    """Listed shares in thousands, as Kiwoom reports them."""
    market_cap_100m: int
    """Market capitalisation in 억원 (100 million KRW)."""


class ListedMarket(StrEnum):
    """The markets whose stock lists the engine reads (names beside codes)."""

    KOSPI = "KOSPI"
    KOSDAQ = "KOSDAQ"


@dataclass(frozen=True, slots=True)
class Listed:
    """One symbol of a market's stock list: its code and its Korean name."""

    symbol: str
    name: str
    market: ListedMarket


@dataclass(frozen=True, slots=True)
class Candle:
    """One bar. `at` is the bar time (KST; midnight for daily bars)."""

    at: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int
    turnover_m: int | None = None
    """Traded value in millions of KRW where Kiwoom gives it (daily bars)."""


@dataclass(frozen=True, slots=True)
class OrderAck:
    """Kiwoom took the order request; `order_no` is its number (new for amends/cancels)."""

    order_no: str
    exchange: Exchange | None
    original_order_no: str | None = None
    """The root order of an amend/cancel (Kiwoom's base_orig_ord_no)."""
    qty: int | None = None
    """The amended / cancelled quantity echoed back (0 = all remaining)."""
    message: str = ""


@dataclass(frozen=True, slots=True)
class CashBalance:
    deposit: int
    orderable: int
    withdrawable: int
    d1_deposit: int
    d2_deposit: int


@dataclass(frozen=True, slots=True)
class Holding:
    symbol: str
    name: str
    qty: int
    sellable_qty: int
    avg_price: int
    price: int
    purchase_amount: int
    eval_amount: int
    pnl: int
    pnl_pct: float


@dataclass(frozen=True, slots=True)
class AccountBalance:
    purchase_amount: int
    eval_amount: int
    pnl: int
    pnl_pct: float
    estimated_assets: int
    holdings: tuple[Holding, ...]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    order_no: str
    symbol: str
    name: str
    side: Side | None
    status: str
    """Kiwoom's order state text (접수, 체결, 확인, ...)."""
    qty: int
    price: int
    open_qty: int
    filled_qty: int
    fill_price: int
    original_order_no: str | None
    order_type: str
    """Kiwoom's order-type label (보통, 시장가, ...)."""
    time: time | None
    exchange: str


@dataclass(frozen=True, slots=True)
class Execution:
    order_no: str
    symbol: str
    name: str
    side: Side | None
    qty: int
    price: int
    filled_qty: int
    fill_price: int
    open_qty: int
    fee: int
    tax: int
    status: str
    original_order_no: str | None
    time: time | None
    exchange: str


class OrderAction(StrEnum):
    """What a row of the order history is: an order, or an amend or cancel of one."""

    NEW = "new"
    AMEND = "amend"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One row of the account's order/fill history (kt00007)."""

    order_no: str
    symbol: str
    name: str
    side: Side | None
    qty: int
    price: int
    confirmed_qty: int
    filled_qty: int
    fill_price: int
    remaining_qty: int
    original_order_no: str | None
    amend_cancel: str
    """Kiwoom's 정정/취소 label, empty for a plain order (for people: read `action`)."""
    time: time | None
    exchange: str
    order_date: date | None = None
    action: OrderAction = OrderAction.NEW
