"""Strategies the backtest tests run (loaded by path from a config, as a user's would be)."""

from __future__ import annotations

from engine.events import Bar, Fill, Trade
from engine.strategy import Strategy
from engine.trading.krx import round_to_tick


class Alternate(Strategy):
    """On every `every`-th bar close: buy `qty` at market when flat, else sell what it holds.
    Its decisions do not depend on prices, so a test can tell which bar each order met."""

    def on_start(self) -> None:
        self.seen = 0
        self.placed: list[tuple[str, str, int]] = []  # (symbol, bar start, side)

    def on_bar(self, bar: Bar) -> None:
        self.seen += 1
        if self.seen % self.params.get("every", 1):
            return
        if any(o.symbol == bar.symbol for o in self.orders()):
            return
        held = self.position(bar.symbol)
        if held:
            self.sell(bar.symbol, held)
        else:
            self.buy(bar.symbol, self.params.get("qty", 1))

    def on_fill(self, fill: Fill) -> None:
        self.log.info("filled", qty=fill.qty, price=fill.price)


class Resting(Strategy):
    """Places one limit buy at `price` on its first bar and leaves it resting."""

    def on_bar(self, bar: Bar) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            self.buy(bar.symbol, self.params["qty"], self.params["price"])


class Ticker(Strategy):
    """A timer every `period` s records (now, last trade price seen) to show the time ties."""

    def on_start(self) -> None:
        self.seen: list[tuple[str, int | None]] = []
        self.set_timer("t", self.params["period"])

    def on_timer(self, name: str) -> None:
        self.seen.append((self.clock_now(), self.last_price(self.symbols[0])))

    def clock_now(self) -> str:
        return self._slot.clock.now().strftime("%H:%M:%S")


class BarLog(Strategy):
    """Records (clock time, bar start, close) of every bar it sees."""

    def on_start(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def on_bar(self, bar: Bar) -> None:
        now = self._slot.clock.now().strftime("%H:%M:%S")
        self.seen.append((now, bar.start.strftime("%H:%M"), bar.close))


class Warm(Strategy):
    """Records the warm-up bars it starts with; then sleeps past its budget on every bar."""

    def on_start(self) -> None:
        sym = self.symbols[0]
        self.warm = [(b.start.strftime("%m-%d %H:%M"), b.close) for b in self.bars(sym, "1m")]
        self.seen = 0

    def on_bar(self, bar: Bar) -> None:
        import time

        self.seen += 1
        time.sleep(0.002)  # past a 0.1 ms budget, every time


class TimerBuy(Strategy):
    """Buys `qty` at market from a one-shot timer `after` seconds past 09:00."""

    def on_start(self) -> None:
        now = self._slot.clock.now()
        nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
        self.set_timer("buy", (nine - now).total_seconds() + self.params["after"], repeat=False)

    def on_timer(self, name: str) -> None:
        self.buy(self.symbols[0], self.params["qty"])


class Parity(Strategy):
    """Decides on each trade's own content only (never on fills, order states or how many
    trades it saw), so live and backtest place the same orders for the same trades: a limit
    buy 3 % below a trade whose size is a multiple of 7, and a cancel of everything open on
    a size that is 3 more than one."""

    def on_trade(self, trade: Trade) -> None:
        size = abs(trade.qty)
        if size % 7 == 0:
            self.buy(trade.symbol, 1, round_to_tick(trade.price * 97 // 100, "up"))
        elif size % 7 == 3:
            for order in self.orders():
                self.cancel(order)


class FillParity(Strategy):
    """Round trips of one share at market whose decisions depend on its own fills: on a
    trade whose size is a multiple of 3 it buys when flat, on one of size 3n + 2 it sells
    what it holds, each only with nothing open in the symbol (so a fill that came, or did
    not come yet, changes what it does next). A size 3n + 1 trade does nothing, so its own
    fills printed back as trades (size 1) never trigger a decision. It keeps each order with
    the trade that triggered it (symbol, cumulative volume, price, size) and each fill with
    its order's trigger, and writes them to `params["log"]` (JSON lines) when it stops."""

    def on_start(self) -> None:
        self.rows: list[dict[str, object]] = []
        self.trigger: dict[str, list[object]] = {}

    def _ns(self) -> int:
        return int(self._slot.clock.now().timestamp() * 1e9)

    def on_trade(self, trade: Trade) -> None:
        size = abs(trade.qty)
        kind = size % 3
        if kind == 1 or any(o.symbol == trade.symbol for o in self.orders()):
            return
        held = self.position(trade.symbol)
        if kind == 0 and held == 0:
            order = self.buy(trade.symbol, 1)
        elif kind == 2 and held > 0:
            order = self.sell(trade.symbol, held)
        else:
            return
        key: list[object] = [trade.symbol, trade.cum_volume, trade.price, size]
        self.trigger[order.client_id] = key
        self.rows.append(
            {"ev": "order", "trigger": key, "side": order.side.value, "qty": order.qty,
             "ns": self._ns(), "recv": trade.ts_recv}
        )  # fmt: skip

    def on_fill(self, fill: Fill) -> None:
        self.rows.append(
            {"ev": "fill", "trigger": self.trigger.get(fill.client_id or ""),
             "side": fill.side.value, "qty": fill.qty, "price": fill.price, "ns": self._ns()}
        )  # fmt: skip

    def on_stop(self) -> None:
        import json

        with open(self.params["log"], "w", encoding="utf-8") as f:
            for row in self.rows:
                f.write(json.dumps(row) + "\n")
