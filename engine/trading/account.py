"""The account rules an exchange applies to one customer, typed and pure: what an order
reserves (cash for a buy, shares for a sell), whether its price is on the KRX tick grid and
inside the day's ±30 % limits, and what a fill moves (fees and tax by
`engine.trading.fees.FeeRates`, the one rounding the portfolio and the simulator use).

The exchange core's account, shared by whoever plays the exchange: the simulator's exchange
(engine/sim/exchange.py, which adds the generated book and the 00/04 wire face) and the
backtest's in-process broker (engine/backtest/broker.py, which adds the fill model) each keep
one `Account`, ask it before taking, amending or filling an order, and keep each order's life
at the exchange (open, filled, fee and tax under its number) in an `OrderLife`. The rules are
engine/trading/krx.py's and engine/trading/fees.py's; nothing here is a second rule set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from engine.events import Side
from engine.trading.fees import FeeRates, Market
from engine.trading.krx import is_on_tick, price_limits

TICK = "TICK"
PRICE_LIMIT = "PRICE_LIMIT"
CASH = "CASH"
SHARES = "SHARES"
NO_PRICE = "NO_PRICE"

REFUSALS: dict[str, str] = {
    TICK: "price is not on the tick grid",
    PRICE_LIMIT: "price outside the day's price limits",
    CASH: "not enough orderable cash",
    SHARES: "not enough sellable shares",
    NO_PRICE: "no base price for the symbol yet",
}
"""Refusal codes the broker answers with, and their words."""


def price_refusal(price: int, base: int) -> str | None:
    """Why a limit price cannot be ordered today (`base` the previous close), or None."""
    return limit_refusal(price, *price_limits(base))


def limit_refusal(price: int, lower: int, upper: int) -> str | None:
    """Why a limit price cannot be ordered inside the day's (`lower`, `upper`) limits, or None."""
    if not is_on_tick(price):
        return TICK
    if not lower <= price <= upper:
        return PRICE_LIMIT
    return None


def buy_reservation(rates: FeeRates, price: int, qty: int) -> int:
    """Cash a buy holds while open: value plus its commission."""
    value = price * qty
    return value + rates.total(value, sell=False)


@dataclass(kw_only=True)
class OrderLife:
    """One order's life at the exchange under its number: what is still open, what filled
    and for how much, and the fee and tax charged so far (Kiwoom's 938/939 run per number)."""

    open_qty: int = 0
    filled_qty: int = 0
    filled_value: int = 0
    fee: int = 0
    tax: int = 0


@dataclass
class Account:
    """Cash and shares of one customer; reservations are keyed by order number."""

    cash: int
    rates: FeeRates
    shares: dict[str, int] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)
    cash_held: dict[str, int] = field(default_factory=dict)
    shares_held: dict[str, tuple[str, int]] = field(default_factory=dict)
    markets: Mapping[str, Market] = field(default_factory=dict)
    """Each symbol's market for the sell-tax table (KOSPI when not named)."""
    day: date | None = None
    """The trading day fills are booked on (the sell-tax table's key); the owner sets it."""

    def rates_for(self, symbol: str) -> FeeRates:
        """The fee rates a fill of `symbol` pays today (`FeeRates.on`)."""
        return self.rates.on(self.day, self.markets.get(symbol, Market.KOSPI))

    def orderable_cash(self) -> int:
        return self.cash - sum(self.cash_held.values())

    def sellable(self, symbol: str) -> int:
        held = sum(q for s, q in self.shares_held.values() if s == symbol)
        return self.shares.get(symbol, 0) - held

    def refusal(self, side: Side, symbol: str, qty: int, reserve_price: int) -> str | None:
        """Why an order cannot be taken for lack of cash or shares, or None."""
        if side is Side.BUY:
            if buy_reservation(self.rates, reserve_price, qty) > self.orderable_cash():
                return CASH
        elif qty > self.sellable(symbol):
            return SHARES
        return None

    def amend_refusal(
        self, order_no: str, side: Side, keep_qty: int, keep_price: int, move_qty: int, price: int
    ) -> str | None:
        """Why `move_qty` of open order `order_no` cannot move to `price` (keeping `keep_qty`
        open at its reserve price `keep_price`) for lack of cash, or None. A sell moves shares
        it already holds; a buy needs the difference its new reservation makes."""
        if side is not Side.BUY:
            return None
        need = (
            buy_reservation(self.rates, price, move_qty)
            + buy_reservation(self.rates, keep_price, keep_qty)
            - self.cash_held.get(order_no, 0)
        )
        return CASH if need > self.orderable_cash() else None

    def hold(self, order_no: str, side: Side, symbol: str, qty: int, reserve_price: int) -> None:
        if side is Side.BUY:
            self.cash_held[order_no] = buy_reservation(self.rates, reserve_price, qty)
        else:
            self.shares_held[order_no] = (symbol, qty)

    def rehold(self, order_no: str, side: Side, symbol: str, open_qty: int, price: int) -> None:
        """The reservation of what is still open (after a fill or an amend)."""
        self.release(order_no)
        if open_qty > 0:
            self.hold(order_no, side, symbol, open_qty, price)

    def release(self, order_no: str) -> None:
        self.cash_held.pop(order_no, None)
        self.shares_held.pop(order_no, None)

    def execute(
        self,
        order_no: str,
        life: OrderLife,
        side: Side,
        symbol: str,
        qty: int,
        price: int,
        reserve_price: int,
    ) -> tuple[int, int]:
        """One fill of an open order: books it (`settle`), moves the order's life on, and
        holds for what stays open at `reserve_price`. Returns the fill's (commission, tax)."""
        fee, tax = self.settle(side, symbol, qty, price)
        life.open_qty -= qty
        life.filled_qty += qty
        life.filled_value += qty * price
        life.fee += fee
        life.tax += tax
        self.rehold(order_no, side, symbol, life.open_qty, reserve_price)
        return fee, tax

    def settle(self, side: Side, symbol: str, qty: int, price: int) -> tuple[int, int]:
        """Book one fill; returns its (commission, tax)."""
        value = price * qty
        fee, tax = self.rates_for(symbol).charge(value, sell=side is Side.SELL)
        held = self.shares.get(symbol, 0)
        if side is Side.BUY:
            self.cash -= value + fee
            self.shares[symbol] = held + qty
            self.cost[symbol] = self.cost.get(symbol, 0) + value
        else:
            self.cash += value - fee - tax
            cost = self.cost.get(symbol, 0)
            self.cost[symbol] = cost - (cost if qty == held else cost * qty // held)
            self.shares[symbol] = held - qty
        return fee, tax
