"""The in-process broker: the broker port (engine/trading/broker.py) answered by an exchange
held in memory, for the backtest. Orders, cancels and amends reach its book after the
configured latency; market data matches them by the fill model (engine/backtest/fills.py);
the account (reservations, fees and tax, tick and price-limit checks, each order's
open/filled/fee/tax life) is the exchange core's, engine/trading/account.py, the one the
simulator's exchange (engine/sim/exchange.py) uses, and so are the order rules above it
(engine/trading/exchange_core.py: acceptance, cancel/amend checks, IOC/FOK at arrival through
the core's `Liquidity`, here `QuoteLiquidity`, numbering, expiry at the close). What happens to an order reaches the OMS
as the live broker's would: the call's answer, then order notices (`OrderExecution`) on the
bus, the path the live 00 feed takes; a fill notice carries that fill's qty and price and
the order's running fee and tax, as Kiwoom's do.

Driven by the run loop: `next_due()` says when the next call reaches the book, `arrive(t)`
applies the calls due by then, `on_trade` / `on_quote` / `on_book` / `on_bar` match what
rests, `end_day()` ends what is open at the close.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass
from datetime import date, datetime

from engine.backtest import fills
from engine.backtest.clock import BacktestClock
from engine.bus import EventBus
from engine.events import (
    Bar,
    Exchange,
    OrderBook,
    OrderExecution,
    OrderKind,
    OrderStatus,
    Quote,
    Side,
    TimeInForce,
    Trade,
    ViEvent,
    maker,
)
from engine.models import AccountBalance, CashBalance, Holding, OpenOrder, OrderRecord
from engine.trading import account as acct
from engine.trading import exchange_core as core
from engine.trading.account import Account, OrderLife
from engine.trading.broker import Answer, BrokerAnswer
from engine.trading.krx import price_limits

ACCOUNT_NO = "BACKTEST"


_execution = maker(OrderExecution)
"""OrderExecution(...) by position (engine/events.py `maker`): two per order."""


def _hhmmss(at: datetime) -> int:
    """`int(at.strftime("%H%M%S"))`, without formatting a string."""
    return at.hour * 10_000 + at.minute * 100 + at.second


@dataclass
class _Order(OrderLife):
    """An order at the in-process exchange; its `OrderLife` fee and tax run per number
    (what a notice carries: Kiwoom's 938/939 are the order's running totals, and the OMS
    books the difference)."""

    order_no: str
    symbol: str
    side: Side
    qty: int
    price: int | None
    tif: TimeInForce
    arrive_ns: int
    placed_ns: int = 0
    """When it was sent (an amend: when the amend was): within a bar, only later prints."""
    live: bool = False
    """At the book (the latency has passed)."""
    ahead: int = 0
    first: bool = False
    """No quote was known at arrival and no print has been seen since."""

    @property
    def number(self) -> str:
        return self.order_no


@dataclass
class _Call:
    kind: OrderKind
    order_no: str
    target: str
    price: int = 0
    sent_ns: int = 0


class QuoteLiquidity:
    """The fill model at an order's arrival as the exchange core's `Liquidity`: the best
    opposite price known takes the whole order (no depth is known behind a quote); nothing
    during a VI (see the fill model's table)."""

    def __init__(self, ask: dict[str, int], bid: dict[str, int], halted: set[str]) -> None:
        self._ask = ask
        self._bid = bid
        self._halted = halted

    def _price(self, symbol: str, side: Side, limit: int | None) -> int:
        if symbol in self._halted:
            return 0
        return fills.marketable(side, limit, self._ask.get(symbol, 0), self._bid.get(symbol, 0))

    def fillable(self, symbol: str, side: Side, qty: int, limit: int | None) -> int:
        return qty if self._price(symbol, side, limit) else 0

    def take(self, symbol: str, side: Side, qty: int, limit: int | None) -> list[tuple[int, int]]:
        price = self._price(symbol, side, limit)
        return [(price, qty)] if price else []


class InProcessBroker:
    """See the module docstring."""

    def __init__(
        self, clock: BacktestClock, bus: EventBus, account: Account, *, latency_ms: int
    ) -> None:
        self.clock = clock
        self.bus = bus
        self.account = account
        self.latency_ns = latency_ms * 1_000_000
        self.base: dict[str, int] = {}
        """Each symbol's base price (the previous close) for the ±30 % limits."""
        self.last: dict[str, int] = {}
        self._ask: dict[str, int] = {}
        self._bid: dict[str, int] = {}
        self._books: dict[str, OrderBook] = {}
        self._halted: set[str] = set()
        """Symbols in a VI's auction: no continuous matching."""
        self._uncross: set[str] = set()
        """Symbols whose VI ended: their next print is the auction's uncross."""
        self.liquidity: core.Liquidity = QuoteLiquidity(self._ask, self._bid, self._halted)
        """What an arriving order meets (the exchange core's `Liquidity`)."""
        self._numbers = core.OrderNumbers()
        self._fill_seq = 0
        self.orders: dict[str, _Order] = {}
        self._resting: dict[str, list[_Order]] = {}
        self._due: list[tuple[int, int, _Call | _Order]] = []
        self._due_seq = 0

    # --- the port --------------------------------------------------------------------------

    def _number(self) -> str:
        return self._numbers.next()

    def _schedule(self, item: _Call | _Order) -> None:
        self._due_seq += 1
        heapq.heappush(self._due, (self.clock.ns + self.latency_ns, self._due_seq, item))

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
        refusal = self._refusal(symbol, side, qty, price)
        if refusal is not None:
            return BrokerAnswer(Answer.REFUSED, code=refusal, detail=acct.REFUSALS[refusal])
        no = self._number()
        order = _Order(
            no, symbol, side, qty, price, tif, self.clock.ns + self.latency_ns, self.clock.ns
        )
        self.orders[no] = order
        core.take_order(
            self.account, no, order, side, symbol, qty, self._reserve_price(symbol, price)
        )
        self._schedule(order)
        self._notice_soon(order, OrderKind.NEW, OrderStatus.ACCEPTED)
        return BrokerAnswer(Answer.TAKEN, order_no=no)

    def _reserve_price(self, symbol: str, price: int | None) -> int:
        if price is not None:
            return price
        # a market buy holds at the upper limit
        return core.reserve_price(None, price_limits(self.base[symbol])[1])

    def _refusal(self, symbol: str, side: Side, qty: int, price: int | None) -> str | None:
        base = self.base.get(symbol)
        if base is None:
            return acct.NO_PRICE
        return core.order_refusal(self.account, side, symbol, qty, price, *price_limits(base))

    async def cancel(
        self, order_no: str, symbol: str, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        return self._call(OrderKind.CANCEL, order_no, symbol, 0)

    async def amend(
        self, order_no: str, symbol: str, price: int, *, venue: Exchange = Exchange.KRX
    ) -> BrokerAnswer:
        return self._call(OrderKind.AMEND, order_no, symbol, price)

    def _call(self, kind: OrderKind, order_no: str, symbol: str, price: int) -> BrokerAnswer:
        order = self.orders.get(order_no)
        if core.target_refusal(order, order is not None and order.symbol == symbol, 0):
            # every way of missing the target is answered as nothing open
            return BrokerAnswer(
                Answer.REFUSED,
                code=core.NOTHING_OPEN,
                detail=core.TARGET_REFUSALS[core.NOTHING_OPEN],
            )
        assert order is not None
        if kind is OrderKind.AMEND:
            why = core.amend_refusal(
                self.account,
                order_no,
                order.side,
                0,
                0,
                order.open_qty,
                price,
                *price_limits(self.base[symbol]),
            )
            if why is not None:
                return BrokerAnswer(Answer.REFUSED, code=why, detail=acct.REFUSALS[why])
        no = self._number()
        self._schedule(_Call(kind, no, order_no, price, self.clock.ns))
        return BrokerAnswer(Answer.TAKEN, order_no=no)

    async def order_history(
        self, order_date: date | None = None, *, from_order_no: str | None = None
    ) -> list[OrderRecord]:
        return []  # reconciliation is off in a backtest: the notices are the whole truth

    async def open_orders(self) -> list[OpenOrder]:
        return [
            OpenOrder(
                o.order_no,
                o.symbol,
                "",
                o.side,
                "접수",
                o.qty,
                o.price or 0,
                o.open_qty,
                o.filled_qty,
                o.filled_value // o.filled_qty if o.filled_qty else 0,
                None,
                "보통" if o.price else "시장가",
                None,
                "KRX",
            )
            for o in self.orders.values()
            if o.open_qty > 0
        ]

    async def account_balance(self, venue: Exchange = Exchange.KRX) -> AccountBalance:
        a = self.account
        holdings = tuple(
            Holding(
                s,
                "",
                q,
                a.sellable(s),
                a.cost.get(s, 0) // q,
                self.last.get(s, 0),
                a.cost.get(s, 0),
                q * self.last.get(s, 0),
                q * self.last.get(s, 0) - a.cost.get(s, 0),
                0.0,
            )
            for s, q in sorted(a.shares.items())
            if q > 0
        )
        purchase = sum(h.purchase_amount for h in holdings)
        value = sum(h.eval_amount for h in holdings)
        return AccountBalance(purchase, value, value - purchase, 0.0, a.cash + value, holdings)

    async def cash_balance(self) -> CashBalance:
        a = self.account
        return CashBalance(a.cash, a.orderable_cash(), a.orderable_cash(), a.cash, a.cash)

    # --- driven by the run loop -------------------------------------------------------------

    def next_due(self) -> int | None:
        return self._due[0][0] if self._due else None

    def arrive(self, until_ns: int) -> None:
        """Apply every order, cancel and amend that reached the book by `until_ns`."""
        while self._due and self._due[0][0] <= until_ns:
            _, _, item = heapq.heappop(self._due)
            if isinstance(item, _Order):
                self._arrived(item)
            else:
                self._call_arrived(item)

    def _arrived(self, order: _Order) -> None:
        if order.open_qty <= 0:
            return
        order.live = True
        for price, qty in core.arrival_fills(
            self.liquidity, order.symbol, order.side, order.open_qty, order.price, order.tif
        ):
            self._fill(order, qty, price)
        after = core.after_arrival(order.open_qty, order.tif)
        if after is core.AfterArrival.DONE:
            return
        if after is core.AfterArrival.ENDS:
            self._end(order, "IOC/FOK: nothing to take at arrival")
            return
        book = self._books.get(order.symbol)
        if book is not None and order.price is not None:
            order.ahead = fills.queue_ahead(order.side, order.price, book.bids, book.asks)
        order.first = order.symbol not in self._ask and order.symbol not in self._bid
        self._resting.setdefault(order.symbol, []).append(order)

    def _call_arrived(self, call: _Call) -> None:
        order = self.orders[call.target]
        if order.open_qty <= 0:
            self._notice(
                order,
                call.kind,
                OrderStatus.REJECTED,
                order_no=call.order_no,
                reason=core.TARGET_REFUSALS[core.NOTHING_OPEN],
            )
            return
        if call.kind is OrderKind.CANCEL:
            self._unrest(order)
            core.expire(self.account, order.order_no, order)
            self._notice(order, OrderKind.CANCEL, OrderStatus.CONFIRMED, order_no=call.order_no)
            return
        # An amend: the open rest moves to the new price under the new number, at the back
        # of its new level's queue.
        self._unrest(order)
        del self.orders[order.order_no]
        core.amend(
            self.account,
            order.side,
            order.symbol,
            order.order_no,
            0,
            0,
            call.order_no,
            order.open_qty,
            call.price,
        )
        order.order_no = call.order_no
        order.price = call.price
        order.fee = order.tax = 0  # totals run per number
        order.placed_ns = call.sent_ns
        self.orders[order.order_no] = order
        self._notice(order, OrderKind.AMEND, OrderStatus.CONFIRMED, orig=call.target)
        order.live = False
        self._arrived(order)

    def _unrest(self, order: _Order) -> None:
        resting = self._resting.get(order.symbol)
        if resting and order in resting:
            resting.remove(order)

    def on_quote(self, q: Quote) -> None:
        self._quote(q.symbol, q.best_ask, q.best_bid)

    def on_book(self, b: OrderBook) -> None:
        self._books[b.symbol] = b
        self._quote(b.symbol, b.asks[0][0] if b.asks else 0, b.bids[0][0] if b.bids else 0)

    def _quote(self, symbol: str, ask: int, bid: int) -> None:
        if ask > 0:
            self._ask[symbol] = ask
        if bid > 0:
            self._bid[symbol] = bid

    def on_vi(self, ev: ViEvent) -> None:
        """A VI started (the symbol's auction: nothing matches) or ended (the next print
        uncrosses it); see the fill model's table."""
        if ev.active:
            self._halted.add(ev.symbol)
            self._uncross.discard(ev.symbol)
        elif ev.symbol in self._halted:
            self._uncross.add(ev.symbol)

    def on_trade(self, tr: Trade) -> None:
        symbol = tr.symbol
        self.last[symbol] = tr.price
        if symbol in self._halted or self._resting.get(symbol):
            self._print(symbol, tr.price, tr.qty)
        # `_quote`, inlined: this runs for every print.
        if tr.best_ask > 0:
            self._ask[symbol] = tr.best_ask
        if tr.best_bid > 0:
            self._bid[symbol] = tr.best_bid

    def on_bar(self, bar: Bar, opened_ns: int | None = None) -> None:
        """Walk a bar's four prints (called at its close, before strategies see it). An order
        sent after the bar began (`opened_ns`, default its start) meets only its close: when
        inside the bar the open, high and low printed is not known."""
        self.last[bar.symbol] = bar.close
        if not self._resting.get(bar.symbol):
            return  # the usual bar: nothing rests to meet it
        start_ns = opened_ns or int(bar.start.timestamp()) * 1_000_000_000
        walk = fills.bar_walk(bar.open, bar.high, bar.low, bar.close, bar.volume)
        for i, pr in enumerate(walk):
            self._print(bar.symbol, pr.price, pr.qty, None if i == len(walk) - 1 else start_ns)

    def _print(self, symbol: str, price: int, qty: int, sent_by: int | None = None) -> None:
        """Match one print (`price`, `qty`) against what rests (only orders sent by
        `sent_by`, when given)."""
        if symbol in self._halted:
            self._auction_print(symbol, fills.Print(price, qty))
            return
        resting = self._resting.get(symbol)
        if not resting:
            return
        left = abs(qty)
        for order in list(resting):
            if left <= 0:
                break
            if sent_by is not None and order.placed_ns > sent_by:
                continue
            limit = order.price
            if limit is not None and (price > limit if order.side is Side.BUY else price < limit):
                order.first = False  # a print on the far side of the limit: match_print's
                continue  # no match, without building one
            m = fills.match_print(
                order.side,
                order.price,
                order.open_qty,
                order.ahead,
                fills.Print(price, left),
                first=order.first,
            )
            order.first = False
            order.ahead = m.ahead
            if m.qty:
                left -= m.qty
                self._fill(order, m.qty, m.price)

    def _auction_print(self, symbol: str, pr: fills.Print) -> None:
        """A print while `symbol` is in a VI: nothing fills until the VI has ended; then it is
        the uncross, where every crossing order fills at its price, best limit first."""
        if symbol not in self._uncross:
            return
        self._halted.discard(symbol)
        self._uncross.discard(symbol)
        left = abs(pr.qty)
        waiting = sorted(
            self._resting.get(symbol, ()), key=lambda o: fills.auction_priority(o.side, o.price)
        )
        for order in waiting:
            if left <= 0:
                break
            m = fills.uncross(order.side, order.price, order.open_qty, fills.Print(pr.price, left))
            order.first = False
            order.ahead = 0
            if m.qty:
                left -= m.qty
                self._fill(order, m.qty, m.price)

    def _fill(self, order: _Order, qty: int, price: int) -> None:
        self.account.execute(
            order.order_no,
            order,
            order.side,
            order.symbol,
            qty,
            price,
            self._reserve_price(order.symbol, order.price),
        )
        if order.open_qty <= 0:
            self._unrest(order)
        self._fill_seq += 1
        self._notice(
            order,
            OrderKind.NEW,
            OrderStatus.FILLED,
            fill=(qty, price, order.fee, order.tax),
            fill_no=str(self._fill_seq),
        )

    def end_day(self) -> None:
        """The day's last session is over: KRX ends every open order (CANCELED); calls still
        on their way are dropped with them."""
        self._due.clear()
        for order in core.open_at_close(self.orders.values()):
            self._end(order, "day ended")
        self._resting.clear()
        self._ask.clear()
        self._bid.clear()
        self._books.clear()
        self._halted.clear()  # a VI never outlives its day
        self._uncross.clear()

    def new_day(self) -> None:
        """Order numbers restart each trading day, as Kiwoom's do; the closes become the bases."""
        self.orders.clear()
        self.account.day = self.clock.now().date()  # the sell-tax table's key
        self._numbers.restart()
        self._fill_seq = 0
        self.base.update(self.last)

    def _end(self, order: _Order, reason: str) -> None:
        self._unrest(order)
        core.expire(self.account, order.order_no, order)
        self._notice(order, OrderKind.NEW, OrderStatus.CANCELED, reason=reason)

    # --- notices --------------------------------------------------------------------------

    def _notice_soon(self, order: _Order, kind: OrderKind, status: OrderStatus) -> None:
        # After the call's answer, as the live 00 usually comes: the OMS links by number.
        asyncio.get_running_loop().call_soon(self._notice, order, kind, status)

    def _notice(
        self,
        order: _Order,
        kind: OrderKind,
        status: OrderStatus,
        *,
        order_no: str = "",
        orig: str | None = None,
        reason: str = "",
        fill: tuple[int, int, int, int] = (0, 0, 0, 0),
        fill_no: str | None = None,
    ) -> None:
        qty, price, fee, tax = fill
        no = order_no or order.order_no
        self.bus.publish(
            _execution(
                ACCOUNT_NO,
                no,
                orig or (order.order_no if no != order.order_no else None),
                order.symbol,
                "",  # name
                order.side,
                kind,
                status,
                "보통" if order.price else "시장가",
                order.qty,
                order.price or 0,
                order.open_qty,  # unfilled_qty
                order.filled_value,  # cum_fill_amount
                fill_no,
                price,  # fill_price
                qty,  # fill_qty
                price,  # unit_fill_price
                qty,  # unit_fill_qty
                fee,
                tax,
                reason,  # reject_reason
                Exchange.KRX,
                False,  # sor
                _hhmmss(self.clock.now()),
                0,  # ts_recv and seq: the bus stamps them
                0,
            )
        )
