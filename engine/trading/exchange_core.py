"""The exchange core: what happens to one customer's order at the exchange, typed and shared
by whoever plays the exchange. The simulator's exchange (engine/sim/exchange.py: the generated
book, the 00/04 wire face) and the backtest's in-process broker (engine/backtest/broker.py:
the fill model, the broker port) both decide through these functions; each keeps only its
liquidity model and the way it tells what happened (wire pushes or order notices).

The account under it (cash, holdings, reservations, fees and tax, tick and ±30 % rules, each
order's `OrderLife`) is engine/trading/account.py's `Account`.

| step                  | rule                                                                 |
|-----------------------|----------------------------------------------------------------------|
| an order arrives      | `order_refusal`: a limit price on the tick grid and inside the day's  |
|                       | limits, then cash (a buy: value plus commission at its reserve price, |
|                       | a market buy at the upper limit) or sellable shares; then `take_order`|
|                       | holds that reservation                                                |
| it meets liquidity    | `arrival_fills`: a FOK order takes only when the liquidity can fill   |
|                       | all of it now, else nothing; any other order takes what it can        |
| what is left          | `after_arrival`: an IOC or FOK order's remainder ends at once         |
|                       | (`expire`); a DAY order's rests                                       |
| a cancel or amend     | `target_refusal`: the target exists, is the same symbol, has something|
|                       | open, and the quantity is not more than that; an amend's price passes |
|                       | the same price rules and the cash the move needs (`amend_refusal`)    |
| a cancel              | `cancel`: the cancelled quantity leaves the order, its reservation    |
|                       | shrinks to what stays open                                            |
| an amend              | `amend`: the moved quantity is held under the new number at the new   |
|                       | price, the original keeps (and holds for) what was not moved          |
| a fill                | `Account.execute`                                                     |
| numbering             | `OrderNumbers`: "0000001" on, one per order, amend and cancel; again  |
|                       | from 1 each trading day                                               |
| the day's close       | `expire` every open order (KRX ends them)                             |

Liquidity is pluggable (`Liquidity`): the simulator's generated book, or the backtest's
quote-at-arrival model. Matching of what rests stays each model's own (the simulator takes
from its book on every market tick; the backtest matches recorded prints,
engine/backtest/fills.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from engine.events import Side, TimeInForce
from engine.trading import account as acct
from engine.trading.account import Account, OrderLife

L = TypeVar("L", bound=OrderLife)

NO_ORDER = "NO_ORDER"
SYMBOL_MISMATCH = "SYMBOL_MISMATCH"
NOTHING_OPEN = "NOTHING_OPEN"
QTY_EXCEEDS = "QTY_EXCEEDS"

TARGET_REFUSALS: dict[str, str] = {
    NO_ORDER: "no such order",
    SYMBOL_MISMATCH: "the order is for another symbol",
    NOTHING_OPEN: "nothing open",
    QTY_EXCEEDS: "more than is open",
}
"""Why a cancel or amend cannot reach its order, and the words."""


@dataclass
class OrderNumbers:
    """An exchange's order numbers for one trading day, as Kiwoom issues them: 7 digits from
    "0000001", one per new order, amend and cancel."""

    issued: int = 0

    def next(self) -> str:
        self.issued += 1
        return f"{self.issued:07d}"

    def restart(self) -> None:
        """A new trading day: numbering starts again."""
        self.issued = 0


class Liquidity(Protocol):
    """What an arriving order can take now. `limit` None: a market order (any price)."""

    def fillable(self, symbol: str, side: Side, qty: int, limit: int | None) -> int:
        """How much of `qty` `take` would fill now; changes nothing."""
        ...

    def take(self, symbol: str, side: Side, qty: int, limit: int | None) -> list[tuple[int, int]]:
        """Trade up to `qty`, never past `limit`; the (price, qty) fills, best first."""
        ...


def reserve_price(limit: int | None, upper: int) -> int:
    """What an order reserves at: its limit, a market order the day's upper limit."""
    return upper if limit is None else limit


def order_refusal(
    account: Account,
    side: Side,
    symbol: str,
    qty: int,
    limit: int | None,
    lower: int,
    upper: int,
) -> str | None:
    """Why a new order cannot be taken (an engine.trading.account code: TICK, PRICE_LIMIT,
    CASH, SHARES), or None. The price rules come first, then what it would reserve."""
    if limit is not None:
        why = acct.limit_refusal(limit, lower, upper)
        if why is not None:
            return why
    return account.refusal(side, symbol, qty, reserve_price(limit, upper))


def take_order(
    account: Account,
    order_no: str,
    life: OrderLife,
    side: Side,
    symbol: str,
    qty: int,
    reserve: int,
) -> None:
    """A taken order opens with all of `qty` and holds its reservation."""
    life.open_qty = qty
    account.hold(order_no, side, symbol, qty, reserve)


def arrival_fills(
    liquidity: Liquidity, symbol: str, side: Side, qty: int, limit: int | None, tif: TimeInForce
) -> list[tuple[int, int]]:
    """What an arriving order of `qty` takes: a FOK order all or nothing (what the liquidity
    can fill now decides), any other what it can."""
    if tif is TimeInForce.FOK and liquidity.fillable(symbol, side, qty, limit) != qty:
        return []
    return liquidity.take(symbol, side, qty, limit)


def ends_unfilled(tif: TimeInForce) -> bool:
    """Whether what an order leaves unfilled at arrival ends there (IOC, FOK) or rests."""
    return tif is not TimeInForce.DAY


class AfterArrival(StrEnum):
    """What becomes of an order once it met the liquidity at arrival."""

    DONE = "done"
    """Filled whole."""
    ENDS = "ends"
    """An IOC/FOK remainder: `expire` it."""
    RESTS = "rests"
    """A DAY order's remainder waits for liquidity."""


def after_arrival(open_qty: int, tif: TimeInForce) -> AfterArrival:
    """What becomes of an order with `open_qty` left after its arrival fills."""
    if open_qty <= 0:
        return AfterArrival.DONE
    return AfterArrival.ENDS if ends_unfilled(tif) else AfterArrival.RESTS


def target_refusal(
    life: OrderLife | None, same_symbol: bool, qty: int, *, cancelled: bool = False
) -> str | None:
    """Why a cancel or amend of `qty` (0: all that is open) cannot reach its target order
    (`life` None: unknown; `cancelled`: the target is itself a cancel), or None."""
    if life is None or cancelled:
        return NO_ORDER
    if not same_symbol:
        return SYMBOL_MISMATCH
    if life.open_qty <= 0:
        return NOTHING_OPEN
    if qty < 0 or qty > life.open_qty:
        return QTY_EXCEEDS
    return None


def amend_refusal(
    account: Account,
    order_no: str,
    side: Side,
    keep_qty: int,
    keep_price: int,
    move_qty: int,
    price: int,
    lower: int,
    upper: int,
) -> str | None:
    """Why `move_qty` of open order `order_no` cannot move to `price` (keeping `keep_qty`
    open at `keep_price`): the price rules, then the cash (`Account.amend_refusal`)."""
    return acct.limit_refusal(price, lower, upper) or account.amend_refusal(
        order_no, side, keep_qty, keep_price, move_qty, price
    )


def cancel(
    account: Account,
    order_no: str,
    life: OrderLife,
    side: Side,
    symbol: str,
    qty: int,
    reserve: int,
) -> None:
    """Cancel `qty` of an open order; it keeps holding (at `reserve`) what stays open."""
    life.open_qty -= qty
    account.rehold(order_no, side, symbol, life.open_qty, reserve)


def amend(
    account: Account,
    side: Side,
    symbol: str,
    orig_no: str,
    keep_qty: int,
    keep_price: int,
    new_no: str,
    move_qty: int,
    price: int,
) -> None:
    """Move `move_qty` of open order `orig_no` to `price` under `new_no`: the original holds
    for the `keep_qty` it keeps (at `keep_price`; 0 releases it), the new number for what
    moved. The caller's `OrderLife`s carry the same quantities."""
    account.rehold(orig_no, side, symbol, keep_qty, keep_price)
    account.hold(new_no, side, symbol, move_qty, price)


def expire(account: Account, order_no: str, life: OrderLife) -> None:
    """End what is open of an order (an IOC/FOK remainder, a cancel of all, the day's close)
    and release its reservation."""
    life.open_qty = 0
    account.release(order_no)


def open_at_close(orders: Iterable[L]) -> list[L]:
    """The orders the day's close ends (each with something open; `expire` them), in the
    given order."""
    return [o for o in orders if o.open_qty > 0]
