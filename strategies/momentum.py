"""Momentum: buy when the last trade is above its recent average, sell when below.

Shipped enabled in config.toml so that `make run` trades within seconds against the simulator.
It prices orders at the best opposite quote (a marketable limit), keeps at most one open
order and `max_position` shares per symbol, cancels an order the market moved away from, and
waits `cooldown_s` after an order before the next in that symbol (an order filled at once
would otherwise be followed by the same order a moment later: risk refuses that as DUPLICATE).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from engine.events import Trade
from engine.strategy import Strategy
from engine.trading.orders import Order


class Momentum(Strategy):
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        for key in ("window", "qty", "max_position", "every"):
            value = params.get(key, 1)
            if type(value) is not int or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        cooldown = params.get("cooldown_s", 2.0)
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or cooldown < 0:
            raise ValueError(f"cooldown_s must be a number >= 0, got {cooldown!r}")
        unknown = set(params) - {"window", "qty", "max_position", "every", "cooldown_s"}
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")

    def on_start(self) -> None:
        self.prices: dict[str, deque[int]] = {s: deque() for s in self.symbols}
        self.seen: dict[str, int] = dict.fromkeys(self.symbols, 0)
        self.sent_at: dict[str, float] = {}
        self.on_params()
        self.log.info("momentum_started", window=self.window, qty=self.qty)

    def on_params(self) -> None:
        # Also after a SIGHUP: a new window keeps the newest prices that fit in it.
        self.window: int = self.params.get("window", 20)
        self.qty: int = self.params.get("qty", 1)
        self.max_position: int = self.params.get("max_position", 10)
        self.every: int = self.params.get("every", 5)
        self.cooldown_s = float(self.params.get("cooldown_s", 2.0))
        self.prices = {s: deque(p, maxlen=self.window) for s, p in self.prices.items()}

    def on_trade(self, trade: Trade) -> None:
        prices = self.prices[trade.symbol]
        prices.append(trade.price)
        self.seen[trade.symbol] += 1
        if len(prices) < self.window or self.seen[trade.symbol] % self.every:
            return
        mine = [o for o in self.orders() if o.symbol == trade.symbol]
        if mine:
            # One order at a time per symbol: one that the market left behind is cancelled,
            # and the next decision places a fresh one.
            for order in mine:
                self.cancel(order)
            return
        now = self.clock.monotonic()
        if now - self.sent_at.get(trade.symbol, float("-inf")) < self.cooldown_s:
            return
        mean = sum(prices) // len(prices)
        held = self.position(trade.symbol)
        if trade.price > mean and held + self.qty <= self.max_position:
            self.buy(trade.symbol, self.qty, trade.best_ask or trade.price)
        elif trade.price < mean and held >= self.qty:
            self.sell(trade.symbol, self.qty, trade.best_bid or trade.price)
        else:
            return
        self.sent_at[trade.symbol] = now

    def on_order(self, order: Order) -> None:
        if order.state.value in ("rejected", "unknown"):
            self.log.info("order_not_placed", client_id=order.client_id, reason=order.reason)
