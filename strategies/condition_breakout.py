"""ConditionBreakout: shows condition search (조건검색), a universe that changes at run time, and VI.

When a symbol enters (편입) one of its `conditions`, it subscribes to the symbol and, once the
base price and best quote are loaded (`on_subscribed`), buys `qty` with a limit at the best
ask, unless the symbol is under a volatility interruption (VI) or `max_symbols` are already
held or bought. A bid that has not filled within `order_ttl_s` is cancelled. A holding is sold
with a limit at the best bid when the last trade is `take_profit_ticks` ticks above its
average cost or `stop_loss_ticks` ticks below it, or when the symbol leaves (이탈) the
condition. Once flat and out of the condition, it unsubscribes.

Held positions survive a restart: the engine restores the run-time subscriptions, so exits
go on with prices flowing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.events import ConditionHit, Fill, OrderState, Side, Trade
from engine.strategy import Strategy
from engine.trading import krx
from engine.trading.orders import Order


class ConditionBreakout(Strategy):
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        for key in ("qty", "take_profit_ticks", "stop_loss_ticks", "max_symbols"):
            value = params.get(key, 1)
            if type(value) is not int or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        ttl = params.get("order_ttl_s", 5)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise ValueError(f"order_ttl_s must be a number > 0, got {ttl!r}")

    def on_start(self) -> None:
        self.on_params()
        self.members: set[str] = set()
        """Symbols in one of its conditions now."""
        self.bids: dict[str, Order] = {}
        self.exits: dict[str, Order] = {}
        # After a restart the subscriptions are back: holdings are still to be sold; a flat
        # symbol goes (it is subscribed again if it is still in the condition).
        for symbol in self.subscriptions():
            if self.position(symbol) > 0:
                self.log.info("holding_restored", symbol=symbol, qty=self.position(symbol))
            else:
                self.unsubscribe(symbol)

    def on_params(self) -> None:
        self.qty: int = self.params.get("qty", 1)
        self.tp_ticks: int = self.params.get("take_profit_ticks", 3)
        self.sl_ticks: int = self.params.get("stop_loss_ticks", 2)
        self.max_symbols: int = self.params.get("max_symbols", 3)
        self.ttl_s: float = float(self.params.get("order_ttl_s", 5))

    # --- the condition -----------------------------------------------------------------------

    def on_condition(self, hit: ConditionHit) -> None:
        symbol = hit.symbol
        if hit.entered:
            self.members.add(symbol)
            if symbol in self.subscriptions():
                self._try_buy(symbol)  # data already there
            elif self._busy() < self.max_symbols:
                self.subscribe(symbol, ("trades", "quotes"))
            return
        self.members.discard(symbol)
        bid = self.bids.pop(symbol, None)
        if bid is not None and bid.is_open:
            self.cancel(bid)
        if self.position(symbol) > 0:
            self._exit(symbol, "left")
        else:
            self._maybe_unsubscribe(symbol)

    def on_subscribed(self, symbol: str) -> None:
        if symbol in self.members:
            self._try_buy(symbol)

    def _busy(self) -> int:
        held = {s for s in self.subscriptions() if self.position(s) > 0}
        return len(held | self.bids.keys())

    def _try_buy(self, symbol: str) -> None:
        if symbol in self.bids or self.position(symbol) > 0 or self._busy() >= self.max_symbols:
            return
        if self.vi_active(symbol):
            self.log.info("skipped_under_vi", symbol=symbol)
            return
        quote = self.quote(symbol)
        if quote is None or quote.best_ask <= 0:
            return
        order = self.buy(symbol, self.qty, quote.best_ask)
        if order.is_open:
            self.bids[symbol] = order
            self.set_timer(f"expire:{symbol}", self.ttl_s, repeat=False)

    def on_timer(self, name: str) -> None:
        _, _, symbol = name.partition(":")
        bid = self.bids.get(symbol)
        if bid is not None and bid.is_open:
            self.cancel(bid)

    # --- exits -------------------------------------------------------------------------------

    def on_trade(self, trade: Trade) -> None:
        symbol = trade.symbol
        held = self.position(symbol)
        if held <= 0 or symbol in self.exits:
            return
        cost = self.avg_price(symbol)
        tick = krx.tick_size(cost)
        if trade.price >= cost + self.tp_ticks * tick:
            self._exit(symbol, "take_profit")
        elif trade.price <= cost - self.sl_ticks * tick:
            self._exit(symbol, "stop_loss")

    def _exit(self, symbol: str, why: str) -> None:
        if symbol in self.exits:
            return
        quote = self.quote(symbol)
        price = quote.best_bid if quote is not None and quote.best_bid > 0 else None
        if price is None:
            price = self.last_price(symbol)
        if price is None:
            return
        self.log.info("exit", symbol=symbol, why=why, price=price)
        self.exits[symbol] = self.sell(symbol, self.position(symbol), price)

    def on_order(self, order: Order) -> None:
        if order.is_open:
            return
        symbol = order.symbol
        if order.side is Side.BUY and self.bids.get(symbol) is order:
            del self.bids[symbol]
        elif order.side is Side.SELL and self.exits.get(symbol) is order:
            del self.exits[symbol]
            if order.state is not OrderState.FILLED and self.position(symbol) > 0:
                return  # the next trade tries again
        self._maybe_unsubscribe(symbol)

    def on_fill(self, fill: Fill) -> None:
        self.log.info(
            "filled", symbol=fill.symbol, side=fill.side.value, qty=fill.qty, price=fill.price
        )

    def _maybe_unsubscribe(self, symbol: str) -> None:
        if (
            symbol not in self.members
            and symbol not in self.bids
            and symbol not in self.exits
            and self.position(symbol) == 0
            and symbol in self.subscriptions()
        ):
            self.unsubscribe(symbol)
