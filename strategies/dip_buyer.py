"""DipBuyer: shows bars, timers and cancels.

On each closed bar whose close sits below the average close of the last `window` bars, it
bids one tick under the close (a passive order). A timer cancels the bid if it has not filled
within `order_ttl_s`; a filled bid is sold `take_profit_ticks` ticks higher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.events import Bar, Fill, Side
from engine.strategy import Strategy
from engine.trading import krx


class DipBuyer(Strategy):
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        for key in ("window", "qty", "take_profit_ticks"):
            value = params.get(key, 1)
            if type(value) is not int or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        ttl = params.get("order_ttl_s", 10)
        if not isinstance(ttl, int | float) or ttl <= 0:
            raise ValueError(f"order_ttl_s must be a number > 0, got {ttl!r}")

    def on_start(self) -> None:
        self.on_params()
        self.interval = "1m"
        for symbol in self.symbols:
            self.log.info("history", symbol=symbol, bars=len(self.bars(symbol, self.interval)))

    def on_params(self) -> None:
        self.window: int = self.params.get("window", 10)
        self.qty: int = self.params.get("qty", 1)
        self.ttl_s: float = float(self.params.get("order_ttl_s", 10))
        self.tp_ticks: int = self.params.get("take_profit_ticks", 2)

    def on_bar(self, bar: Bar) -> None:
        if bar.interval != self.interval:
            return
        closes = [b.close for b in self.bars(bar.symbol, self.interval)[-self.window :]]
        if len(closes) < self.window or bar.close >= sum(closes) // len(closes):
            return
        if any(o.symbol == bar.symbol and o.side is Side.BUY for o in self.orders()):
            return
        price = krx.round_to_tick(bar.close - krx.tick_size(bar.close), "down")
        order = self.buy(bar.symbol, self.qty, price)
        self.set_timer(f"expire:{order.client_id}", self.ttl_s, repeat=False)

    def on_timer(self, name: str) -> None:
        _, _, client_id = name.partition(":")
        for order in self.orders():
            if order.client_id == client_id:
                self.log.info("bid_expired", client_id=client_id)
                self.cancel(order)

    def on_fill(self, fill: Fill) -> None:
        if fill.side is Side.BUY:
            price = fill.price
            for _ in range(self.tp_ticks):
                price += krx.tick_size(price)
            self.sell(fill.symbol, fill.qty, price)
