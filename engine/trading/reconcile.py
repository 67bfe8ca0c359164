"""Reconciliation: bring the engine's orders and positions in line with the broker's books.

Runs at start-up (after the journal rebuilt the orders), after every feed reconnect, soon
after an order's (or a cancel's, an amend's) outcome became unknown, and every
`portfolio.reconcile_s`. The 00 feed cannot be replayed, so the broker's order list (its day's
history and what is open) and its holdings and cash are the evidence. What it finds about an
order it hands to the OMS as order events (engine/trading/order_events.py); it changes no
order itself. Nothing is ever resubmitted: an order the broker never saw is ended as REJECTED
(NOT_AT_BROKER) after two looks. Orders carried over from a day before are read against their
own day's list and ended (EXPIRED).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import structlog

from engine.clock import KST
from engine.events import Exchange, OrderState, Reconciled
from engine.models import AccountBalance, Holding, OrderAction, OrderRecord
from engine.trading.broker import BrokerPort, BrokerUnavailable
from engine.trading.oms import OrderManager
from engine.trading.order_events import (
    CancelAcked,
    Filled,
    Gone,
    Linked,
    Live,
    NotAtBroker,
    Replaced,
)
from engine.trading.orders import PENDING, Order

log = structlog.get_logger(__name__)

S = OrderState

MISSES_BEFORE_REJECT = 2
"""Looks at the broker's order list that must miss an UNKNOWN order before it is ended: an
order the gateway took a moment ago may not be listed yet on the first look."""

MARKS_KEPT = 64
"""Passes whose newest order number is remembered, for the cursor of an order without a
number (see `Reconciler._cursor`). An order older than all of them reads the whole day."""

BrokerBooks = BrokerPort
"""The books reconciliation reads are the broker port's (kept as a name for callers)."""


class Reconciler:
    """Settles orders and checks positions against the broker; see the module docstring."""

    def __init__(self, books: BrokerPort, oms: OrderManager) -> None:
        self.books = books
        self.oms = oms
        self._misses: dict[str, int] = {}
        self._marks: deque[tuple[int, int, str]] = deque(maxlen=MARKS_KEPT)
        """(time read, newest number listed) of the last passes, oldest first: every order
        numbered by then has at most that number."""
        self._marks_day = ""
        """The trading day of `_marks`: Kiwoom gives order numbers out again each day."""
        self._unread: set[str] = set()
        """Orders whose call was in flight when this pass chose its cursor: their rows may sit
        before it, so this pass leaves them alone even if their call ended meanwhile."""
        self._numeric = True
        """Every order number seen so far is a decimal number, so a cursor can be ordered."""
        self.runs = 0
        self.carried_pending = 0
        """Carried-over orders left open by the last pass (their day's list could not be
        read): the caller retries soon."""

    async def run(self, *, load_positions: bool = False) -> Reconciled:
        """One pass. `load_positions` takes the broker's holdings and cash as ours (start-up);
        otherwise they are compared and every difference is published. Raises
        BrokerUnavailable when the broker cannot be asked (the caller retries later)."""
        expired = await self._carried()
        day = self.oms.risk.trading_day()
        self._unread = set()
        cursor = None if load_positions else self._cursor()
        history = await self.books.order_history(from_order_no=cursor)
        self._mark(history, day)
        open_rows = await self.books.open_orders()
        checked, changed = self._orders(history, {r.order_no for r in open_rows})
        balance = await self.books.account_balance()
        others = [Exchange.NXT] if self.oms.venues - {Exchange.KRX} else []
        # SOR is a routing, not a venue: what it bought is on KRX's or NXT's list.
        for venue in others:
            balance = merge_balances(balance, await self.books.account_balance(venue))
        cash = await self.books.cash_balance()
        portfolio = self.oms.portfolio
        divergences = 0
        if load_positions:
            portfolio.load(balance.holdings, cash)
        else:
            for d in portfolio.compare(balance.holdings):
                divergences += 1
                log.warning("position_divergence", symbol=d.symbol, ours=d.ours, broker=d.broker)
                self.oms.bus.publish(d)
        # The broker's orderable cash already holds back what our open buys reserve; ours
        # counts them separately (risk adds the open buy notional), so add it back.
        portfolio.cash = cash.orderable + self.oms.open_buy_notional()
        self.runs += 1
        result = Reconciled(checked, changed + expired, divergences)
        self.oms.bus.publish(result)
        return result

    async def _carried(self) -> int:
        """Read each carried-over order's own day and end it: book the fills that day's list
        shows, then EXPIRED (a day order does not outlive its day). A day whose list cannot
        be read keeps its orders for the next pass."""
        oms = self.oms
        oms.risk.roll_day()
        changed = 0
        pending = 0
        for day, orders in sorted(oms.carried_by_day().items()):
            try:
                on = datetime.strptime(day, "%Y%m%d").date() if day else None
                history = await self.books.order_history(on)
            except BrokerUnavailable as e:
                pending += len(orders)
                log.warning("carried_orders_unreconciled", day=day, count=len(orders), error=str(e))
                continue
            rows = {r.order_no: r for r in history}
            known = {n for o in orders for n in o.order_nos}
            unclaimed = [r for r in history if r.order_no not in known and not r.original_order_no]
            for order in sorted(orders, key=lambda o: o.created_ns):
                before = (order.state, order.filled_qty)
                if not order.order_nos:
                    row = _claim(order, unclaimed)
                    if row is not None:
                        unclaimed.remove(row)
                        oms.reconciled(order, Linked(order_no=row.order_no))
                self._book_fills(order, [rows[n] for n in order.order_nos if n in rows])
                if order.is_open:
                    oms.expire(order)
                log.info(
                    "carried_order_ended",
                    client_id=order.client_id,
                    day=day,
                    state=order.state.value,
                    filled_qty=order.filled_qty,
                )
                changed += int((order.state, order.filled_qty) != before)
        self.carried_pending = pending
        return changed

    def _cursor(self) -> str | None:
        """The oldest order number this pass must read (None: the whole day). Only today's
        open orders can change: those with a number need their rows from their first number
        on (an amend's or a cancel's number is higher); one without a number (its answer
        lost) needs the rows placed after its intent, which `_claim` searches. Those all
        carry numbers above the newest one listed by a pass that ended before the intent was
        made (numbers are given in sequence), so that number is a safe start."""
        if not self._numeric:
            return None
        oms = self.oms
        marks = self._todays_marks()
        floor: tuple[int, str] | None = None
        if marks:
            _, n, s = marks[-1]
            floor = (n, s)  # nothing open: read only what came since the last pass
        # Nor what came before our own newest order: with nothing open, no row before it is
        # needed, and this pass still lists the newest number for its mark.
        for no in oms.by_order_no:
            own = _number(no)
            if own is not None and (floor is None or own > floor[0]):
                floor = (own, no)
        for order in oms.open_orders():
            if order.state is S.SUBMITTING:
                self._unread.add(order.client_id)  # as in `_orders`: not settled by this pass
                continue
            if oms.carried_over(order):
                continue
            start = self._start_of(order)
            if start is None:
                return None
            if floor is None or start[0] < floor[0]:
                floor = start
        return None if floor is None else floor[1]

    def _start_of(self, order: Order) -> tuple[int, str] | None:
        if order.order_nos:
            first: tuple[int, str] | None = None
            for s in order.order_nos:
                n = _number(s)
                if n is None:
                    return None
                if first is None or n < first[0]:
                    first = (n, s)
            return first
        made = order.created_ns - CLOCK_SKEW_S * 1_000_000_000
        for read_ns, n, s in reversed(self._marks):
            if read_ns < made:
                return (n, s)
        return None

    def _todays_marks(self) -> deque[tuple[int, int, str]]:
        day = self.oms.risk.trading_day()
        if day != self._marks_day:
            self._marks.clear()
            self._marks_day = day
        return self._marks

    def _mark(self, history: Iterable[OrderRecord], day: str) -> None:
        marks = self._todays_marks()
        if day != self._marks_day:
            return  # read before midnight: the day before's numbers
        newest = marks[-1][1:] if marks else None
        for r in history:
            n = _number(r.order_no)
            if n is None:
                self._numeric = False
                self._marks.clear()
                return
            if newest is None or n > newest[0]:
                newest = (n, r.order_no)
        if newest is not None:
            self._marks.append((self.oms.clock.time_ns(), *newest))

    def _orders(self, history: Sequence[OrderRecord], live: set[str]) -> tuple[int, int]:
        oms = self.oms
        oms.risk.roll_day()  # today's history: numbers must not meet the days before's
        rows = {r.order_no: r for r in history}
        changed = 0
        known = oms.by_order_no
        # Amends and cancels of numbers we know belong to the same order.
        for r in history:
            if r.order_no not in known and r.original_order_no in known:
                order = known[r.original_order_no]
                if r.action is OrderAction.AMEND:
                    # An amend's number is the live one now.
                    oms.reconciled(order, Replaced(order_no=r.order_no, price=r.price))
                else:
                    oms.reconciled(order, CancelAcked(order_no=r.order_no))
        unclaimed = [r for r in history if r.order_no not in known and not r.original_order_no]
        targets = [
            o
            for o in oms.open_orders()
            if o.state is not S.SUBMITTING
            and o.client_id not in self._unread
            and not oms.carried_over(o)
        ]
        for order in sorted(targets, key=lambda o: o.created_ns):
            if not order.order_nos:
                row = _claim(order, unclaimed)
                if row is None:
                    changed += self._missing(order)
                    continue
                unclaimed.remove(row)
                oms.reconciled(order, Linked(order_no=row.order_no))
                log.info("order_attributed", client_id=order.client_id, order_no=row.order_no)
            changed += self._settle(order, [rows[n] for n in order.order_nos if n in rows], live)
        # An order that missed once and was found (or ended) since needs its count no more.
        self._misses = {
            c: n
            for c, n in self._misses.items()
            if (o := oms.orders.get(c)) is not None and o.state is S.UNKNOWN and not o.order_nos
        }
        for r in unclaimed:
            if r.remaining_qty and r.order_no in live:
                log.info("external_open_order", order_no=r.order_no, symbol=r.symbol)
        return len(targets), changed

    def _missing(self, order: Order) -> int:
        if order.state is not S.UNKNOWN:
            return 0
        misses = self._misses.get(order.client_id, 0) + 1
        self._misses[order.client_id] = misses
        if misses < MISSES_BEFORE_REJECT:
            return 0
        self._misses.pop(order.client_id, None)
        before = order.state
        self.oms.reconciled(order, NotAtBroker())
        return int(order.state is not before)

    def _book_fills(self, order: Order, chain: list[OrderRecord]) -> None:
        """The fills the broker lists under the order's numbers that we lack."""
        for r in chain:
            if r.action is OrderAction.CANCEL:
                continue  # a cancel order carries no fills of its own
            if r.filled_qty > order.filled_by_no.get(r.order_no, 0) and r.fill_price > 0:
                self.oms.reconciled(
                    order,
                    Filled(
                        order_no=r.order_no,
                        fill_no=f"R{r.order_no}:{r.filled_qty}",
                        qty=r.filled_qty,
                        price=r.fill_price,
                        cum=r.filled_qty,
                    ),
                )

    def _settle(self, order: Order, chain: list[OrderRecord], live: set[str]) -> int:
        """Book the fills the broker lists and we lack, then tell what state they imply."""
        oms = self.oms
        before = (order.state, order.filled_qty)
        self._book_fills(order, chain)
        if not order.is_open:
            pass
        elif any(n in live for n in order.order_nos):
            # Open at the broker. A pending cancel or amend whose call ended without an answer
            # (its outcome unknown) did not take: the order goes back to where it was, so a
            # later cancel goes out. One still waiting for its answer or its 00 is left be.
            if order.state not in PENDING or oms.call_lost(order):
                oms.reconciled(order, Live())
        elif chain and not any(r.remaining_qty for r in chain):
            # Listed, nothing open, not all filled: cancelled (by us, the exchange's IOC
            # rule, or the broker's 거부). The history and the open orders are two snapshots:
            # a row still open in the history was amended or filled between them, which the
            # 00 feed or the next pass tells; ending it here would refuse that fill.
            oms.reconciled(order, Gone())
        return int((order.state, order.filled_qty) != before)


CLOCK_SKEW_S = 5
"""How far the broker's order time may sit before our intent's and still be its order."""


def merge_balances(krx: AccountBalance, other: AccountBalance) -> AccountBalance:
    """The account's holdings from two venues' lists (the broker lists them per venue: KRX, NXT).

    Shares are one pool whichever venue bought them, so a venue's list is taken to show the
    account's shares of a symbol (priced at that venue), or none: per symbol the larger
    quantity counts, never the sum (assumed: Kiwoom documents no more; the simulator lists
    every holding on KRX's list and none on NXT's). Totals are KRX's."""
    merged = {h.symbol: h for h in krx.holdings}
    for h in other.holdings:
        have = merged.get(h.symbol)
        if have is None or h.qty > have.qty:
            merged[h.symbol] = h
    holdings: tuple[Holding, ...] = tuple(merged.values())
    return AccountBalance(
        krx.purchase_amount,
        krx.eval_amount,
        krx.pnl,
        krx.pnl_pct,
        krx.estimated_assets,
        holdings,
    )


def _number(order_no: str) -> int | None:
    return int(order_no) if order_no.isascii() and order_no.isdigit() else None


def _claim(order: Order, unclaimed: list[OrderRecord]) -> OrderRecord | None:
    """The broker's order that matches an intent journaled without a number: same symbol,
    side, quantity and price (0 for market), placed after the intent. The oldest is taken."""
    intent = datetime.fromtimestamp(order.created_ns / 1e9, KST) - timedelta(seconds=CLOCK_SKEW_S)
    for r in unclaimed:
        placed_before = r.time is not None and r.time < intent.time()
        if (
            not placed_before
            and r.symbol == order.symbol
            and r.side is order.side
            and r.qty == order.qty
            and r.price == (order.price or 0)
        ):
            return r
    return None
