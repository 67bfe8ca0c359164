"""Running strategies: routing events to them, isolating their faults, their timers and bars.

Each strategy lives in a `StrategySlot`. A handler that raises is logged with its traceback and
counted; one that runs past its time budget is flagged. After `max_errors` exceptions, or
`max_overruns` overruns in a row, the slot is disabled: it gets no more events, its timers
stop, its open orders are cancelled, and a `StrategyDisabled` event says why. The others go on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from engine.bus import EventBus
from engine.clock import Clock, stopwatch_ns
from engine.events import (
    Balance,
    Bar,
    Fill,
    OrderBook,
    OrderUpdate,
    Quote,
    Side,
    StrategyDisabled,
    TimeInForce,
    Trade,
)
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError
from engine.plugins import LoadedStrategy
from engine.strategy import Strategy
from engine.trading.bars import BarBuilder, parse_interval
from engine.trading.oms import OrderManager
from engine.trading.orders import Order, OrderRequest
from engine.watchdog import HandlerStalled, StopStalled

log = structlog.get_logger(__name__)

Handler = Callable[..., None]
"""A strategy handler: most take the event, on_start, on_stop and on_params nothing."""

_STRATEGY_FAULTS = (Exception, SystemExit, HandlerStalled)
"""What a strategy's code may raise and the engine survives: a plugin calling sys.exit() is a
crashing strategy, not a request to stop the daemon (KeyboardInterrupt still stops it).
HandlerStalled is what the watchdog (engine/watchdog.py) raises into a handler that stalls."""

Call = tuple["StrategySlot", Handler, int]
"""The handler call running now: (slot, handler, started_ns by `stopwatch_ns`). A new tuple
per call, so that the watchdog thread, which only reads `StrategyHost.current`, can tell one
call from the next by identity."""


class StrategySlot:
    """One strategy: its context (what `Strategy` reads and calls) and its health."""

    def __init__(self, host: StrategyHost, loaded: LoadedStrategy) -> None:
        cfg = loaded.cfg
        self.host = host
        self.loaded = loaded
        self.name = cfg.name
        self.params = cfg.params
        self.symbols = cfg.symbols
        self._symbols = frozenset(cfg.symbols)
        self.clock = host.clock
        self.log = structlog.get_logger("strategy").bind(strategy=cfg.name)
        self.instance: Strategy | None = None
        self.enabled = True
        self.disabled_reason = ""
        self.errors = 0
        self.overruns = 0
        self.overruns_in_row = 0
        self.calls = 0
        self.slowest_ms = 0.0
        self.max_errors = cfg.max_errors
        self.max_overruns = cfg.max_overruns
        self.budget_ns = int(cfg.budget_ms * 1_000_000)
        self._timers: dict[str, asyncio.Task[None]] = {}

    # --- called by the engine ------------------------------------------------------------

    def call(self, fn: Handler, arg: Any) -> None:
        """Run one handler with the slot's isolation: never raises, never blocks on purpose."""
        self._call(fn, (arg,))

    def call0(self, fn: Callable[[], None]) -> None:
        self._call(fn, ())

    def _call(self, fn: Handler, args: tuple[Any, ...]) -> None:
        if not self.enabled:
            return
        self.calls += 1
        host = self.host
        outer = host.current  # a handler may cause another's call (its order's on_order)
        started = stopwatch_ns()
        host.current = (self, fn, started)
        try:
            fn(*args)
            host.current = outer
        except _STRATEGY_FAULTS:
            # First thing, before any line that could take the watchdog's next raise.
            host.current = outer
            self.failed(fn)
        finally:
            host.current = outer
            self.timed(stopwatch_ns() - started, fn)

    def failed(self, fn: Handler) -> None:
        """`fn` raised (call from its `except` block): log the traceback, count, maybe
        disable."""
        self.errors += 1
        exc = sys.exception()
        self.log.exception(
            "strategy_handler_failed", handler=getattr(fn, "__name__", "?"), errors=self.errors
        )
        if isinstance(exc, StopStalled) or (
            isinstance(exc, HandlerStalled) and not self.host.started
        ):
            # Broken while the daemon stops: it gets no more calls; its orders are for
            # daemon.on_stop to keep or cancel.
            self.enabled = False
            self.disabled_reason = "stalled"
        elif isinstance(exc, HandlerStalled):
            # It ran past daemon.handler_stall_s: the next event would most likely do it again.
            self.disable("stalled")
        elif self.errors >= self.max_errors:
            self.disable("too_many_errors")

    def timed(self, elapsed_ns: int, fn: Handler) -> None:
        """Account one call's time against the budget."""
        if elapsed_ns <= self.budget_ns:
            self.overruns_in_row = 0
            return
        self.overran(elapsed_ns, fn)

    def overran(self, elapsed_ns: int, fn: Handler) -> None:
        self.overruns += 1
        self.overruns_in_row += 1
        ms = elapsed_ns / 1e6
        self.slowest_ms = max(self.slowest_ms, ms)
        self.log.warning(
            "strategy_slow",
            handler=getattr(fn, "__name__", "?"),
            elapsed_ms=round(ms, 3),
            budget_ms=self.budget_ns / 1e6,
            in_a_row=self.overruns_in_row,
        )
        if self.enabled and self.overruns_in_row >= self.max_overruns:
            self.disable("too_slow")

    def disable(self, reason: str) -> None:
        if not self.enabled:
            return
        self.enabled = False
        self.disabled_reason = reason
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        self.log.error(
            "strategy_disabled", reason=reason, errors=self.errors, overruns=self.overruns
        )
        for order in self.host.oms.open_orders(self.name):
            self.host.oms.cancel(order)
        self.host.bus.publish(StrategyDisabled(self.name, reason, self.errors, self.overruns))

    # --- what Strategy calls --------------------------------------------------------------

    def order(
        self, side: Side, symbol: str, qty: int, price: int | None, tif: TimeInForce | str | None
    ) -> Order:
        if symbol not in self._symbols:
            raise ValueError(f"{self.name}: {symbol!r} is not one of this strategy's symbols")
        if type(qty) is not int or qty <= 0:
            raise ValueError(f"{self.name}: qty must be an int > 0, got {qty!r}")
        if price is not None and (type(price) is not int or price <= 0):
            raise ValueError(f"{self.name}: price must be an int > 0 or None, got {price!r}")
        try:
            tif_ = TimeInForce.DAY if tif is None else TimeInForce(tif)
        except ValueError:
            raise ValueError(f"{self.name}: tif must be day, ioc or fok, got {tif!r}") from None
        if not self.enabled:
            raise ValueError(f"{self.name}: disabled ({self.disabled_reason})")
        return self.host.oms.submit(OrderRequest(symbol, side, qty, price, tif_), self.name)

    def _own(self, order: Order) -> None:
        if order.strategy != self.name:
            raise ValueError(f"{self.name}: order {order.client_id} is not this strategy's")

    def cancel(self, order: Order) -> None:
        self._own(order)
        self.host.oms.cancel(order)

    def modify(self, order: Order, qty: int | None, price: int | None) -> None:
        self._own(order)
        self.host.oms.modify(order, qty, price)

    def position(self, symbol: str) -> int:
        return self.host.oms.portfolio.strategy_qty(self.name, symbol)

    def open_orders(self) -> list[Order]:
        return self.host.oms.open_orders(self.name)

    def bars(self, symbol: str, interval: str) -> list[Bar]:
        builder = self.host.builders.get((symbol, interval))
        if builder is None:
            raise ValueError(f"{self.name}: no {interval} bars for {symbol} (see `bars` in config)")
        return builder.bars()

    def last_price(self, symbol: str) -> int | None:
        return self.host.oms.portfolio.last.get(symbol)

    def set_timer(self, name: str, seconds: float, repeat: bool) -> None:
        if not (isinstance(seconds, int | float) and seconds > 0):
            raise ValueError(f"{self.name}: timer seconds must be > 0, got {seconds!r}")
        self.cancel_timer(name)
        if self.enabled:
            self._timers[name] = asyncio.create_task(
                self._timer(name, float(seconds), repeat), name=f"timer-{self.name}-{name}"
            )

    def cancel_timer(self, name: str) -> None:
        task = self._timers.pop(name, None)
        if task is not None:
            task.cancel()

    async def _timer(self, name: str, seconds: float, repeat: bool) -> None:
        inst = self.instance
        assert inst is not None
        while True:
            await self.clock.sleep(seconds)
            if not repeat:
                self._timers.pop(name, None)
            self.call(inst.on_timer, name)
            if not repeat:
                return

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Swap in new `params` (already checked by the class's `check_params`) and tell the
        strategy (`on_params`), with the slot's usual isolation."""
        self.params = params
        if self.instance is not None:
            self.instance.params = params
            self.call0(self.instance.on_params)

    def stop_timers(self) -> None:
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "running" if self.enabled else f"disabled: {self.disabled_reason}",
            "symbols": list(self.symbols),
            "calls": self.calls,
            "errors": self.errors,
            "overruns": self.overruns,
            "slowest_ms": round(self.slowest_ms, 3),
            "open_orders": len(self.open_orders()),
        }


Route = tuple[tuple[StrategySlot, Handler], ...]


def dispatch(route: Route, ev: Any) -> None:
    """`slot.call(fn, ev)` for each (slot, fn) of `route`, with the same isolation and time
    accounting, but timed with n + 1 counter reads instead of 2n: the hot path of market data
    to several strategies. A slow path (a traceback or a warning logged) reads the counter
    again, so the time it took counts against the slot that caused it and no other."""
    now = stopwatch_ns
    host = route[0][0].host
    outer = host.current
    t0 = now()
    for slot, fn in route:
        if not slot.enabled:
            continue
        slot.calls += 1
        host.current = (slot, fn, t0)
        try:
            fn(ev)
        except _STRATEGY_FAULTS:
            host.current = outer
            slot.failed(fn)
        host.current = outer
        t1 = now()
        if t1 - t0 > slot.budget_ns:
            slot.overran(t1 - t0, fn)
            t1 = now()
        elif slot.overruns_in_row:
            slot.overruns_in_row = 0
        t0 = t1


def _overrides(inst: Strategy, name: str) -> Handler | None:
    """The bound handler when the strategy overrides it, else None (no call at all)."""
    if getattr(type(inst), name) is getattr(Strategy, name):
        return None
    fn: Handler = getattr(inst, name)
    return fn


class StrategyHost:
    """Every slot, and the routes from symbols and order ids to their handlers."""

    def __init__(
        self, bus: EventBus, oms: OrderManager, clock: Clock, loaded: list[LoadedStrategy]
    ) -> None:
        self.bus = bus
        self.oms = oms
        self.clock = clock
        self.current: Call | None = None
        """The strategy handler call running now, None between calls: set by the loop around
        every call, read by the watchdog's thread (engine/watchdog.py)."""
        self.slots = [StrategySlot(self, ls) for ls in loaded]
        self.by_name = {s.name: s for s in self.slots}
        self.builders: dict[tuple[str, str], BarBuilder] = {}
        self._bars_by_symbol: dict[str, list[BarBuilder]] = {}
        # handler name -> symbol -> the (slot, bound handler) pairs to call, in slot order
        self._routes: dict[str, dict[str, Route]] = {
            k: {} for k in ("on_trade", "on_quote", "on_book", "on_balance", "on_bar")
        }
        self._trade_routes = self._routes["on_trade"]
        self.started = False

    def instantiate(self) -> None:
        """Build each strategy object and its routes. A constructor that raises disables its
        slot (logged), the others go on."""
        for slot in self.slots:
            try:
                slot.instance = slot.loaded.cls(slot)
            except _STRATEGY_FAULTS:
                slot.log.exception("strategy_init_failed")
                slot.enabled = False
                slot.disabled_reason = "init_failed"
                continue
            for handler, routes in self._routes.items():
                fn = _overrides(slot.instance, handler)
                if fn is not None:
                    for symbol in slot.symbols:
                        routes[symbol] = (*routes.get(symbol, ()), (slot, fn))
            for symbol in slot.symbols:
                for interval in slot.loaded.cfg.bars:
                    if (symbol, interval) not in self.builders:
                        b = BarBuilder(symbol, interval)
                        self.builders[(symbol, interval)] = b
                        self._bars_by_symbol.setdefault(symbol, []).append(b)

    async def warm_up(self, api: KiwoomApi) -> None:
        """Load `history` bars per symbol and interval (ka10080 minutes, ka10081 days) before
        `on_start`. A failed load is logged and the strategy starts with what there is."""
        wanted: dict[tuple[str, str], int] = {}
        for slot in self.slots:
            for symbol in slot.symbols:
                for interval in slot.loaded.cfg.bars:
                    key = (symbol, interval)
                    wanted[key] = max(wanted.get(key, 0), slot.loaded.cfg.history)
        for (symbol, interval), n in wanted.items():
            if n <= 0:
                continue
            minutes, unit = parse_interval(interval)
            try:
                if unit == "m":
                    candles = await api.minute_candles(
                        symbol, minutes, max_pages=max(1, n // 100 + 1)
                    )
                else:
                    candles = await api.daily_candles(
                        symbol, self.clock.now().date(), max_pages=max(1, n // 100 + 1)
                    )
            except KiwoomError as e:
                log.warning("history_load_failed", symbol=symbol, interval=interval, error=str(e))
                continue
            now = self.clock.now()
            builder = self.builders[(symbol, interval)]
            # Newest first from the broker; the open bar is dropped by seed, so ask one more.
            kept = builder.seed(candles[: n + 1], now)
            while len(builder.history) > n:
                builder.history.popleft()
            log.info("history_loaded", symbol=symbol, interval=interval, bars=min(kept, n))

    def start(self) -> None:
        """Subscribe to the bus and call every `on_start`."""
        bus = self.bus
        bus.subscribe(Trade, self.on_trade)
        bus.subscribe(Quote, self._route("on_quote"))
        bus.subscribe(OrderBook, self._route("on_book"))
        bus.subscribe(Balance, self._route("on_balance"))
        bus.subscribe(Bar, self.on_bar)
        bus.subscribe(OrderUpdate, self.on_order_update)
        bus.subscribe(Fill, self.on_fill)
        for slot in self.slots:
            if slot.instance is not None:
                slot.call0(slot.instance.on_start)
        self.started = True

    def stop(self) -> None:
        self.started = False
        for slot in self.slots:
            slot.stop_timers()
            if slot.instance is not None and slot.enabled:
                slot.call0(slot.instance.on_stop)
            slot.enabled = False
            slot.disabled_reason = slot.disabled_reason or "stopped"

    def _route(self, handler: str) -> Handler:
        routes = self._routes[handler]

        def route(ev: Any) -> None:
            to = routes.get(ev.symbol)
            if to:
                dispatch(to, ev)

        return route

    def on_trade(self, tr: Trade) -> None:
        builders = self._bars_by_symbol.get(tr.symbol)
        if builders:
            day = self.clock.now().date()
            for b in builders:
                bar = b.on_trade(tr, day)
                if bar is not None:
                    self.bus.publish(bar)
        to = self._trade_routes.get(tr.symbol)
        if to:
            dispatch(to, tr)

    def on_bar(self, bar: Bar) -> None:
        for slot, fn in self._routes["on_bar"].get(bar.symbol, ()):
            if bar.interval in slot.loaded.cfg.bars:  # only the intervals it asked for
                slot.call(fn, bar)

    def on_order_update(self, up: OrderUpdate) -> None:
        slot = self.by_name.get(up.strategy) if up.strategy else None
        if slot is None or slot.instance is None:
            return
        order = self.oms.orders.get(up.client_id)
        if order is not None:
            slot.call(slot.instance.on_order, order)

    def on_fill(self, fill: Fill) -> None:
        slot = self.by_name.get(fill.strategy) if fill.strategy else None
        if slot is not None and slot.instance is not None:
            slot.call(slot.instance.on_fill, fill)
