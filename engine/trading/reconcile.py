"""Reconciliation: bring the engine's orders and positions in line with the broker's books.

Runs at start-up (after the journal rebuilt the orders), after every feed reconnect, soon
after an order's outcome became unknown, and every `portfolio.reconcile_s`. The 00 feed cannot
be replayed, so the broker's order list (kt00007 for the day, ka10075 for what is open) and its
holdings (kt00018) and cash (kt00001) are the evidence. Nothing is ever resubmitted: an order
the broker never saw is ended as REJECTED (NOT_AT_BROKER) after two looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from engine.clock import KST
from engine.events import Fill, OrderState, Reconciled
from engine.models import AccountBalance, CashBalance, OpenOrder, OrderRecord
from engine.trading.oms import OrderManager
from engine.trading.orders import Order

log = structlog.get_logger(__name__)

S = OrderState

MISSES_BEFORE_REJECT = 2
"""Looks at the broker's order list that must miss an UNKNOWN order before it is ended: an
order the gateway took a moment ago may not be listed yet on the first look."""


class BrokerBooks(Protocol):
    async def order_history(self) -> list[OrderRecord]: ...
    async def open_orders(self) -> list[OpenOrder]: ...
    async def account_balance(self) -> AccountBalance: ...
    async def cash_balance(self) -> CashBalance: ...


class Reconciler:
    """Settles orders and checks positions against the broker; see the module docstring."""

    def __init__(self, books: BrokerBooks, oms: OrderManager) -> None:
        self.books = books
        self.oms = oms
        self._misses: dict[str, int] = {}
        self.runs = 0

    async def run(self, *, load_positions: bool = False) -> Reconciled:
        """One pass. `load_positions` takes the broker's holdings and cash as ours (start-up);
        otherwise they are compared and every difference is published. Raises KiwoomError
        when the broker cannot be asked (the caller retries later)."""
        history = await self.books.order_history()
        open_rows = await self.books.open_orders()
        checked, changed = self._orders(history, {r.order_no for r in open_rows})
        balance = await self.books.account_balance()
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
        result = Reconciled(checked, changed, divergences)
        self.oms.bus.publish(result)
        return result

    def _orders(self, history: Sequence[OrderRecord], live: set[str]) -> tuple[int, int]:
        oms = self.oms
        oms.risk.roll_day()  # today's history: numbers must not meet the days before's
        rows = {r.order_no: r for r in history}
        changed = 0
        # Amends and cancels of numbers we know belong to the same order.
        for r in history:
            if r.order_no not in oms.by_order_no and r.original_order_no in oms.by_order_no:
                order = oms.by_order_no[r.original_order_no]
                if "정정" in r.amend_cancel:
                    oms.link(order, r.order_no)  # an amend's number is the live one now
                else:
                    oms.by_order_no[r.order_no] = order  # a cancel's number: just known
                    order.order_nos.append(r.order_no)
        unclaimed = [
            r for r in history if r.order_no not in oms.by_order_no and not r.original_order_no
        ]
        targets = [
            o for o in oms.open_orders() if o.state is not S.SUBMITTING and not oms.carried_over(o)
        ]
        for order in sorted(targets, key=lambda o: o.created_ns):
            if not order.order_nos:
                row = _claim(order, unclaimed)
                if row is None:
                    changed += self._missing(order)
                    continue
                unclaimed.remove(row)
                oms.link(order, row.order_no)
                log.info("order_attributed", client_id=order.client_id, order_no=row.order_no)
            changed += self._settle(order, [rows[n] for n in order.order_nos if n in rows], live)
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
        return int(self.oms.move(order, S.REJECTED, "NOT_AT_BROKER"))

    def _settle(self, order: Order, chain: list[OrderRecord], live: set[str]) -> int:
        """Book the fills the broker lists and we lack, then set the state they imply."""
        oms = self.oms
        before = (order.state, order.filled_qty)
        for r in chain:
            if r.amend_cancel and "취소" in r.amend_cancel:
                continue  # a cancel order carries no fills of its own
            missing = r.filled_qty - order.filled_by_no.get(r.order_no, 0)
            if missing > 0 and r.fill_price > 0:
                fill_no = f"R{r.order_no}:{r.filled_qty}"
                if order.add_fill(fill_no, missing, r.fill_price, r.order_no):
                    oms.book_fill(
                        Fill(
                            None if order.external else order.client_id,
                            order.strategy,
                            r.order_no,
                            fill_no,
                            order.symbol,
                            order.side,
                            missing,
                            r.fill_price,
                            0,
                            0,
                        )
                    )
        is_live = any(n in live for n in order.order_nos)
        if order.filled_qty >= order.qty:
            oms.move(order, S.FILLED)
        elif is_live:
            if order.state in (S.UNKNOWN, S.SUBMITTING):
                oms.move(order, S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED)
            elif order.state is S.ACCEPTED and order.filled_qty:
                oms.move(order, S.PARTIALLY_FILLED)
        elif chain and not any(r.remaining_qty for r in chain):
            # Listed, nothing open, not all filled: cancelled (by us, the exchange's IOC
            # rule, or the broker's 거부). The history and the open orders are two snapshots:
            # a row still open in the history was amended or filled between them, which the
            # 00 feed or the next pass tells; ending it here would refuse that fill.
            oms.move(order, S.CANCELED, "RECONCILED")
        return int((order.state, order.filled_qty) != before)


CLOCK_SKEW_S = 5
"""How far the broker's order time may sit before our intent's and still be its order."""


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
