"""Positions, cash and PnL: the account's, and each strategy's share of it.

Fills move positions and cash as they arrive; the broker's own view (kt00018 holdings and
kt00001 cash, through KiwoomApi) seeds them at start and is compared with them on every
reconciliation, where a difference is a `PositionDivergence`. Average-cost accounting in int
KRW: realised PnL is (fill price - average cost) x qty, less fees and tax.

After a restart (`restore`), each strategy's shares and cost come from its journaled fills,
the day's realised PnL from the risk counters saved with them; fills the journal missed are
then booked against those, and the broker's holdings replace the account's quantities. Shares
no strategy bought stay the account's alone (external).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import structlog

from engine.clock import KST, SYSTEM_CLOCK, Clock
from engine.config import PortfolioConfig
from engine.events import Fill, PositionDivergence, Side, Trade
from engine.models import CashBalance, Holding
from engine.trading.fees import FeeRates, Market

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Position:
    """A long position (KRX cash accounts cannot be short). `cost` is the average-cost basis
    of the shares held, in KRW; `realized` the PnL taken out of it, after fees and tax."""

    symbol: str
    qty: int = 0
    cost: int = 0
    realized: int = 0
    fees: int = 0

    @property
    def avg_price(self) -> int:
        return self.cost // self.qty if self.qty else 0

    def apply(self, side: Side, qty: int, price: int, fee: int) -> int:
        """Book a fill; returns the realised PnL it made (0 for a buy)."""
        self.fees += fee
        if side is Side.BUY:
            self.qty += qty
            self.cost += qty * price
            self.realized -= fee
            return -fee
        sold = min(qty, self.qty)
        basis = self.cost * sold // self.qty if self.qty else 0
        pnl = sold * price - basis - fee
        self.qty -= sold
        self.cost -= basis
        # Selling more than we hold only happens when our view lags the broker's (a fill
        # before the start-up snapshot): the shortfall is left to reconciliation.
        self.realized += pnl
        return pnl

    def unrealized(self, last: int | None) -> int:
        return (last * self.qty - self.cost) if last and self.qty else 0


@dataclass(frozen=True, slots=True)
class StrategyMark:
    """One strategy's share of an `EquityMark`, KRW: today's realised PnL (after fees and
    tax), the unrealised PnL and value of what it holds at the last prices, today's fees."""

    realized: int
    unrealized: int
    fees: int
    value: int


@dataclass(frozen=True, slots=True)
class EquityMark:
    """The account marked at the last prices (a symbol without one at its average cost):
    what the journal snapshots through the day for the daily report. KRW ints."""

    cash: int
    positions_value: int
    realized: int
    unrealized: int
    fees: int
    strategies: dict[str, StrategyMark]

    @property
    def equity(self) -> int:
        return self.cash + self.positions_value


class PastFill(Protocol):
    """A fill from the journal (engine/journal.py `JournaledFill`): `fee` is fee and tax
    together, 0 when the fill carried none."""

    @property
    def trading_day(self) -> str: ...
    @property
    def strategy(self) -> str | None: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def qty(self) -> int: ...
    @property
    def price(self) -> int: ...
    @property
    def fee(self) -> int: ...


class Portfolio:
    """The account's positions and cash, per-strategy positions, and the last prices seen.

    Prices come from the live feed only (`on_trade`): risk must never judge an order on a
    cached REST answer.
    """

    def __init__(self, cfg: PortfolioConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.cfg = cfg
        self.clock = clock
        self.rates = FeeRates(cfg.commission_bp, cfg.sell_tax_bp, cfg.sell_tax_table)
        """The estimate's rates: with `sell_tax_table` the sell tax of the fill's day and
        the symbol's market (`markets`), the table the simulator and the backtest charge."""
        self.markets = {s: Market(m) for s, m in cfg.markets.items()}
        self.positions: dict[str, Position] = {}
        self.by_strategy: dict[str, dict[str, Position]] = {}
        self.cash = 0
        """Orderable cash (주문가능금액), KRW, as last reported and moved by fills since."""
        self.realized_today = 0
        self.fees_today = 0
        self.last: dict[str, int] = {}
        self.base: dict[str, int] = {}
        """Each symbol's base price (previous close), from the feed or the start-up query."""

    # --- market ------------------------------------------------------------------------

    def on_trade(self, tr: Trade) -> None:
        self.last[tr.symbol] = tr.price
        if tr.symbol not in self.base and tr.change and tr.price - tr.change > 0:
            self.base[tr.symbol] = tr.price - tr.change

    # --- fills -------------------------------------------------------------------------

    def fee_for(
        self, side: Side, qty: int, price: int, symbol: str = "", day: date | None = None
    ) -> int:
        """Estimated fee and tax of a fill that carries none (commission_bp, and sell_tax_bp
        or the sell-tax table's rate of `day`, today by default, and `symbol`'s market),
        rounded as engine/trading/fees.py rounds."""
        return sum(self.fee_parts(side, qty, price, symbol, day))

    def fee_parts(
        self, side: Side, qty: int, price: int, symbol: str = "", day: date | None = None
    ) -> tuple[int, int]:
        """`fee_for` as (fee, tax): the two add up to it exactly."""
        when = day or self.clock.now().astimezone(KST).date()
        rates = self.rates.on(when, self.markets.get(symbol, Market.KOSPI))
        return rates.charge(qty * price, sell=side is Side.SELL)

    def on_fill(self, fill: Fill) -> int:
        """Book `fill` on the account and on its strategy; returns the account's realised PnL
        delta (what the daily loss limit counts)."""
        fee = fill.fee + fill.tax
        if not fee:
            fee = self.fee_for(fill.side, fill.qty, fill.price, fill.symbol)
        value = fill.qty * fill.price
        self.cash += -value - fee if fill.side is Side.BUY else value - fee
        pos = self.positions.setdefault(fill.symbol, Position(fill.symbol))
        pnl = pos.apply(fill.side, fill.qty, fill.price, fee)
        if fill.strategy is not None:
            mine = self.by_strategy.setdefault(fill.strategy, {})
            mine.setdefault(fill.symbol, Position(fill.symbol)).apply(
                fill.side, fill.qty, fill.price, fee
            )
        self.realized_today += pnl
        self.fees_today += fee
        return pnl

    # --- broker snapshots --------------------------------------------------------------

    def load(self, holdings: Iterable[Holding], cash: CashBalance) -> None:
        """Take the broker's positions and orderable cash as the truth (start-up). What each
        symbol realised today stays, also for a symbol no longer held."""
        before = self.positions
        self.positions = {
            h.symbol: Position(h.symbol, h.qty, h.avg_price * h.qty) for h in holdings if h.qty
        }
        for symbol, old in before.items():
            if old.realized or old.fees:
                pos = self.positions.setdefault(symbol, Position(symbol))
                pos.realized, pos.fees = old.realized, old.fees
        self.cash = cash.orderable

    def restore(self, fills: Iterable[PastFill], today: str, realized_today: int) -> None:
        """Rebuild from the journal at a restart, before the broker is asked: each strategy's
        positions and average cost from its fills (oldest first, all days), the account's
        from all of them until `load` takes the broker's quantities, today's realised PnL per
        position and fees from today's fills, and the day's realised total as the risk
        counter kept it (`realized_today`), so that it reads the same as before the restart.
        A fill that carried no fee is charged the estimate it was booked with."""
        account: dict[str, Position] = {}
        mine: dict[str, dict[str, Position]] = {}
        fees_today = 0
        today_started = False
        for f in fills:
            if not today_started and f.trading_day >= today:
                today_started = True
                _forget_realized(account, mine)
            fee = f.fee or self.fee_for(f.side, f.qty, f.price, f.symbol, _day(f.trading_day))
            account.setdefault(f.symbol, Position(f.symbol)).apply(f.side, f.qty, f.price, fee)
            if f.strategy is not None:
                by_symbol = mine.setdefault(f.strategy, {})
                by_symbol.setdefault(f.symbol, Position(f.symbol)).apply(
                    f.side, f.qty, f.price, fee
                )
            if today_started:
                fees_today += fee
        if not today_started:
            _forget_realized(account, mine)
        self.positions = account
        self.by_strategy = mine
        self.realized_today = realized_today
        self.fees_today = fees_today

    def compare(self, holdings: Iterable[Holding]) -> list[PositionDivergence]:
        """Differences between our quantities and the broker's (kt00018)."""
        broker = {h.symbol: h.qty for h in holdings}
        out = []
        for symbol in sorted(set(broker) | {s for s, p in self.positions.items() if p.qty}):
            ours = self.position_qty(symbol)
            theirs = broker.get(symbol, 0)
            if ours != theirs:
                out.append(PositionDivergence(symbol, ours, theirs))
        return out

    # --- reading -----------------------------------------------------------------------

    def position_qty(self, symbol: str) -> int:
        pos = self.positions.get(symbol)
        return pos.qty if pos else 0

    def strategy_qty(self, strategy: str, symbol: str) -> int:
        pos = self.by_strategy.get(strategy, {}).get(symbol)
        return pos.qty if pos else 0

    def external_qty(self, symbol: str) -> int:
        """Shares of `symbol` the account holds beyond what the strategies' own fills hold:
        bought by hand or before the engine (0 when the strategies hold it all)."""
        held = sum(mine[symbol].qty for mine in self.by_strategy.values() if symbol in mine)
        return max(self.position_qty(symbol) - held, 0)

    def gross_exposure(self) -> int:
        total = 0
        for symbol, pos in self.positions.items():
            if pos.qty:
                total += abs(pos.qty) * (self.last.get(symbol) or pos.avg_price)
        return total

    def unrealized(self) -> int:
        return sum(p.unrealized(self.last.get(s)) for s, p in self.positions.items())

    def mark(self) -> EquityMark:
        """The account and each strategy marked now (`EquityMark`). A few dict walks over the
        positions: cheap enough for a snapshot a minute, not meant for every tick."""
        last = self.last
        strategies = {}
        for name, mine in sorted(self.by_strategy.items()):
            realized = unrealized = fees = value = 0
            for symbol, p in mine.items():
                realized += p.realized
                fees += p.fees
                if p.qty:
                    price = last.get(symbol)
                    unrealized += p.unrealized(price)
                    value += p.qty * (price or p.avg_price)
            strategies[name] = StrategyMark(realized, unrealized, fees, value)
        return EquityMark(
            cash=self.cash,
            positions_value=self.gross_exposure(),
            realized=self.realized_today,
            unrealized=self.unrealized(),
            fees=self.fees_today,
            strategies=strategies,
        )

    def snapshot(self) -> dict[str, object]:
        """Positions and PnL as plain data (status, MQTT)."""
        return {
            "cash": self.cash,
            "realized_today": self.realized_today,
            "fees_today": self.fees_today,
            "unrealized": self.unrealized(),
            "positions": {
                s: {
                    "qty": p.qty,
                    "avg_price": p.avg_price,
                    "last": self.last.get(s, 0),
                    "unrealized": p.unrealized(self.last.get(s)),
                    "realized": p.realized,
                }
                for s, p in sorted(self.positions.items())
                if p.qty or p.realized
            },
            "strategies": {
                name: {
                    s: {"qty": p.qty, "realized": p.realized}
                    for s, p in sorted(mine.items())
                    if p.qty or p.realized
                }
                for name, mine in sorted(self.by_strategy.items())
            },
        }


def _forget_realized(account: dict[str, Position], mine: dict[str, dict[str, Position]]) -> None:
    """The days before's realised PnL and fees are not today's."""
    for pos in [*account.values(), *(p for m in mine.values() for p in m.values())]:
        pos.realized = pos.fees = 0


def _day(trading_day: str) -> date | None:
    """A journal's "YYYYMMDD" as a date (None when it is not one: today's rates then)."""
    try:
        return datetime.strptime(trading_day, "%Y%m%d").date()
    except ValueError:
        return None
