"""The strategy plugin contract: the base class every strategy extends (strategies/README.md).

A strategy reacts to events through plain, synchronous handler methods that run in the event
loop and must not block, and acts through the methods below, which return at once. It never
sees Kiwoom: symbols, sides, ints for prices and quantities, and order handles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.events import (
    Balance,
    Bar,
    ConditionHit,
    Fill,
    OrderBook,
    Quote,
    RealtimeEvent,
    SessionChanged,
    SessionState,
    Side,
    TimeInForce,
    Trade,
    TradingState,
    ViEvent,
)
from engine.trading.krx import round_to_tick, tick_size
from engine.trading.orders import Order
from engine.universe.rules import DEFAULT_DATA

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.host import StrategySlot

__all__ = [
    "HANDLERS",
    "RealtimeEvent",
    "SessionChanged",
    "SessionState",
    "Strategy",
    "TradingState",
    "TradingStatus",
    "ViEvent",
    "round_to_tick",
    "tick_size",
]

HANDLERS = (
    "on_start",
    "on_trade",
    "on_quote",
    "on_book",
    "on_bar",
    "on_order",
    "on_fill",
    "on_balance",
    "on_timer",
    "on_params",
    "on_trading_state",
    "on_condition",
    "on_subscribed",
    "on_vi",
    "on_session",
    "on_realtime",
    "on_stop",
)


@dataclass(frozen=True, slots=True)
class TradingStatus:
    """The engine's trading state as a strategy sees it: `state` is ACTIVE (trading),
    REDUCING (only orders that shrink a position go) or HALTED (no new order goes; cancels
    do), and `reasons` says why when it is not ACTIVE (e.g. the operator's halt reason)."""

    state: TradingState
    reasons: tuple[str, ...] = ()


class Strategy:
    """Base class of strategy plugins. Override the handlers you need; all are optional.

    The engine builds the strategy with its context; do set-up in `on_start` (history is
    loaded by then), not in `__init__` (if you override `__init__`, call `super().__init__`
    with the same arguments first). Attributes for your use: `name`, `params` (the config's
    `params` table, read-only), `symbols`, `log` (structlog, bound to the name) and `clock`
    (the engine's clock: `clock.now()` is an aware KST datetime, `clock.monotonic()` seconds).
    """

    def __init__(self, slot: StrategySlot) -> None:
        self._slot = slot
        self.name: str = slot.name
        self.params: Mapping[str, Any] = slot.params
        self.symbols: tuple[str, ...] = slot.symbols
        self.log = slot.log
        self.clock: Clock = slot.clock

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Refuse bad `params` before anything starts: raise ValueError saying what is wrong
        (`kiwoom-engine check` and start-up report it with the key path). Default: any."""

    # --- handlers (override) -------------------------------------------------------------

    def on_start(self) -> None:
        """Once, after history is loaded and before any event."""

    def on_trade(self, trade: Trade) -> None:
        """A trade print in one of `symbols`."""

    def on_quote(self, quote: Quote) -> None:
        """Best ask/bid changed in one of `symbols`."""

    def on_book(self, book: OrderBook) -> None:
        """The ten-level book changed in one of `symbols`."""

    def on_bar(self, bar: Bar) -> None:
        """A bar of one of the configured `bars` intervals closed."""

    def on_order(self, order: Order) -> None:
        """One of this strategy's orders changed state (read `order.state`, `order.reason`)."""

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders filled (partly)."""

    def on_balance(self, balance: Balance) -> None:
        """The broker reported a position change in one of `symbols`."""

    def on_timer(self, name: str) -> None:
        """A timer set with `set_timer` fired."""

    def on_params(self) -> None:
        """`self.params` now holds a new table (SIGHUP reloaded config.toml; `check_params`
        passed it). Re-read what you took from it in `on_start`."""

    def on_trading_state(self, state: TradingStatus) -> None:
        """The engine's trading state changed (a halt, a resume, reducing-only); `state` is
        also `self.trading_state`. Shutdown is not a state: it is `on_stop`."""

    def on_condition(self, hit: ConditionHit) -> None:
        """A symbol entered (`hit.entered`, 편입) or left (이탈) a condition search this
        strategy watches (`conditions` in config, or `watch_condition`). The current members
        of a search come first, as entered hits (`hit.time` 0), also when it starts watching
        a search another strategy runs already."""

    def on_subscribed(self, symbol: str) -> None:
        """What `subscribe(symbol)` loads is there: the base price and limits, the best quote
        (`quote(symbol)`), and `history` bars of the `bars` intervals. Orders in `symbol` may
        go before this, but risk refuses a limit price without a base price (NO_PRICE)."""

    def on_vi(self, vi: ViEvent) -> None:
        """A volatility interruption (VI) started (`vi.active`) or ended on one of `symbols`
        (and the symbols subscribed at run time). While it holds, the symbol trades in a
        single-price auction: market orders are refused (VI_ACTIVE), limit orders join the
        auction. `self.vi_active(symbol)` says the same at any time."""

    def on_session(self, session: SessionChanged) -> None:
        """A venue's session changed, as the feed's session notice says (`session.exchange`
        KRX or NXT, `session.state` a SessionState). `self.session` is the default venue's
        session now."""

    def on_realtime(self, event: RealtimeEvent) -> None:
        """A push of one of the Kiwoom realtime types named in this strategy's `realtime`
        config, for one of the items named there: `event.type` the type code, `event.item`
        the item (a symbol, or a sector / index code), `event.values` keyed by the field
        names of Kiwoom's catalogue (e.g. "현재가"), the values as sent (strings)."""

    def on_stop(self) -> None:
        """Once, at shutdown, while the strategy is still running (not when the engine
        disables it). New orders are refused from then on."""

    # --- actions -------------------------------------------------------------------------

    def buy(
        self,
        symbol: str,
        qty: int,
        price: int | None = None,
        *,
        tif: TimeInForce | str | None = None,
        venue: str | None = None,
    ) -> Order:
        """Buy `qty` shares at `price` (None: a market order) on `venue` ("KRX", "NXT" or
        "SOR"; None: `[daemon] venue`). Returns the order at once, SUBMITTING, or REJECTED
        with a reason code when a risk check refused it. Raises ValueError for a programming
        error: qty <= 0, a price <= 0, a symbol neither in `symbols`, nor subscribed, nor
        held, an unknown tif ("day", "ioc", "fok") or venue."""
        return self._slot.order(Side.BUY, symbol, qty, price, tif, venue)

    def sell(
        self,
        symbol: str,
        qty: int,
        price: int | None = None,
        *,
        tif: TimeInForce | str | None = None,
        venue: str | None = None,
    ) -> Order:
        """Sell; as `buy`."""
        return self._slot.order(Side.SELL, symbol, qty, price, tif, venue)

    def cancel(self, order: Order) -> None:
        """Cancel what is open of `order` (never refused by risk). No-op once it ended.
        Raises ValueError for something that is not one of this strategy's orders (None)."""
        self._slot.cancel(order)

    def modify(self, order: Order, qty: int | None = None, price: int | None = None) -> None:
        """Move all that is open of a limit order to `price` (under a new broker number).
        `qty`, when given, must be the open quantity: to reduce an order, cancel it and place
        a new one. Raises ValueError for a market order, one not accepted or already ending,
        a price that is not an int > 0, or another qty."""
        self._slot.modify(order, qty, price)

    # --- reading ---------------------------------------------------------------------------

    def position(self, symbol: str) -> int:
        """This strategy's own position in `symbol` (shares, from its fills)."""
        return self._slot.position(symbol)

    def avg_price(self, symbol: str) -> int:
        """This strategy's average cost of the shares it holds in `symbol` (KRW, from its own
        fills; 0 when flat)."""
        return self._slot.avg_price(symbol)

    def unrealized_pnl(self, symbol: str) -> int:
        """This strategy's open PnL in `symbol` at the last trade price (KRW; 0 when flat or
        before the first trade), before the fees of selling."""
        return self._slot.unrealized_pnl(symbol)

    def realized_pnl(self) -> int:
        """This strategy's realised PnL today over all its symbols (KRW, after fees and tax)."""
        return self._slot.realized_pnl()

    @property
    def trading_state(self) -> TradingStatus:
        """The engine's trading state now (see `on_trading_state`)."""
        return self._slot.trading_state()

    def orders(self) -> list[Order]:
        """This strategy's open orders."""
        return self._slot.open_orders()

    def bars(self, symbol: str, interval: str) -> list[Bar]:
        """History loaded at start plus the bars built live since, oldest first."""
        return self._slot.bars(symbol, interval)

    def last_price(self, symbol: str) -> int | None:
        """The last trade price seen on the feed, or None before the first trade."""
        return self._slot.last_price(symbol)

    def quote(self, symbol: str) -> Quote | None:
        """The last best ask/bid known for `symbol` (the feed's quotes, or the best quote
        loaded by `subscribe`), None before any."""
        return self._slot.quote(symbol)

    # --- the run-time universe -----------------------------------------------------------

    def conditions(self) -> list[tuple[str, str]]:
        """The login's condition searches (조건검색, built in 영웅문) as (seq, name), in the
        broker's order; [] without a feed (a backtest)."""
        return self._slot.conditions()

    def watch_condition(self, name: str) -> str:
        """Start receiving `on_condition` for the condition `name` (its name, or "seq:N").
        Returns its seq. Shared with the other strategies watching it (one realtime search).
        Raises ValueError for a condition the login does not have, or when it would be one
        realtime condition more than `kiwoom.max_realtime_conditions` (default 10)."""
        return self._slot.watch_condition(name)

    def unwatch_condition(self, name: str) -> None:
        """Stop receiving its hits; the realtime search stops when no strategy watches it."""
        self._slot.unwatch_condition(name)

    def subscribe(self, symbol: str, data: tuple[str, ...] = DEFAULT_DATA) -> None:
        """Add `symbol` to this strategy's universe at run time: its events of `data`
        ("trades": on_trade and bars, "quotes": on_quote, "book": on_book) are routed here
        and orders in it are allowed. Returns at once; `on_subscribed(symbol)` follows once
        its base price, best quote and history are loaded. Registered once for every
        strategy (and `[daemon] symbols`), kept across reconnects and restarts. Raises
        ValueError for a malformed symbol or data kind."""
        self._slot.subscribe(symbol, data)

    def unsubscribe(self, symbol: str) -> None:
        """Take `symbol` out of the run-time universe (its registration goes when no one else
        wants it). A position it still holds may be sold. No-op if not subscribed."""
        self._slot.unsubscribe(symbol)

    def subscriptions(self) -> dict[str, tuple[str, ...]]:
        """The symbols subscribed at run time -> their data kinds."""
        return self._slot.subscriptions()

    def vi_active(self, symbol: str) -> bool:
        """True while a volatility interruption (VI) holds `symbol` on any venue (see
        `on_vi`)."""
        return self._slot.vi_active(symbol)

    @property
    def session(self) -> SessionState:
        """The session of the default venue (`[daemon] venue`) now: from the feed's session
        notices (`on_session`) when today has one, else from the KRX calendar (mode sim without a
        notice: REGULAR, the simulator's market never closes)."""
        return self._slot.session()

    # --- timers ----------------------------------------------------------------------------

    def set_timer(self, name: str, seconds: float, repeat: bool = True) -> None:
        """Call `on_timer(name)` after `seconds` of engine clock time (again every `seconds`
        when `repeat`). Setting a name again replaces that timer. Raises ValueError for a
        negative delay, or a repeating one below 0.01 s (10 ms): one-shots may be 0."""
        self._slot.set_timer(name, seconds, repeat)

    def cancel_timer(self, name: str) -> None:
        self._slot.cancel_timer(name)
