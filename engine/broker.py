"""Kiwoom behind the broker port (engine/trading/broker.py).

Owns the one table that turns the Kiwoom client's errors into answers of an order call, and
the mapping of a time in force to Kiwoom's order types. It sits outside both engine/kiwoom/
(which knows nothing of trading) and engine/trading/ (which knows nothing of Kiwoom).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from engine.events import Exchange, Side, TimeInForce
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import BrokerError, KiwoomError, OrderExpiredError, OutcomeUnknownError
from engine.models import AccountBalance, CashBalance, OpenOrder, OrderAck, OrderRecord, OrderType
from engine.trading.broker import Answer, BrokerAnswer, BrokerUnavailable

T = TypeVar("T")

_ORDER_TYPES = {
    (False, TimeInForce.DAY): OrderType.LIMIT,
    (False, TimeInForce.IOC): OrderType.LIMIT_IOC,
    (False, TimeInForce.FOK): OrderType.LIMIT_FOK,
    (True, TimeInForce.DAY): OrderType.MARKET,
    (True, TimeInForce.IOC): OrderType.MARKET_IOC,
    (True, TimeInForce.FOK): OrderType.MARKET_FOK,
}


def _unknown(e: KiwoomError) -> BrokerAnswer:
    assert isinstance(e, OutcomeUnknownError)
    return BrokerAnswer(Answer.UNKNOWN, detail=e.reason)


def _expired(e: KiwoomError) -> BrokerAnswer:
    assert isinstance(e, OrderExpiredError)
    return BrokerAnswer(Answer.NOT_SENT, code=e.reason, detail=str(e))


def _refused(e: KiwoomError) -> BrokerAnswer:
    assert isinstance(e, BrokerError)
    return BrokerAnswer(Answer.REFUSED, code=str(e.code or e.return_code), detail=e.return_msg)


def _not_sent(e: KiwoomError) -> BrokerAnswer:
    # Everything else the client raises proves the call was not sent (validation, a refused
    # connection): transport failures that might have reached Kiwoom are OutcomeUnknownError.
    return BrokerAnswer(Answer.NOT_SENT, detail=f"{type(e).__name__}: {e}")


OUTCOMES: tuple[tuple[type[KiwoomError], Callable[[KiwoomError], BrokerAnswer]], ...] = (
    (OutcomeUnknownError, _unknown),
    (OrderExpiredError, _expired),
    (BrokerError, _refused),
    (KiwoomError, _not_sent),
)
"""The first row whose class the error is decides the answer (OutcomeUnknownError is a
TransportError, so it comes first)."""


def answer_for(e: KiwoomError) -> BrokerAnswer:
    for cls, answer in OUTCOMES:
        if isinstance(e, cls):
            return answer(e)
    raise AssertionError("KiwoomError is the last row")  # pragma: no cover


class BooksUnavailable(BrokerUnavailable, KiwoomError):
    """Kiwoom's books could not be read: a port error, and still a KiwoomError for the
    start-up path that reports Kiwoom failures."""


class KiwoomBroker:
    """The broker port on a KiwoomApi."""

    def __init__(self, api: KiwoomApi) -> None:
        self.api = api

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
        send = self.api.buy if side is Side.BUY else self.api.sell
        order_type = _ORDER_TYPES[(price is None, tif)]
        try:
            # Unshielded: the OMS's task is the POST's own, nobody cancels it but the
            # shutdown, and a cancelled call is an unknown outcome there.
            ack = await send(
                symbol, qty, order_type, price, exchange=venue, deadline=deadline, shield=False
            )
        except KiwoomError as e:
            return answer_for(e)
        return BrokerAnswer(Answer.TAKEN, order_no=ack.order_no)

    async def cancel(
        self, order_no: str, symbol: str, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        return await self._order(lambda: self.api.cancel(order_no, symbol, 0, exchange=venue))

    async def amend(
        self, order_no: str, symbol: str, price: int, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        # 0: all that is open when the amend arrives, should a fill have come meanwhile.
        return await self._order(
            lambda: self.api.modify(order_no, symbol, 0, price, exchange=venue)
        )

    @staticmethod
    async def _order(call: Callable[[], Awaitable[OrderAck]]) -> BrokerAnswer:
        try:
            ack = await call()
        except KiwoomError as e:
            return answer_for(e)
        return BrokerAnswer(Answer.TAKEN, order_no=ack.order_no)

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        return await self._books(
            lambda: self.api.order_history(order_date, from_order_no=from_order_no)
        )

    async def open_orders(self) -> list[OpenOrder]:
        return await self._books(self.api.open_orders)

    async def account_balance(self, venue: Exchange = Exchange.KRX) -> AccountBalance:
        return await self._books(lambda: self.api.account_balance(venue))

    async def cash_balance(self) -> CashBalance:
        return await self._books(self.api.cash_balance)

    @staticmethod
    async def _books(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except BooksUnavailable:
            raise
        except KiwoomError as e:
            raise BooksUnavailable(str(e)) from e
