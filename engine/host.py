"""Running strategies: routing events to them, isolating their faults, their timers and bars.

Each strategy lives in a `StrategySlot`. A handler that raises anything (an `Exception`,
`SystemExit`, `CancelledError`, `GeneratorExit`, any `BaseException` but `KeyboardInterrupt`) is
logged with its traceback and counted; one that runs past its time budget is flagged; an order
the risk checks or the broker refuse is counted unless the trading state refused it. After
`max_errors` exceptions, `max_overruns` overruns in a row, or `max_rejections` refused orders
within `REJECTION_WINDOW_S`, the slot is disabled: it gets no more events, its timers stop, its
open orders are cancelled, and a `StrategyDisabled` event says why. The others go on.

Handlers run outside any task (`asyncio.current_task()` is None in them): the feed's task, in
which market data is dispatched, cannot be cancelled by a strategy. An `on_order` that an
action of a handler caused (a refused `buy`, a cancel going out) is delivered after that
handler returns, in a later turn of the loop: never re-entrantly, and a strategy that answers
every refusal with a new order cannot keep the loop from its other work.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import sys
import types
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from engine.bus import EventBus
from engine.clock import Clock, stopwatch_ns
from engine.events import (
    Balance,
    Bar,
    Exchange,
    Fill,
    OrderBook,
    OrderState,
    OrderUpdate,
    Quote,
    RealtimeEvent,
    SessionChanged,
    SessionState,
    Side,
    StrategyDisabled,
    TimeInForce,
    Trade,
    TradingState,
    TradingStateChanged,
    ViEvent,
)
from engine.history import HistoryPort, HistoryUnavailable
from engine.plugins import LoadedStrategy
from engine.strategy import Strategy, TradingStatus
from engine.trading.bars import BarBuilder
from engine.trading.oms import OrderManager
from engine.trading.orders import Order, OrderRequest
from engine.watchdog import HandlerStalled, StopStalled

if TYPE_CHECKING:
    from engine.universe.manager import Universe

log = structlog.get_logger(__name__)

Handler = Callable[..., None]

MIN_REPEAT_S = 0.01
"""The shortest period of a repeating timer: below it a timer is a busy loop on the engine's
core (a 1 ns timer spun one at 100 %). One-shot timers may be any delay >= 0."""

REJECTION_WINDOW_S = 60.0
"""The window `max_rejections` counts refused orders in (engine clock, monotonic)."""

STATE_REASONS = frozenset(
    {
        "HALTED",
        "STOPPING",
        "REDUCING_ONLY",
        "RECONCILING",
        "FEED_DOWN",
        "UNKNOWN_PENDING",
        "DAILY_LOSS",
        "SESSION_CLOSED",
        "VI_ACTIVE",
        "JOURNAL",
        "NOT_AT_BROKER",
    }
)
"""Refusals the trading state caused, not the strategy: they never count against it, so that
a halt (or a reconnect, or the shutdown) never disables a strategy."""

STATE_REFUSALS_PER_S = 20
"""Past this many refusals by the trading state within a second, a strategy's `on_order` for
the next such refusal waits `STATE_REFUSAL_PAUSE_S`: a strategy that answers each refusal
with a new order during a halt is paced (10 orders/s) instead of filling memory and the log
(1,200 refusals/s and 1 MB/s of RSS without it)."""
STATE_REFUSAL_PAUSE_S = 0.1


def _handler_name(fn: Handler) -> str:
    return getattr(fn, "__name__", "?")


KIND_HANDLERS: Mapping[str, str] = types.MappingProxyType(
    {
        "on_trade": "trades",
        "on_bar": "trades",
        "on_quote": "quotes",
        "on_book": "book",
        "on_balance": "",
        "on_vi": "",
    }
)
"""Which data kind of a run-time subscription each routed handler needs ("" any)."""

Call = tuple["StrategySlot", str, int]
"""The handler call running now: (slot, handler name, started_ns by `stopwatch_ns`). A new
tuple per call, so that the stall watchdog's thread (engine/watchdog.py), which only reads
`StrategyHost.current`, can tell one call from the next by identity. HandlerStalled, what the
watchdog raises into a stalled handler, is a strategy fault like any other BaseException."""


class StrategySlot:
    """One strategy: its context (what `Strategy` reads and calls) and its health."""

    def __init__(self, host: StrategyHost, loaded: LoadedStrategy) -> None:
        cfg = loaded.cfg
        self.host = host
        self.loaded = loaded
        self.name = cfg.name
        self.params: Mapping[str, Any] = _read_only(cfg.params)
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
        self.rejections = 0
        self._rejected_at: deque[float] = deque()
        self._state_refused_at: deque[float] = deque()
        self.calls = 0
        self.slowest_ms = 0.0
        self.max_errors = cfg.max_errors
        self.max_overruns = cfg.max_overruns
        self.max_rejections = cfg.max_rejections
        self.budget_ns = int(cfg.budget_ms * 1_000_000)
        self.deferred = 0
        """Calls of this slot waiting in the host's deferred queue (see `StrategyHost.defer`)."""
        self.watching: dict[str, str] = {}
        """Condition seq -> name, of the realtime condition searches it watches."""
        self.subs: dict[str, frozenset[str]] = {}
        """Symbols it subscribed to at run time -> their data kinds (engine/universe)."""
        self._timers: dict[str, asyncio.Task[None]] = {}

    # --- called by the engine ------------------------------------------------------------

    def call(self, fn: Handler, *args: Any) -> None:
        """Run one handler with the slot's isolation: never raises (but KeyboardInterrupt),
        never blocks on purpose."""
        if not self.enabled:
            return
        host = self.host
        self.calls += 1
        name = _handler_name(fn)
        outer = host.current  # None but in the engine's own tests: calls never nest
        host.call_seq += 1
        task = host.detach_task()
        started = stopwatch_ns()
        host.current = (self, name, started)
        try:
            fn(*args)
            host.current = outer
        except KeyboardInterrupt:
            host.current = outer
            raise
        except BaseException:
            # First, before anything that could take the stall watchdog's next raise.
            host.current = outer
            self.failed(name)
        finally:
            host.current = outer
            host.attach_task(task)
            self.timed(stopwatch_ns() - started, name)

    def failed(self, handler: str) -> None:
        """`handler` raised (call from its `except` block): log the traceback, count, maybe
        disable."""
        self.errors += 1
        exc = sys.exception()
        self.log.error(
            "strategy_handler_failed", handler=handler, errors=self.errors, exc_info=True
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

    def timed(self, elapsed_ns: int, handler: str) -> None:
        """Account one call's time against the budget."""
        if elapsed_ns <= self.budget_ns:
            self.overruns_in_row = 0
            return
        self.overran(elapsed_ns, handler)

    def overran(self, elapsed_ns: int, handler: str) -> None:
        self.overruns += 1
        self.overruns_in_row += 1
        ms = elapsed_ns / 1e6
        self.slowest_ms = max(self.slowest_ms, ms)
        self.log.warning(
            "strategy_slow",
            handler=handler,
            elapsed_ms=round(ms, 3),
            budget_ms=self.budget_ns / 1e6,
            in_a_row=self.overruns_in_row,
        )
        if self.enabled and self.overruns_in_row >= self.max_overruns:
            self.disable("too_slow")

    def rejected(self, reason: str) -> None:
        """One of its orders was refused for `reason` (not the trading state's): count it in
        the window, and disable the strategy past `max_rejections` there."""
        now = self.clock.monotonic()
        window = self._rejected_at
        window.append(now)
        while window and window[0] <= now - REJECTION_WINDOW_S:
            window.popleft()
        self.rejections += 1
        if self.enabled and len(window) > self.max_rejections:
            self.disable("too_many_rejections", last_reason=reason)

    def state_refused(self) -> bool:
        """One of its orders was refused by the trading state: True when that happened more
        than `STATE_REFUSALS_PER_S` times within the last second (pace it)."""
        now = self.clock.monotonic()
        window = self._state_refused_at
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        return len(window) > STATE_REFUSALS_PER_S

    def disable(self, reason: str, **detail: Any) -> None:
        if not self.enabled:
            return
        self.enabled = False
        self.disabled_reason = reason
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        self.log.error(
            "strategy_disabled",
            reason=reason,
            errors=self.errors,
            overruns=self.overruns,
            rejections=self.rejections,
            **detail,
        )
        for order in self.host.oms.open_orders(self.name):
            self.host.oms.cancel(order)
        if self.host.universe is not None:
            self.host.universe.release(self)
        self.host.bus.publish(StrategyDisabled(self.name, reason, self.errors, self.overruns))

    # --- what Strategy calls --------------------------------------------------------------

    def order(
        self,
        side: Side,
        symbol: str,
        qty: int,
        price: int | None,
        tif: TimeInForce | str | None,
        venue: Exchange | str | None = None,
    ) -> Order:
        if symbol not in self._symbols and symbol not in self.subs and not self.position(symbol):
            raise ValueError(
                f"{self.name}: {symbol!r} is not one of this strategy's symbols "
                "(configured, subscribed, or held)"
            )
        if type(qty) is not int or qty <= 0:
            raise ValueError(f"{self.name}: qty must be an int > 0, got {qty!r}")
        if price is not None and (type(price) is not int or price <= 0):
            raise ValueError(f"{self.name}: price must be an int > 0 or None, got {price!r}")
        try:
            tif_ = TimeInForce.DAY if tif is None else TimeInForce(tif)
        except ValueError:
            raise ValueError(f"{self.name}: tif must be day, ioc or fok, got {tif!r}") from None
        if venue is None:
            venue_ = self.host.default_venue
        else:
            try:
                venue_ = Exchange(venue)
            except ValueError:
                raise ValueError(
                    f"{self.name}: venue must be KRX, NXT or SOR, got {venue!r}"
                ) from None
        if not self.enabled:
            raise ValueError(f"{self.name}: disabled ({self.disabled_reason})")
        host = self.host
        published = host.bus.published
        order = host.oms.submit(OrderRequest(symbol, side, qty, price, tif_, venue_), self.name)
        host.acted(order, published)
        return order

    def _own(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise ValueError(f"{self.name}: expected an Order, got {order!r}")
        if order.strategy != self.name:
            raise ValueError(f"{self.name}: order {order.client_id} is not this strategy's")

    def cancel(self, order: Order) -> None:
        self._own(order)
        host = self.host
        published = host.bus.published
        host.oms.cancel(order)
        host.acted(order, published)

    def modify(self, order: Order, qty: int | None, price: int | None) -> None:
        self._own(order)
        host = self.host
        published = host.bus.published
        host.oms.modify(order, qty, price)
        host.acted(order, published)

    def position(self, symbol: str) -> int:
        return self.host.oms.portfolio.strategy_qty(self.name, symbol)

    def _book(self, symbol: str) -> Any:
        self._symbol(symbol)
        return self.host.oms.portfolio.by_strategy.get(self.name, {}).get(symbol)

    def _symbol(self, symbol: str) -> None:
        if symbol not in self._symbols and symbol not in self.subs and not self.position(symbol):
            raise ValueError(f"{self.name}: {symbol!r} is not one of this strategy's symbols")

    def avg_price(self, symbol: str) -> int:
        pos = self._book(symbol)
        return int(pos.avg_price) if pos is not None else 0

    def unrealized_pnl(self, symbol: str) -> int:
        pos = self._book(symbol)
        if pos is None:
            return 0
        return int(pos.unrealized(self.host.oms.portfolio.last.get(symbol)))

    def realized_pnl(self) -> int:
        self.host.oms.risk.roll_day()  # past midnight: today's, not yesterday's
        mine = self.host.oms.portfolio.by_strategy.get(self.name, {})
        return sum(p.realized for p in mine.values())

    def trading_state(self) -> TradingStatus:
        return self.host.trading_status()

    def open_orders(self) -> list[Order]:
        return self.host.oms.open_orders(self.name)

    def bars(self, symbol: str, interval: str) -> list[Bar]:
        builder = self.host.builders.get((symbol, interval))
        if builder is None:
            raise ValueError(f"{self.name}: no {interval} bars for {symbol} (see `bars` in config)")
        return builder.bars()

    def last_price(self, symbol: str) -> int | None:
        return self.host.oms.portfolio.last.get(symbol)

    def quote(self, symbol: str) -> Quote | None:
        return self.host.quotes.get(symbol)

    def _universe(self) -> Universe:
        universe = self.host.universe
        if universe is None:
            raise ValueError(
                f"{self.name}: no run-time universe here: conditions and run-time "
                "subscriptions need the daemon or a backtest"
            )
        return universe

    def conditions(self) -> list[tuple[str, str]]:
        universe = self.host.universe
        return universe.conditions() if universe is not None else []

    def watch_condition(self, ref: str) -> str:
        self._live()
        return self._universe().watch(self, ref)

    def unwatch_condition(self, ref: str) -> None:
        self._universe().unwatch(self, ref)

    def subscribe(self, symbol: str, data: Any) -> None:
        self._live()
        self._universe().subscribe(self, symbol, data)

    def unsubscribe(self, symbol: str) -> None:
        self._universe().unsubscribe(self, symbol)

    def subscriptions(self) -> dict[str, tuple[str, ...]]:
        return {sym: tuple(sorted(k)) for sym, k in self.subs.items()}

    def _live(self) -> None:
        if not self.enabled:
            raise ValueError(f"{self.name}: disabled ({self.disabled_reason})")

    def vi_active(self, symbol: str) -> bool:
        return self.host.oms.risk.market.vi_active(symbol)

    def session(self) -> SessionState:
        return self.host.oms.risk.market.session(self.host.default_venue)

    def set_timer(self, name: str, seconds: float, repeat: bool) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not seconds >= 0  # also refuses nan
            or seconds == float("inf")
        ):
            raise ValueError(f"{self.name}: timer seconds must be a number >= 0, got {seconds!r}")
        if repeat and seconds < MIN_REPEAT_S:
            raise ValueError(
                f"{self.name}: a repeating timer's period must be >= {MIN_REPEAT_S} s, "
                f"got {seconds!r} (use repeat=False for a one-shot)"
            )
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
        self.params = _read_only(params)
        if self.instance is not None:
            self.instance.params = self.params
            self.call(self.instance.on_params)

    def stop_timers(self) -> None:
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "running" if self.enabled else f"disabled: {self.disabled_reason}",
            "symbols": list(self.symbols),
            "subscribed": sorted(self.subs),
            "conditions": [f"{name} (seq:{seq})" for seq, name in self.watching.items()],
            "calls": self.calls,
            "errors": self.errors,
            "overruns": self.overruns,
            "rejections": self.rejections,
            "slowest_ms": round(self.slowest_ms, 3),
            "open_orders": len(self.open_orders()),
        }


def _read_only(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """`params` as the strategy sees it: read-only, also when the config gave none."""
    if isinstance(params, types.MappingProxyType):
        return params
    return types.MappingProxyType(dict(params))


Route = tuple[tuple[StrategySlot, Handler, str], ...]


def dispatch(host: StrategyHost, route: Route, ev: Any) -> None:
    """`slot.call(fn, ev)` for each (slot, fn) of `route`, with the same isolation and time
    accounting, but timed with n + 1 counter reads instead of 2n: the hot path of market data
    to several strategies. A slow path (a traceback or a warning logged) reads the counter
    again, so the time it took counts against the slot that caused it and no other."""
    now = stopwatch_ns
    outer = host.current  # None but in the engine's own tests: calls never nest
    tasks, loop = host._tasks, host._loop
    if tasks is not None and loop is not None:
        task = tasks.pop(loop, None)  # `detach_task`, inlined: the path of every tick
    else:
        tasks = None
        task = host.detach_task()
    try:
        t0 = now()
        for slot, fn, name in route:
            if not slot.enabled:
                continue
            slot.calls += 1
            host.call_seq += 1
            host.current = (slot, name, t0)
            try:
                fn(ev)
                host.current = outer
            except KeyboardInterrupt:
                raise
            except BaseException:
                host.current = outer  # first: see StrategySlot.call
                slot.failed(name)
            t1 = now()
            if t1 - t0 > slot.budget_ns:
                slot.overran(t1 - t0, name)
                t1 = now()
            elif slot.overruns_in_row:
                slot.overruns_in_row = 0
            t0 = t1
    finally:
        host.current = outer
        if tasks is not None:
            if task is not None:
                tasks[loop] = task  # `attach_task`, inlined
        else:
            host.attach_task(task)


def _overrides(inst: Strategy, name: str) -> Handler | None:
    """The bound handler when the strategy overrides it, else None (no call at all)."""
    if getattr(type(inst), name) is getattr(Strategy, name):
        return None
    fn: Handler = getattr(inst, name)
    return fn


def _task_registry() -> dict[Any, Any] | None:
    """CPython's map of each loop to its current task, when it is a plain dict (3.11 to
    3.13): taking the feed's task out of it while a handler runs costs two dict operations.
    None elsewhere: then a cancel of the current task is found and undone after the call."""
    registry = getattr(asyncio.tasks, "_current_tasks", None)
    return registry if type(registry) is dict else None


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
        every call, read by the watchdog's thread (engine/watchdog.py). One tuple swap, so a
        reader sees a whole record or None."""
        self.slots = [StrategySlot(self, ls) for ls in loaded]
        self.by_name = {s.name: s for s in self.slots}
        self.builders: dict[tuple[str, str], BarBuilder] = {}
        self._bars_by_symbol: dict[str, list[BarBuilder]] = {}
        # handler name -> symbol -> the (slot, bound handler, name) to call, in slot order
        self._routes: dict[str, dict[str, Route]] = {
            k: {} for k in ("on_trade", "on_quote", "on_book", "on_balance", "on_bar", "on_vi")
        }
        # realtime type -> the (slot, bound on_realtime, the items it named) to call
        self._realtime: dict[str, list[tuple[StrategySlot, Handler, frozenset[str]]]] = {}
        self.default_venue = Exchange.KRX
        """Where an order goes when the strategy names no venue (`[daemon] venue`)."""
        self._trade_routes = self._routes["on_trade"]
        self._bar_routes: dict[tuple[str, str], tuple[Route, Route]] = {}
        """(symbol, interval) -> (its on_bar route, the part of it that takes the interval)."""
        self.started = False
        self.call_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pacing: set[asyncio.Task[None]] = set()
        """on_order calls held back by STATE_REFUSAL_PAUSE_S (kept so they are not collected)."""
        self._tasks = _task_registry()
        self._deferred: deque[tuple[StrategySlot, Handler, Any]] = deque()
        self._deferred_handle: asyncio.Handle | None = None
        self._caused: dict[str, OrderState] = {}
        """Client id -> the state an action of a handler moved it to, while that update waits
        in the bus's queue: its `on_order` is deferred (see `acted`)."""
        self.state = TradingStatus(TradingState.ACTIVE, ())
        self.universe: Universe | None = None
        """Conditions and run-time subscriptions (engine/universe): the Trader's, or the
        backtest's over the history store; None when driven by hand (unit tests)."""
        self.quotes: dict[str, Quote] = {}
        """The last best ask/bid by symbol: the feed's quotes, or the subscribe-time load."""
        self.seeded: set[tuple[str, str]] = set()
        """(symbol, interval) whose history was loaded."""
        self._bar_clock: asyncio.Task[None] | None = None
        self._bar_opened = asyncio.Event()

    # --- isolation plumbing ----------------------------------------------------------------

    def detach_task(self) -> Any:
        """Take the running task out of asyncio's registry for a handler call (returns it, for
        `attach_task`): `asyncio.current_task()` is then None in the handler, so a strategy
        cannot cancel the feed's task (on 3.11, `uncancel` cannot undo a cancel of a running
        task: its next await raises CancelledError all the same)."""
        tasks, loop = self._tasks, self._loop
        if tasks is None or loop is None:
            task = asyncio.current_task() if loop is not None else None
            return (task, task.cancelling()) if task is not None else None
        return tasks.pop(loop, None)

    def attach_task(self, task: Any) -> None:
        tasks, loop = self._tasks, self._loop
        if tasks is None or loop is None:
            if task is not None and task[0].cancelling() > task[1]:
                task[0].uncancel()  # 3.13+: also drops the pending CancelledError
                log.error("strategy_cancelled_the_engines_task", task=task[0].get_name())
            return
        if task is not None:
            tasks[loop] = task

    def acted(self, order: Order, published: int) -> None:
        """A handler's action (buy, sell, cancel, modify) on `order` is done. When it
        published an update that the bus holds for after the current dispatch, note it, so
        that its `on_order` is deferred to a later turn of the loop (`on_order_update`)."""
        if self.bus.published != published and self.bus.current is not None:
            self._caused[order.client_id] = order.state

    def defer(self, slot: StrategySlot, fn: Handler, arg: Any) -> None:
        """Call `fn(arg)` for `slot` in a later turn of the loop, after whatever was deferred
        before: never inside the handler whose action caused it, and the loop runs its other
        work (the feed, signals, the admin endpoint) between two rounds."""
        if self._loop is None:  # driven by hand, without a loop: nothing to yield to
            slot.call(fn, arg)
            return
        slot.deferred += 1
        self._deferred.append((slot, fn, arg))
        if self._deferred_handle is None:
            self._deferred_handle = self._loop.call_soon(self._run_deferred)

    def _run_deferred(self) -> None:
        batch, self._deferred = self._deferred, deque()
        self._deferred_handle = None
        self._caused.clear()  # what a round left unmatched is stale
        for slot, fn, arg in batch:
            slot.deferred -= 1
            slot.call(fn, arg)

    # --- life --------------------------------------------------------------------------------

    def instantiate(self) -> None:
        """Build each strategy object and its routes. A constructor that raises disables its
        slot (logged), the others go on."""
        for slot in self.slots:
            try:
                slot.instance = slot.loaded.cls(slot)
            except KeyboardInterrupt:
                raise
            except BaseException as e:
                slot.log.error(
                    "strategy_init_failed", error=f"{type(e).__name__}: {e}", exc_info=True
                )
                slot.enabled = False
                slot.disabled_reason = "init_failed"
                slot.errors += 1
                continue
            for handler, routes in self._routes.items():
                fn = _overrides(slot.instance, handler)
                if fn is not None:
                    for symbol in slot.symbols:
                        routes[symbol] = (*routes.get(symbol, ()), (slot, fn, handler))
            fn = _overrides(slot.instance, "on_realtime")
            if fn is not None:
                for sub in slot.loaded.cfg.realtime:
                    self._realtime.setdefault(sub.type, []).append((slot, fn, frozenset(sub.items)))
            for symbol in slot.symbols:
                for interval in slot.loaded.cfg.bars:
                    if (symbol, interval) not in self.builders:
                        b = BarBuilder(symbol, interval)
                        self.builders[(symbol, interval)] = b
                        self._bars_by_symbol.setdefault(symbol, []).append(b)

    def not_started(self) -> list[dict[str, str]]:
        """The strategies that could not start (their constructor raised): /healthz and
        `status` name them; the daemon runs on without them (degraded, not unhealthy)."""
        return [
            {"name": s.name, "reason": s.disabled_reason}
            for s in self.slots
            if s.disabled_reason == "init_failed"
        ]

    async def warm_up(self, history: HistoryPort) -> None:
        """Load `history` bars per symbol and interval from the history port before
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
            try:
                bars = await history.bars(symbol, interval, n)
            except HistoryUnavailable as e:
                log.warning("history_load_failed", symbol=symbol, interval=interval, error=str(e))
                continue
            builder = self.builders[(symbol, interval)]
            self.seeded.add((symbol, interval))
            kept = builder.seed(bars, self.clock.now())
            while len(builder.history) > n:
                builder.history.popleft()
            log.info("history_loaded", symbol=symbol, interval=interval, bars=min(kept, n))

    def start(self) -> None:
        """Subscribe to the bus and call every `on_start`."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # driven by hand, without a loop (unit tests)
            self._loop = None
        bus = self.bus
        bus.subscribe(Trade, self.on_trade)
        quote_route = self._route("on_quote")
        quotes = self.quotes

        def on_quote(q: Quote) -> None:
            quotes[q.symbol] = q
            quote_route(q)

        bus.subscribe(Quote, on_quote)
        bus.subscribe(OrderBook, self._route("on_book"))
        bus.subscribe(Balance, self._route("on_balance"))
        bus.subscribe(Bar, self.on_bar)
        bus.subscribe(OrderUpdate, self.on_order_update)
        bus.subscribe(Fill, self.on_fill)
        bus.subscribe(TradingStateChanged, self.on_trading_state)
        bus.subscribe(ViEvent, self._route("on_vi"))
        bus.subscribe(SessionChanged, self.on_session)
        bus.subscribe(RealtimeEvent, self.on_realtime)
        for slot in self.slots:
            if slot.instance is not None:
                slot.call(slot.instance.on_start)
        self.started = True
        self._start_bar_clock()

    def _start_bar_clock(self) -> None:
        if self._loop is not None and self.builders and self._bar_clock is None and self.started:
            self._bar_clock = self._loop.create_task(self._close_bars(), name="bar-clock")

    async def _close_bars(self) -> None:
        """Close bars on the clock at their end plus the grace (engine/trading/bars.py), also
        when no later print comes: the day's last bar closes that day. Sleeps on the clock
        only while a bar is open; otherwise until a trade opens one (`on_trade`)."""
        clock = self.clock
        while True:
            builders = list(self.builders.values())  # run-time subscriptions add builders
            dues = [t for b in builders if (t := b.closes_at) is not None]
            if not dues:
                self._bar_opened.clear()
                await self._bar_opened.wait()
                continue
            now = clock.now()
            await clock.sleep((min(dues) - now).total_seconds())
            now = clock.now()
            for b in builders:
                bar = b.close_due(now)
                if bar is not None:
                    self.bus.publish(bar)

    def stop(self) -> None:
        """Call every running strategy's `on_stop`, then disable them all. What was deferred
        and not yet delivered is dropped: `on_stop` is the last call."""
        self.started = False
        if self._deferred_handle is not None:
            self._deferred_handle.cancel()
            self._deferred_handle = None
        if self._bar_clock is not None:
            self._bar_clock.cancel()
            self._bar_clock = None
        for slot, _fn, _arg in self._deferred:
            slot.deferred -= 1
        self._deferred.clear()
        for slot in self.slots:
            slot.stop_timers()
            if slot.instance is not None and slot.enabled:
                slot.call(slot.instance.on_stop)
            slot.enabled = False
            slot.disabled_reason = slot.disabled_reason or "stopped"

    def trading_status(self) -> TradingStatus:
        risk = self.oms.risk
        active = risk.state is TradingState.ACTIVE
        reasons = () if active or not risk.state_reason else (risk.state_reason,)
        return TradingStatus(risk.state, reasons)

    # --- routing -------------------------------------------------------------------------

    def _deliver(self, slot: StrategySlot, fn: Handler, arg: Any) -> None:
        """Call now, unless a handler is running (the event was published from inside it) or
        the slot has calls waiting (they go first): then defer."""
        if self.current is not None or slot.deferred:
            self.defer(slot, fn, arg)
        else:
            slot.call(fn, arg)

    def deliver(self, slot: StrategySlot, fn: Handler, arg: Any, *, later: bool = False) -> None:
        """Call `fn(arg)` for `slot` with its isolation: in a later turn of the loop when
        `later` (or when a handler runs now), else now."""
        if later:
            self.defer(slot, fn, arg)
        else:
            self._deliver(slot, fn, arg)

    def route_symbol(self, slot: StrategySlot, symbol: str, kinds: frozenset[str]) -> None:
        """Route `symbol`'s events of `kinds` to `slot` (a run-time subscription), with bar
        builders for its `bars` intervals when it asked for trades."""
        self.unroute_symbol(slot, symbol)
        inst = slot.instance
        if inst is None:
            return
        for handler, routes in self._routes.items():
            need = KIND_HANDLERS[handler]
            if need and need not in kinds:
                continue
            fn = _overrides(inst, handler)
            entries = routes.get(symbol, ())
            if fn is not None and not any(e[0] is slot for e in entries):
                routes[symbol] = (*entries, (slot, fn, handler))
        if "trades" in kinds:
            for interval in slot.loaded.cfg.bars:
                if (symbol, interval) not in self.builders:
                    b = BarBuilder(symbol, interval)
                    self.builders[(symbol, interval)] = b
                    self._bars_by_symbol.setdefault(symbol, []).append(b)
            self._start_bar_clock()

    def unroute_symbol(self, slot: StrategySlot, symbol: str) -> None:
        """Stop routing `symbol` to `slot`, unless it is one of its configured symbols."""
        if symbol in slot.symbols:
            return
        for routes in self._routes.values():
            entries = routes.get(symbol)
            if entries and any(e[0] is slot for e in entries):
                kept = tuple(e for e in entries if e[0] is not slot)
                if kept:
                    routes[symbol] = kept
                else:
                    del routes[symbol]

    def _route(self, handler: str) -> Handler:
        routes = self._routes[handler]

        def route(ev: Any) -> None:
            to = routes.get(ev.symbol)
            if to:
                dispatch(self, to, ev)

        return route

    def on_trade(self, tr: Trade) -> None:
        builders = self._bars_by_symbol.get(tr.symbol)
        if builders:
            day = self.clock.now().date()
            for b in builders:
                bar = b.on_trade(tr, day)
                if bar is not None:
                    self.bus.publish(bar)
            if not self._bar_opened.is_set():
                self._bar_opened.set()  # the bar clock waits for an open bar
        to = self._trade_routes.get(tr.symbol)
        if to:
            dispatch(self, to, tr)

    def on_bar(self, bar: Bar) -> None:
        route = self._routes["on_bar"].get(bar.symbol)
        if not route:
            return
        key = (bar.symbol, bar.interval)
        made = self._bar_routes.get(key)
        if made is None or made[0] is not route:  # routes are replaced, never changed
            # Only the slots that asked for this interval.
            made = self._bar_routes[key] = (
                route,
                tuple(e for e in route if bar.interval in e[0].loaded.cfg.bars),
            )
        to = made[1]
        if self.current is None:
            for e in to:
                if e[0].deferred:
                    break
            else:
                dispatch(self, to, bar)  # `_deliver`'s call-now case for each: the usual bar
                return
        for slot, fn, _name in to:
            self._deliver(slot, fn, bar)

    def on_order_update(self, up: OrderUpdate) -> None:
        slot = self.by_name.get(up.strategy) if up.strategy else None
        if slot is None or slot.instance is None:
            return
        pace = False
        if up.state is OrderState.REJECTED and up.prev_state is not OrderState.REJECTED:
            if up.reason.partition(":")[0] not in STATE_REASONS:
                slot.rejected(up.reason)
            else:
                pace = slot.state_refused()
        order = self.oms.orders.get(up.client_id)
        if order is None:
            return
        if _overrides(slot.instance, "on_order") is None:
            # Nothing to call (and nothing to defer: a turn of the loop per update).
            self._caused.pop(up.client_id, None)
            return
        if pace and self._loop is not None:
            # A refused order ends it: nothing of this order can come after, so it may wait.
            self._caused.pop(up.client_id, None)
            self._paced(slot, slot.instance.on_order, order)
            return
        if self._caused.get(up.client_id) is up.state:
            del self._caused[up.client_id]
            self.defer(slot, slot.instance.on_order, order)
        else:
            self._deliver(slot, slot.instance.on_order, order)

    def _paced(self, slot: StrategySlot, fn: Handler, arg: Any) -> None:
        """`fn(arg)` for `slot` after STATE_REFUSAL_PAUSE_S on the engine's Clock (a
        backtest's simulated clock too, so its result never depends on the machine)."""
        assert self._loop is not None

        async def later() -> None:
            await self.clock.sleep(STATE_REFUSAL_PAUSE_S)
            slot.call(fn, arg)

        task = self._loop.create_task(later(), name=f"paced-{slot.name}")
        self._pacing.add(task)
        task.add_done_callback(self._pacing.discard)

    def on_fill(self, fill: Fill) -> None:
        slot = self.by_name.get(fill.strategy) if fill.strategy else None
        if slot is not None and slot.instance is not None:
            fn = _overrides(slot.instance, "on_fill")
            if fn is not None:
                self._deliver(slot, fn, fill)

    def on_trading_state(self, ev: TradingStateChanged) -> None:
        status = self.trading_status()
        for slot in self.slots:
            if slot.instance is not None and slot.enabled:
                fn = _overrides(slot.instance, "on_trading_state")
                if fn is not None:
                    self._deliver(slot, fn, status)

    def on_session(self, ev: SessionChanged) -> None:
        for slot in self.slots:
            if slot.instance is not None and slot.enabled:
                fn = _overrides(slot.instance, "on_session")
                if fn is not None:
                    self._deliver(slot, fn, ev)

    def on_realtime(self, ev: RealtimeEvent) -> None:
        """To the strategies that named `ev.type` in their `realtime` config for `ev.item`."""
        for slot, fn, items in self._realtime.get(ev.type, ()):
            if ev.item in items and slot.enabled:
                self._deliver(slot, fn, ev)
