"""The broker port: what the OMS and reconciliation need of a broker, in trading words.

Kiwoom's side implements it in engine/broker.py (its errors become `BrokerAnswer`s there);
a backtest's in-process broker implements the same. Nothing here knows a wire format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from engine.events import Exchange, Side, TimeInForce
from engine.models import AccountBalance, CashBalance, OpenOrder, OrderRecord


class Answer(StrEnum):
    """How an order call (place, cancel, amend) ended."""

    TAKEN = "taken"
    """The broker took it: `order_no` is the new number."""
    NOT_SENT = "not_sent"
    """Proven never to have reached the broker (`code` STALE: its deadline passed while
    paced)."""
    REFUSED = "refused"
    """The broker answered no (`code` its error code, `detail` its words)."""
    UNKNOWN = "unknown"
    """Sent, and no answer proves whether it was taken (`detail` says why)."""


@dataclass(frozen=True, slots=True)
class BrokerAnswer:
    kind: Answer
    order_no: str = ""
    code: str = ""
    detail: str = ""


class BrokerUnavailable(Exception):
    """The broker's books could not be read now; ask again later."""


class BrokerPort(Protocol):
    """Order calls return a `BrokerAnswer` and raise nothing but `asyncio.CancelledError`
    (the OMS takes a cancelled call as an unknown outcome). The books raise
    `BrokerUnavailable`."""

    async def place(
        self,
        symbol: str,
        side: Side,
        qty: int,
        price: int | None,
        tif: TimeInForce,
        *,
        deadline: float,
        venue: Exchange = Exchange.KRX,
    ) -> BrokerAnswer:
        """Place an order (`price` None: at market) on `venue` (KRX, NXT, or SOR: the
        broker's routing). Never sent after `deadline` (`Clock.monotonic()` seconds):
        NOT_SENT, code STALE."""
        ...

    async def cancel(
        self, order_no: str, symbol: str, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        """Cancel all that is open of the order `order_no` (placed on `venue`)."""
        ...

    async def amend(
        self, order_no: str, symbol: str, price: int, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        """Move all that is open of the order `order_no` (placed on `venue`) to `price`."""
        ...

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        """The orders and fills of `order_date` (None: today), in number order; with
        `from_order_no`, only those numbered from it on (itself included)."""
        ...

    async def open_orders(self) -> list[OpenOrder]: ...

    async def account_balance(self, venue: Exchange = Exchange.KRX) -> AccountBalance:
        """The holdings as `venue`'s view lists them (KRX or NXT)."""
        ...

    async def cash_balance(self) -> CashBalance: ...
