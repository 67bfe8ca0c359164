"""The soak's strategies (bench/soak.py): a mix that keeps every part of the engine busy.

Beside several copies of the shipped Momentum (strategies/momentum.py, marketable limits and
cancels), these exercise what Momentum does not: a resting order that is modified and then
cancelled, plain listeners on trades and books, and 1m bars. Each keeps at most one open order
per symbol and a small position, so that risk limits never become what the soak measures.
"""

from __future__ import annotations

from engine.events import Bar, OrderBook, Quote, Trade
from engine.strategy import Strategy
from engine.trading.orders import Order


class Listens(Strategy):
    """Counts trades: the cheapest possible subscriber."""

    def on_start(self) -> None:
        self.trades = 0

    def on_trade(self, trade: Trade) -> None:
        self.trades += 1


class Watches(Strategy):
    """Reads every quote and book: the busiest routes of the bus."""

    def on_start(self) -> None:
        self.spread = 0

    def on_quote(self, quote: Quote) -> None:
        self.spread = quote.best_ask - quote.best_bid

    def on_book(self, book: OrderBook) -> None:
        if book.asks and book.bids:
            self.spread = book.asks[0][0] - book.bids[0][0]


class Bars(Strategy):
    """1m bars: the bar builder's state must not grow with time."""

    def on_start(self) -> None:
        self.closed = 0

    def on_bar(self, bar: Bar) -> None:
        self.closed += 1


class Quoter(Strategy):
    """Rests a one-share buy at the best bid, moves it to the best ask `every` trades later
    (a modify), and cancels whatever is left `every` trades after that; sells what it holds."""

    def on_start(self) -> None:
        self.every = int(self.params.get("every", 300))
        self.seen = 0
        self.moved: set[str] = set()

    def on_trade(self, trade: Trade) -> None:
        self.seen += 1
        if self.seen % self.every:
            return
        mine = [o for o in self.orders() if o.symbol == trade.symbol]
        for order in mine:
            if order.state.value not in ("accepted", "partially_filled"):
                continue  # still on its way, or a cancel/amend already is
            if order.client_id in self.moved or not trade.best_ask:
                self.cancel(order)
            else:
                self.moved.add(order.client_id)
                self.modify(order, price=trade.best_ask)
        if mine:
            return
        if self.position(trade.symbol) > 0 and trade.best_bid:
            self.sell(trade.symbol, self.position(trade.symbol), trade.best_bid)
        elif trade.best_bid:
            self.buy(trade.symbol, 1, trade.best_bid)

    def on_order(self, order: Order) -> None:
        if not order.is_open:
            self.moved.discard(order.client_id)
