"""What the status page shows, as one JSON-ready dict built from the engine's state on its
loop: a pure function of what it is handed (`build`), plus the two small histories the page
needs and the engine keeps nowhere else: today's fills (`Fills`) and the intraday equity
line (`EquityLine`). Both are bounded."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

from engine.clock import KST
from engine.events import Fill, Side
from engine.trading.portfolio import Portfolio, Position

T = TypeVar("T")

MAX_FILLS: Final = 500
"""Today's fills kept for the page (newest); the journal keeps them all."""
SHOWN_FILLS: Final = 100
"""The newest fills each snapshot carries."""
MAX_EQUITY_POINTS: Final = 1024
"""The equity line's bound: full, every other point goes (the line keeps the day's shape at
half the resolution), so a day of any length fits."""


class StrategyView(Protocol):
    """What the page reads of a strategy (engine/host.py StrategySlot has it)."""

    name: str
    enabled: bool
    disabled_reason: str
    errors: int
    overruns: int
    rejections: int
    symbols: tuple[str, ...]


class OrderView(Protocol):
    """What the page reads of an open order (engine/trading/orders.py Order has it)."""

    client_id: str
    strategy: str | None
    symbol: str
    side: Side
    qty: int
    price: int | None
    filled_qty: int
    order_no: str | None
    external: bool

    @property
    def state(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class FillRow:
    day: str
    """The trading day (ISO) the fill was booked on."""
    time: str
    """HH:MM:SS, KST, as the engine received it."""
    strategy: str | None
    symbol: str
    side: str
    qty: int
    price: int
    fee: int
    tax: int


class Fills:
    """The newest `MAX_FILLS` fills, as the bus delivered them."""

    def __init__(self, maxlen: int = MAX_FILLS) -> None:
        self.rows: deque[FillRow] = deque(maxlen=maxlen)
        self.day = ""
        self.day_count = 0
        """The fills of `day` (the newest fill's), also those no longer kept."""

    def count(self, day: str) -> int:
        return self.day_count if day == self.day else 0

    def add(self, fill: Fill, at: datetime) -> None:
        day = at.date().isoformat()
        if day != self.day:
            self.day, self.day_count = day, 0
        self.day_count += 1
        self.rows.append(
            FillRow(
                day=day,
                time=at.strftime("%H:%M:%S"),
                strategy=fill.strategy,
                symbol=fill.symbol,
                side=fill.side.value,
                qty=fill.qty,
                price=fill.price,
                fee=fill.fee,
                tax=fill.tax,
            )
        )

    def restore(self, fills: Iterable[Fill], day_count: int) -> None:
        """Take the day's journaled fills (oldest first, stamped `ts_recv`) and its count of
        fills, also of those not handed over (a restart in the day)."""
        for f in fills:
            self.add(f, datetime.fromtimestamp(f.ts_recv / 1e9, KST))
        if self.rows:
            self.day_count = max(self.day_count, day_count)

    def today(self, day: str, limit: int = SHOWN_FILLS) -> list[FillRow]:
        """`day`'s fills, newest first, at most `limit`."""
        out: list[FillRow] = []
        for row in reversed(self.rows):
            if len(out) >= limit:
                break
            if row.day == day:
                out.append(row)
        return out


class EquityLine:
    """(epoch ms, equity KRW) points of one day, at most `maxlen` (see MAX_EQUITY_POINTS).
    A new day starts a new line."""

    def __init__(self, maxlen: int = MAX_EQUITY_POINTS) -> None:
        self.maxlen = max(2, maxlen)
        self.points: list[tuple[int, int]] = []
        self.day: str | None = None

    def add(self, at: datetime, equity: int) -> None:
        day = at.date().isoformat()
        if day != self.day:
            self.day, self.points = day, []
        if len(self.points) >= self.maxlen:
            # Keep the first and the last: the line still starts at the day's first point.
            self.points = self.points[::2]
        self.points.append((int(at.timestamp() * 1000), equity))

    def restore(self, day: datetime, snapshots: Sequence[tuple[int, int]]) -> None:
        """Start `day`'s line with its journaled snapshots ((ts_ns, equity), oldest first; a
        restart in the day), evenly thinned to `maxlen` when there are more."""
        self.day = day.date().isoformat()
        self.points = [(ts // 1_000_000, value) for ts, value in evenly(snapshots, self.maxlen)]


def evenly(items: Sequence[T], n: int) -> list[T]:
    """At most `n` (>= 2) of `items`, evenly spaced by index, the first and the last kept."""
    count = len(items)
    if count <= n:
        return list(items)
    return [items[i * (count - 1) // (n - 1)] for i in range(n)]


def equity(portfolio: Portfolio) -> int:
    """Orderable cash plus the positions at their last price (at cost when none was seen)."""
    return portfolio.cash + sum(
        _value(p, portfolio.last.get(s)) for s, p in portfolio.positions.items()
    )


def _value(pos: Position, last: int | None) -> int:
    return pos.qty * last if last else pos.cost


def build(
    *,
    now: datetime,
    mode: str,
    trading_state: str,
    trading_reason: str,
    halts: Mapping[str, str],
    reconciling: bool,
    feed: Mapping[str, Any],
    portfolio: Portfolio,
    strategies: Sequence[StrategyView],
    open_orders: Iterable[OrderView],
    fills: Fills,
    equity_line: EquityLine,
    names: Mapping[str, str],
) -> dict[str, Any]:
    """The page's snapshot. Money and quantities stay ints (KRW, shares). Of `names`
    (symbol -> name), only those of the symbols shown travel."""
    last = portfolio.last
    orders = list(open_orders)
    day = now.date().isoformat()
    todays = fills.today(day)
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for name, mine in portfolio.by_strategy.items():
        by_strategy[name] = [
            {
                "symbol": s,
                "qty": p.qty,
                "avg_price": p.avg_price,
                "realized": p.realized,
                "unrealized": p.unrealized(last.get(s)),
            }
            for s, p in sorted(mine.items())
            if p.qty or p.realized
        ]
    open_by: dict[str | None, int] = {}
    for o in orders:
        open_by[o.strategy] = open_by.get(o.strategy, 0) + 1
    strategy_rows = []
    for slot in strategies:
        positions = by_strategy.get(slot.name, [])
        strategy_rows.append(
            {
                "name": slot.name,
                "state": "running" if slot.enabled else "disabled",
                "reason": "" if slot.enabled else slot.disabled_reason,
                "errors": slot.errors,
                "overruns": slot.overruns,
                "rejections": slot.rejections,
                "symbols": list(slot.symbols),
                "open_orders": open_by.get(slot.name, 0),
                "positions": positions,
                "realized": sum(p["realized"] for p in positions),
                "unrealized": sum(p["unrealized"] for p in positions),
            }
        )
    positions = [
        {
            "symbol": s,
            "qty": p.qty,
            "avg_price": p.avg_price,
            "last": last.get(s, 0),
            "value": _value(p, last.get(s)),
            "realized": p.realized,
            "unrealized": p.unrealized(last.get(s)),
        }
        for s, p in sorted(portfolio.positions.items())
        if p.qty or p.realized
    ]
    order_rows = [
        {
            "client_id": o.client_id,
            "strategy": o.strategy,
            "symbol": o.symbol,
            "side": o.side.value,
            "qty": o.qty,
            "filled_qty": o.filled_qty,
            "price": o.price or 0,
            "state": getattr(o.state, "value", str(o.state)),
            "order_no": o.order_no,
            "external": o.external,
        }
        for o in orders
    ]
    fill_rows = [
        {
            "time": f.time,
            "strategy": f.strategy,
            "symbol": f.symbol,
            "side": f.side,
            "qty": f.qty,
            "price": f.price,
            "fee": f.fee + f.tax,
        }
        for f in todays
    ]
    shown = {p["symbol"] for p in positions}
    shown |= {o["symbol"] for o in order_rows}
    shown |= {f["symbol"] for f in fill_rows}
    for row in strategy_rows:
        shown |= set(row["symbols"])
    symbol_names = {s: names[s] for s in sorted(shown) if s in names}
    market_value = sum(p["value"] for p in positions)
    return {
        "at": now.isoformat(timespec="seconds"),
        "day": day,
        "mode": mode,
        "trading": {
            "state": trading_state,
            "reason": trading_reason,
            "halts": dict(halts),
            "reconciling": reconciling,
        },
        "feed": dict(feed),
        "account": {
            "cash": portfolio.cash,
            "market_value": market_value,
            "equity": portfolio.cash + market_value,
            "realized": portfolio.realized_today,
            "unrealized": portfolio.unrealized(),
            "fees": portfolio.fees_today,
        },
        "strategies": strategy_rows,
        "positions": positions,
        "open_orders": order_rows,
        "fills": fill_rows,
        "fills_today": fills.count(day),
        "equity": equity_line.points if equity_line.day == day else [],
        "names": symbol_names,
    }
