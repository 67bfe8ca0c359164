"""The event bus: every event enters here once, is stamped, and reaches its consumers.

Two kinds of consumer:
- in-loop handlers (the OMS, the portfolio, the strategies) are called directly, in the
  publishing call, with no queue hop: the hot path frame -> strategy -> order never awaits;
- slow consumers (the journal, the MQTT mirror) read their own bounded `ConsumerQueue`.

Events published while a handler runs (an order update raised by a strategy's buy) are not
dispatched re-entrantly: they wait in the bus's run queue and go out as soon as the current
event is done, account events (orders, fills, 00, 04, risk) ahead of any market data that is
waiting.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from enum import StrEnum
from typing import Any

import structlog

from engine.clock import Clock
from engine.events import ACCOUNT_EVENTS, Event, OrderBook, Quote

log = structlog.get_logger(__name__)

Handler = Callable[[Any], None]

_MAX_YIELDS = 4
"""Turns a slow consumer gives to scheduled order tasks before it goes on regardless."""

_setattr = object.__setattr__

MAX_ACCOUNT = 100_000
"""Account events a consumer queue holds by default: about 30 MB (an order update or fill is
200-300 bytes with its strings). The mirror's spool holds as many (`mqtt.spool_size`)."""
JOURNAL_MAX_ACCOUNT = 10_000
"""The journal's account lane: about 3 MB. A healthy journal writes thousands of events a
second, and orders are paced by the broker at a few a second, so a backlog this deep means
the journal has stopped keeping up (a stalled disk): trading halts there (`AccountOverflow.HALT`)."""


class AccountOverflow(StrEnum):
    """What a consumer queue does when its account lane reaches `max_account`."""

    DROP_OLDEST = "drop_oldest"
    """The oldest account event goes, counted in `account_dropped` and logged: for consumers
    that copy what the journal keeps (the MQTT mirror, the log), whose loss never stops
    trading."""
    HALT = "halt"
    """Nothing is dropped (the journal is the record of every order and fill). At the bound
    `on_full` is called once, and the owner halts trading, so the lane then grows only by
    what the broker still reports on orders already open; when the lane has drained to half
    the bound, `on_drained` is called (the owner lifts that halt)."""


QueueHook = Callable[["ConsumerQueue"], None]


class EventBus:
    """Numbers and stamps each event (`seq` 1, 2, ...; `ts_recv` ns from the clock) and
    dispatches it. Feed events come stamped (see `next_seq`); the rest are stamped here.

    Handlers run in subscription order. A handler that raises is logged with its traceback and
    counted in `handler_errors`; the event still reaches every other handler and queue.
    Strategies are isolated more strictly by their host (engine/strategy.py).
    """

    def __init__(self, clock: Clock) -> None:
        self._time_ns = clock.time_ns
        self._counter = itertools.count(1)
        self.next_seq: Callable[[], int] = self._counter.__next__
        """The sequence every event is numbered from; the feed's codec draws from it as it
        builds events, so they arrive stamped."""
        self.published = 0
        self._routes: dict[type, list[Handler]] = {}
        self._all: list[Handler] = []
        self._queues: list[ConsumerQueue] = []
        # type -> every handler for it (typed ones, then catch-all), rebuilt on subscribe: one
        # dict lookup per event on the hot path.
        self._table: dict[type, tuple[Handler, ...]] = {}
        # type -> how each queue that takes it (ConsumerQueue.types) takes it, rebuilt on
        # attach: market data, which the journal and the log never take, is not offered to
        # them at all, and a queue's policy for a type is chosen once, not per event.
        self._queue_table: dict[type, tuple[Handler, ...]] = {}
        self._urgent: deque[Event] = deque()
        self._market: deque[Event] = deque()
        self._dispatching = False
        self.handler_errors = 0
        self.current: Event | None = None
        """The event being handled right now, None between dispatches: lets the OMS tell
        which tick an order answers (the tick-to-order latency)."""
        self.turn_wanted = False
        """Set by `spawn_urgent`, read and cleared by the feed (`take_turn_wanted`)."""
        self._unstarted: set[asyncio.Task[None]] = set()
        """Order-path tasks (`spawn_urgent`) scheduled and not yet in their first step."""

    def continue_after(self, seq: int) -> None:
        """Number the next event `seq` + 1. A restarted engine goes on from its journal's
        highest number: the journal refuses an order update older than the one it holds."""
        self._counter = itertools.count(seq + 1)
        self.next_seq = self._counter.__next__

    def spawn_urgent(
        self,
        coro: Coroutine[Any, Any, None],
        name: str,
        on_done: Callable[[asyncio.Task[None]], object] | None = None,
    ) -> asyncio.Task[None]:
        """Run `coro` (an order's call, which runs to its POST in its first step) as a task
        that goes before the feed's next event and before the slow consumers' next batch
        (`ConsumerQueue.get`). `on_done(task)` is called when it is done."""
        task = asyncio.create_task(self._first_step(coro), name=name)
        self._unstarted.add(task)
        unstarted = self._unstarted

        def done(t: asyncio.Task[None]) -> None:
            # One callback, not one per concern: each is a turn of the loop's ready queue,
            # and every order pays them.
            unstarted.discard(t)  # also when cancelled unstarted
            # Cancelled before its first step, `coro` never ran: close it (no "never
            # awaited"); a coroutine that ran is closed already.
            coro.close()
            if on_done is not None:
                on_done(t)

        task.add_done_callback(done)
        self.turn_wanted = True
        return task

    async def _first_step(self, coro: Coroutine[Any, Any, None]) -> None:
        self._unstarted.discard(asyncio.current_task())
        await coro

    @property
    def urgent_waiting(self) -> bool:
        """An order-path task is scheduled and has not run yet."""
        return bool(self._unstarted)

    def take_turn_wanted(self) -> bool:
        """Whether a turn was asked for since the last call (and clear the request)."""
        if self.turn_wanted:
            self.turn_wanted = False
            return True
        return False

    def subscribe(self, event_type: type | Iterable[type], handler: Handler) -> None:
        """Call `handler(event)` in the loop for every event of `event_type` (or types)."""
        types = [event_type] if isinstance(event_type, type) else list(event_type)
        for t in types:
            self._routes.setdefault(t, []).append(handler)
        self._table.clear()

    def subscribe_all(self, handler: Handler) -> None:
        """Call `handler` for every event, after the typed handlers."""
        self._all.append(handler)
        self._table.clear()

    def attach(self, queue: ConsumerQueue) -> ConsumerQueue:
        """Feed `queue` with every event of its `types`; returns it."""
        self._queues.append(queue)
        self._queue_table.clear()
        queue.bus = self
        return queue

    def _takers_for(self, t: type) -> tuple[Handler, ...]:
        takers = self._queue_table[t] = tuple(
            q.taker(t) for q in self._queues if q.types is None or t in q.types
        )
        return takers

    @property
    def queues(self) -> tuple[ConsumerQueue, ...]:
        return tuple(self._queues)

    def _handlers(self, t: type) -> tuple[Handler, ...]:
        hs = self._table.get(t)
        if hs is None:
            hs = self._table[t] = (*self._routes.get(t, ()), *self._all)
        return hs

    def publish(self, ev: Event) -> None:
        """Stamp `ev` and dispatch it; never blocks, never raises for a handler's error.

        Called from the feed's receive loop and from the engine itself. Inside a dispatch the
        event waits its turn (account events first) instead of being handled re-entrantly.
        """
        self.published += 1
        if not ev.seq:
            # Built by the engine (or a feed without our sequence): stamp it here, once.
            _setattr(ev, "seq", self.next_seq())
            _setattr(ev, "ts_recv", self._time_ns())
        if self._dispatching:
            (self._urgent if isinstance(ev, ACCOUNT_EVENTS) else self._market).append(ev)
            return
        self._dispatching = True
        self.current = ev
        try:
            # _deliver, inlined: this is the path of every market event.
            for h in self._table.get(type(ev)) or self._handlers(type(ev)):
                try:
                    h(ev)
                except Exception:
                    self._handler_failed(h, ev)
            takers = self._queue_table.get(type(ev))
            for take in self._takers_for(type(ev)) if takers is None else takers:
                take(ev)
            if self._urgent or self._market:
                self._drain()
        finally:
            self._dispatching = False
            self.current = None

    def _drain(self) -> None:
        urgent, market = self._urgent, self._market
        while urgent or market:
            self._deliver(urgent.popleft() if urgent else market.popleft())

    def _deliver(self, ev: Event) -> None:
        self.current = ev
        for h in self._table.get(type(ev)) or self._handlers(type(ev)):
            try:
                h(ev)
            except Exception:
                self._handler_failed(h, ev)
        takers = self._queue_table.get(type(ev))
        for take in self._takers_for(type(ev)) if takers is None else takers:
            take(ev)

    def _handler_failed(self, h: Handler, ev: Event) -> None:
        self.handler_errors += 1
        log.exception(
            "bus_handler_failed",
            handler=getattr(h, "__qualname__", repr(h)),
            event_type=type(ev).__name__,
        )


class ConsumerQueue:
    """A slow consumer's bounded inbox, with an overflow policy per kind of event.

    - Account events (order updates, fills, 00, 04, risk decisions, feed state) are rare
      (orders are paced by the broker at a few per second) and losing one would lose money's
      trail, so they are never coalesced. Their lane holds `max_account` (default
      MAX_ACCOUNT, about 30 MB at 300 bytes an event) and `account_overflow` says what
      happens past it, per consumer: DROP_OLDEST for a copy (the mirror keeps its spool's
      bound and counts what goes, in `account_dropped`, so a broker outage never stops
      trading), HALT for the journal (nothing dropped; `on_full` halts trading, `on_drained`
      lifts it). `critical_depth` reports their backlog, `critical_high_water` its peak.
    - Quotes and books coalesce per symbol: only the newest matters to a consumer that is
      behind, and a full book is 40 numbers, so the cost stays at one event per symbol.
    - Trades and everything else keep the newest `max_market` in arrival order and drop the
      oldest, counted in `dropped`; a consumer that is behind loses history, never the present.

    Memory: about `max_market` events (a Trade is ~250 bytes), one book per symbol, and up to
    `max_account` account events (past it only under HALT, while trading is halted).
    """

    def __init__(
        self,
        name: str,
        *,
        max_market: int = 10_000,
        types: Iterable[type] | None = None,
        max_account: int = MAX_ACCOUNT,
        account_overflow: AccountOverflow = AccountOverflow.DROP_OLDEST,
        on_full: QueueHook | None = None,
        on_drained: QueueHook | None = None,
    ) -> None:
        if max_account < 2:
            raise ValueError("max_account must be >= 2")
        if max_market < 1:
            raise ValueError("max_market must be >= 1")
        self.name = name
        self.max_market = max_market
        self.max_account = max_account
        self.account_overflow = account_overflow
        self._on_full = on_full
        self._on_drained = on_drained
        self.account_full = False
        """True from the moment the account lane reached `max_account` (HALT) until it
        drained to half of it."""
        self.types: frozenset[type] | None = None if types is None else frozenset(types)
        """The event types this queue takes (None: all); the bus offers it no others."""
        self._critical: deque[Event] = deque()
        self._market: deque[Event] = deque(maxlen=max_market)
        self._latest: dict[tuple[type, str], Event] = {}
        self._wakeup = asyncio.Event()
        self.bus: EventBus | None = None
        """Set by EventBus.attach: whose order-path tasks this consumer lets go first."""
        self.offered = 0
        self.dropped = 0
        self.coalesced = 0
        self.critical_high_water = 0
        self.account_dropped = 0
        """Account events dropped at the bound (DROP_OLDEST only)."""
        self.account_over_bound = 0
        """Account events taken while the lane was past its bound (HALT only)."""

    def offer(self, ev: Event) -> None:
        """Take `ev` under this queue's policy. Never blocks."""
        t = type(ev)
        if self.types is not None and t not in self.types:
            return  # offered directly, not through a bus
        self.taker(t)(ev)

    def taker(self, t: type) -> Handler:
        """How this queue takes events of type `t`: the bus calls it for every such event,
        inside the feed's dispatch, so the policy is chosen here once per type."""
        if issubclass(t, ACCOUNT_EVENTS):
            return (
                self._keep_or_halt if self.account_overflow is AccountOverflow.HALT else self._keep
            )
        if issubclass(t, Quote | OrderBook):
            return self._coalesce
        return self._drop_oldest

    def _keep(self, ev: Event) -> None:
        self.offered += 1
        critical = self._critical
        if len(critical) >= self.max_account:
            critical.popleft()
            self.account_dropped += 1
            if self.account_dropped == 1 or self.account_dropped % 1000 == 0:
                log.warning(
                    "queue_account_events_dropped",
                    queue=self.name,
                    dropped=self.account_dropped,
                    bound=self.max_account,
                )
        critical.append(ev)
        if len(critical) > self.critical_high_water:
            self.critical_high_water = len(critical)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _keep_or_halt(self, ev: Event) -> None:
        self._keep_all(ev)
        depth = len(self._critical)
        if depth > self.max_account:
            self.account_over_bound += 1
        if depth >= self.max_account and not self.account_full:
            self.account_full = True
            log.error("queue_account_full", queue=self.name, depth=depth, bound=self.max_account)
            self._call(self._on_full, "on_full")

    def _keep_all(self, ev: Event) -> None:
        self.offered += 1
        critical = self._critical
        critical.append(ev)
        if len(critical) > self.critical_high_water:
            self.critical_high_water = len(critical)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _call(self, hook: QueueHook | None, name: str) -> None:
        """Run an owner's hook; one that raises is logged, never let into the dispatch."""
        if hook is None:
            return
        try:
            hook(self)
        except Exception:
            log.exception("queue_hook_failed", queue=self.name, hook=name)

    def _coalesce(self, ev: Event) -> None:
        self.offered += 1
        key = (type(ev), ev.symbol)  # type: ignore[union-attr]
        latest = self._latest
        if latest.pop(key, None) is not None:  # re-inserted: the dict keeps arrival order
            self.coalesced += 1
        latest[key] = ev
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _drop_oldest(self, ev: Event) -> None:
        self.offered += 1
        if len(self._market) == self.max_market:
            self.dropped += 1
        self._market.append(ev)
        if not self._wakeup.is_set():
            self._wakeup.set()

    @property
    def depth(self) -> int:
        return len(self._critical) + len(self._market) + len(self._latest)

    @property
    def critical_depth(self) -> int:
        return len(self._critical)

    def take(self, limit: int = 1_000) -> list[Event]:
        """Up to `limit` events without waiting: account events first, then trades in order,
        then the newest quote and book per symbol."""
        out: list[Event] = []
        for source in (self._critical, self._market):
            while source and len(out) < limit:
                out.append(source.popleft())
        if self.account_full and len(self._critical) <= self.max_account // 2:
            self.account_full = False
            log.warning("queue_account_drained", queue=self.name, depth=len(self._critical))
            self._call(self._on_drained, "on_drained")
        while self._latest and len(out) < limit:
            key = next(iter(self._latest))
            out.append(self._latest.pop(key))
        if not self.depth:
            self._wakeup.clear()
        return out

    async def get(self, limit: int = 1_000) -> list[Event]:
        """Wait until something is there, then `take(limit)`.

        A slow consumer's batch (a journal transaction, a thousand JSON payloads) must not go
        before an order's POST: after a wait the loop goes round once more (the dispatch that
        woke it may have started an order), and while an order's task is scheduled and not yet
        run, the consumer lets it go first (`yield_to_orders`).
        """
        if not self.depth:
            while not self.depth:
                self._wakeup.clear()
                await self._wakeup.wait()
            await asyncio.sleep(0)
        await self.yield_to_orders()
        return self.take(limit)

    async def yield_to_orders(self) -> None:
        """Let the order-path tasks that are scheduled run first (a few turns at most: each
        runs to its POST in its first turn)."""
        bus = self.bus
        for _ in range(_MAX_YIELDS):
            if bus is None or not bus.urgent_waiting:
                return
            await asyncio.sleep(0)

    def stats(self) -> dict[str, int]:
        return {
            "depth": self.depth,
            "critical_depth": self.critical_depth,
            "offered": self.offered,
            "dropped": self.dropped,
            "coalesced": self.coalesced,
            "account_dropped": self.account_dropped,
            "account_over_bound": self.account_over_bound,
            "account_full": int(self.account_full),
        }
