"""`Universe`: which strategy watches which condition search and which symbols it subscribed
to while running; routes condition hits, registers symbols once for all their owners, loads
what a new symbol needs (base price, limits, best quote, bar history) off the hot path, and
journals the run-time subscriptions so that a restart restores them.

Everything a strategy calls here returns at once; the feed's requests run in order on one
task (`_ops`), the REST loads on another (`_loads`, one at a time, so a burst of 편입 hits is
paced by Kiwoom's query limits through the REST client's governor).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from engine.events import ConditionHit, Reconnected, StockInfo
from engine.history import HistoryPort, HistoryUnavailable
from engine.universe.port import FeedUnavailable, UniverseFeed
from engine.universe.rules import data_kinds, limit_message, over_limit, ref_problem

if TYPE_CHECKING:
    from engine.host import StrategyHost, StrategySlot

log = structlog.get_logger(__name__)

JOURNAL_KEY = "universe"
"""The journal's meta key holding the run-time subscriptions: {strategy: {symbol: [kinds]}}."""
SYMBOL = re.compile(r"[0-9A-Z]{6}")

MAX_PENDING_CHANGES = 2_000
"""Subscription changes (subscribe/unsubscribe) waiting for the feed, all strategies
together: past it, `subscribe`/`unsubscribe` raise in the strategy (an error it is counted
for), so a strategy that toggles a symbol in a loop cannot grow the queue without bound."""

Op = Callable[[], Awaitable[None]]


class MetaStore(Protocol):
    """Where the run-time subscriptions are kept (the journal's meta table)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


class Universe:
    """See the module docstring. Built by the Trader (and the backtest); `attach` gives it the
    feed (without one the strategy calls here raise ValueError)."""

    def __init__(
        self,
        host: StrategyHost,
        *,
        base: dict[str, int],
        store: MetaStore | None = None,
        history: HistoryPort | None = None,
    ) -> None:
        self.host = host
        self.base = base
        """Base prices by symbol (the portfolio's, which risk reads): filled on subscribe."""
        self.store = store
        self.history = history
        self.feed: UniverseFeed | None = None
        self.limits: dict[str, tuple[int, int]] = {}
        """(lower, upper) daily limits by symbol, from the subscribe-time load."""
        self.watchers: dict[str, list[StrategySlot]] = {}
        """Condition seq -> the slots watching it, in the order they started to."""
        self._searched: set[str] = set()
        """Seqs whose realtime search was asked for and not cleared."""
        self._views: dict[tuple[str, str], set[str]] = {}
        """(strategy, seq) -> the members that strategy was told of: a hit that would not
        change its view is not delivered (a late watcher is never told twice)."""
        self._ops: asyncio.Queue[Op] = asyncio.Queue()
        self._loads: asyncio.Queue[Op] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.loads_done = 0
        self.loads_failed = 0

    # --- life ------------------------------------------------------------------------------

    def attach(self, feed: UniverseFeed) -> None:
        self.feed = feed

    async def prepare(self) -> None:
        """Before the strategies start: read the login's conditions, resolve each strategy's
        `conditions` (a strategy naming one the login lacks, or one past the realtime limit,
        is disabled with the reason), and restore the journaled run-time subscriptions. The
        searches and registrations go out once `start` runs."""
        host = self.host
        feed = self.feed
        wanted = [s for s in host.slots if s.enabled and s.loaded.cfg.conditions]
        if feed is not None:
            try:
                await feed.list_conditions()
            except Exception as e:
                log.error("condition_list_failed", error=str(e))
        for slot in wanted:
            self._configured_conditions(slot)
        self._restore()
        host.bus.subscribe(ConditionHit, self.on_hit)
        host.bus.subscribe(Reconnected, self._reconnected)
        host.bus.subscribe(StockInfo, self._stock_info)

    def _configured_conditions(self, slot: StrategySlot) -> None:
        key = slot.loaded.key
        if self.feed is None:
            slot.disable("no_condition_search", why="condition search needs the realtime feed")
            return
        seqs: dict[str, str] = {}
        for j, ref in enumerate(slot.loaded.cfg.conditions):
            try:
                seq, name = self.feed.resolve(ref)
            except ValueError as e:
                slot.disable(f"unknown_condition: {key}.conditions[{j}]: {e}")
                return
            seqs[seq] = name
        refused = over_limit(self._in_use(), seqs, self.feed.max_realtime)
        if refused:
            slot.disable(
                f"condition_limit: {key}.conditions: "
                + limit_message(len(self._in_use()), self.feed.max_realtime)
            )
            return
        for seq, name in seqs.items():
            self._add_watcher(slot, seq, name)

    def start(self) -> None:
        """Run the queued searches, registrations and loads (after every `on_start`)."""
        self._tasks = [
            asyncio.create_task(self._work(self._ops), name="universe-feed"),
            asyncio.create_task(self._work(self._loads), name="universe-loads"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _work(self, queue: asyncio.Queue[Op]) -> None:
        while True:
            op = await queue.get()
            try:
                await op()
            except Exception:
                log.exception("universe_op_failed")

    # --- conditions --------------------------------------------------------------------------

    def conditions(self) -> list[tuple[str, str]]:
        return self.feed.condition_list() if self.feed is not None else []

    def _in_use(self) -> list[str]:
        return [seq for seq, slots in self.watchers.items() if slots]

    def watch(self, slot: StrategySlot, ref: str) -> str:
        problem = ref_problem(ref)
        if problem is not None:
            raise ValueError(f"{slot.name}: the condition {problem}")
        feed = self._need_feed(slot)
        seq, name = feed.resolve(ref)
        if slot in self.watchers.get(seq, ()):
            return seq
        if over_limit(self._in_use(), [seq], feed.max_realtime):
            raise ValueError(
                f"{slot.name}: watch_condition({ref!r}) refused: "
                + limit_message(len(self._in_use()), feed.max_realtime)
            )
        self._add_watcher(slot, seq, name)
        return seq

    def _add_watcher(self, slot: StrategySlot, seq: str, name: str) -> None:
        self.watchers.setdefault(seq, []).append(slot)
        slot.watching[seq] = name
        self._views[(slot.name, seq)] = set()
        if seq not in self._searched:
            self._searched.add(seq)
            self._ops.put_nowait(lambda: self._start_search(seq))
            return
        # Already running: this watcher is told the current members now, before any push.
        members = self.feed.members(seq) if self.feed is not None else None
        for symbol in members or ():
            self._tell(slot, ConditionHit(symbol, seq, name, True, 0), made=True)

    def unwatch(self, slot: StrategySlot, ref: str) -> None:
        feed = self._need_feed(slot)
        try:
            seq, _name = feed.resolve(ref)
        except ValueError:
            # A condition deleted in the HTS meanwhile: find it by what the slot watches.
            seq = next((s for s, n in slot.watching.items() if ref in (n, f"seq:{s}")), "")
            if not seq:
                raise
        self._drop_watcher(slot, seq)

    def release(self, slot: StrategySlot) -> None:
        """`slot` is disabled: its searches go (when no one else watches them)."""
        for seq in list(slot.watching):
            self._drop_watcher(slot, seq)

    def _drop_watcher(self, slot: StrategySlot, seq: str) -> None:
        slots = self.watchers.get(seq, [])
        if slot not in slots:
            return
        slots.remove(slot)
        slot.watching.pop(seq, None)
        self._views.pop((slot.name, seq), None)
        if not slots:
            del self.watchers[seq]
            self._ops.put_nowait(lambda: self._clear(seq))

    async def _start_search(self, seq: str) -> None:
        feed = self.feed
        if feed is None or not self.watchers.get(seq):
            self._searched.discard(seq)
            return
        try:
            await feed.watch(seq)
        except Exception as e:
            transient = isinstance(e, FeedUnavailable)
            log.error(
                "condition_search_failed",
                seq=seq,
                error=f"{type(e).__name__}: {e}",
                strategies=[s.name for s in self.watchers.get(seq, ())],
                retry="after the reconnect" if transient else "no",
            )
            if transient:
                return  # `_reconnected` asks again
            self._searched.discard(seq)
            for slot in list(self.watchers.get(seq, ())):
                self._drop_watcher(slot, seq)
            return
        log.info(
            "condition_watched", seq=seq, strategies=[s.name for s in self.watchers.get(seq, ())]
        )

    async def _clear(self, seq: str) -> None:
        if self.watchers.get(seq) or self.feed is None:
            return  # watched again meanwhile
        self._searched.discard(seq)
        try:
            await self.feed.unwatch(seq)
        except Exception as e:
            log.warning("condition_clear_failed", seq=seq, error=str(e))

    def _stock_info(self, ev: StockInfo) -> None:
        """The broker's day parameters of a symbol (StockInfo) replace what a load found."""
        if ev.base_price > 0:
            self.base[ev.symbol] = ev.base_price
        if ev.upper_limit > 0:
            self.limits[ev.symbol] = (ev.lower_limit, ev.upper_limit)

    def _reconnected(self, _ev: Reconnected) -> None:
        feed = self.feed
        if feed is None:
            return
        for seq in list(self._searched):
            if feed.members(seq) is None and self.watchers.get(seq):
                self._ops.put_nowait(lambda seq=seq: self._start_search(seq))  # type: ignore[misc]

    def on_hit(self, hit: ConditionHit) -> None:
        """The bus's ConditionHit: to the strategies watching its condition, and no other."""
        slots = self.watchers.get(hit.condition_seq)
        if slots:
            for slot in list(slots):
                self._tell(slot, hit)

    def _tell(self, slot: StrategySlot, hit: ConditionHit, *, made: bool = False) -> None:
        view = self._views.get((slot.name, hit.condition_seq))
        if view is None or hit.entered == (hit.symbol in view):
            return
        if hit.entered:
            view.add(hit.symbol)
        else:
            view.discard(hit.symbol)
        inst = slot.instance
        if inst is None or not slot.enabled:
            return
        if made:
            bus = self.host.bus
            hit = replace(hit, ts_recv=self.host.clock.time_ns(), seq=bus.next_seq())
        fn = getattr(inst, "on_condition", None)
        if fn is not None:
            self.host.deliver(slot, fn, hit, later=made)

    # --- subscriptions -----------------------------------------------------------------------

    def subscribe(self, slot: StrategySlot, symbol: str, data: object) -> None:
        if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
            raise ValueError(f"{slot.name}: not a KRX symbol (six digits or capitals): {symbol!r}")
        kinds = data_kinds(data)
        self._need_feed(slot)
        if slot.subs.get(symbol) == kinds:
            return
        self._room(slot)
        self._add_subscription(slot, symbol, kinds)

    def _add_subscription(self, slot: StrategySlot, symbol: str, kinds: frozenset[str]) -> None:
        slot.subs[symbol] = kinds
        self.host.route_symbol(slot, symbol, kinds)
        self._ops.put_nowait(lambda: self._register(slot, symbol, kinds))

    def unsubscribe(self, slot: StrategySlot, symbol: str) -> None:
        self._need_feed(slot)
        if symbol not in slot.subs:
            return
        self._room(slot)
        del slot.subs[symbol]
        self.host.unroute_symbol(slot, symbol)
        self._ops.put_nowait(lambda: self._unregister(slot, symbol))

    async def _register(self, slot: StrategySlot, symbol: str, kinds: frozenset[str]) -> None:
        if slot.subs.get(symbol) != kinds or self.feed is None:
            return  # changed or dropped meanwhile: a later request says what holds
        try:
            await self.feed.subscribe(slot.name, symbol, kinds)
        except Exception as e:
            log.error(
                "subscribe_failed",
                strategy=slot.name,
                symbol=symbol,
                error=f"{type(e).__name__}: {e}",
            )
            if slot.subs.get(symbol) == kinds:
                del slot.subs[symbol]
                self.host.unroute_symbol(slot, symbol)
            self._save()
            return
        log.info("subscribed", strategy=slot.name, symbol=symbol, data=sorted(kinds))
        self._save()
        self._loads.put_nowait(lambda: self._load(slot, symbol))

    async def _unregister(self, slot: StrategySlot, symbol: str) -> None:
        if symbol in slot.subs or self.feed is None:
            return  # subscribed again meanwhile
        try:
            await self.feed.unsubscribe(slot.name, symbol)
        except Exception as e:
            log.warning("unsubscribe_failed", strategy=slot.name, symbol=symbol, error=str(e))
        log.info("unsubscribed", strategy=slot.name, symbol=symbol)
        self._save()

    async def _load(self, slot: StrategySlot, symbol: str) -> None:
        """Base price, limits and best quote (once per symbol), bar history for the slot's
        intervals, then `on_subscribed(symbol)`."""
        if symbol not in slot.subs or self.feed is None:
            return
        host = self.host
        if symbol not in self.base or host.quotes.get(symbol) is None:
            try:
                snap = await self.feed.snapshot(symbol)
            except Exception as e:
                self.loads_failed += 1
                log.warning(
                    "subscribe_load_failed", symbol=symbol, error=f"{type(e).__name__}: {e}"
                )
            else:
                if snap.base_price > 0:
                    self.base.setdefault(symbol, snap.base_price)
                if snap.upper_limit > 0:
                    self.limits[symbol] = (snap.lower_limit, snap.upper_limit)
                if snap.quote is not None and host.quotes.get(symbol) is None:
                    host.quotes[symbol] = snap.quote  # a live quote that came first wins
        cfg = slot.loaded.cfg
        if self.history is not None and cfg.history > 0:
            for interval in cfg.bars:
                await self._load_bars(symbol, interval, cfg.history)
        self.loads_done += 1
        if symbol in slot.subs and slot.instance is not None:
            fn = getattr(slot.instance, "on_subscribed", None)
            if fn is not None:
                host.deliver(slot, fn, symbol, later=True)

    async def _load_bars(self, symbol: str, interval: str, n: int) -> None:
        builder = self.host.builders.get((symbol, interval))
        seeded = self.host.seeded
        if builder is None or (symbol, interval) in seeded or self.history is None:
            return
        try:
            bars = await self.history.bars(symbol, interval, n)
        except HistoryUnavailable as e:
            log.warning("history_load_failed", symbol=symbol, interval=interval, error=str(e))
            return
        seeded.add((symbol, interval))
        live = list(builder.history)
        builder.history.clear()
        first = live[0].start if live else None
        builder.seed([b for b in bars if first is None or b.start < first], self.host.clock.now())
        builder.history.extend(live)
        while len(builder.history) > max(n, len(live)):
            builder.history.popleft()

    # --- the journal -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        return {
            s.name: {sym: sorted(k) for sym, k in s.subs.items()} for s in self.host.slots if s.subs
        }

    def _save(self) -> None:
        if self.store is None:
            return
        try:
            self.store.set_meta(JOURNAL_KEY, json.dumps(self.snapshot(), ensure_ascii=False))
        except Exception:
            log.exception("universe_save_failed")

    def _restore(self) -> None:
        if self.store is None:
            return
        try:
            raw = self.store.get_meta(JOURNAL_KEY)
            saved: Mapping[str, Mapping[str, list[str]]] = json.loads(raw) if raw else {}
        except Exception as e:
            log.error("universe_unreadable", error=str(e))
            return
        for name, subs in saved.items():
            slot = self.host.by_name.get(name)
            if slot is None or not slot.enabled or slot.instance is None:
                if slot is None:
                    log.warning("universe_strategy_gone", strategy=name, symbols=sorted(subs))
                continue
            for symbol, kinds in subs.items():
                try:
                    k = data_kinds(tuple(kinds))
                except ValueError:
                    k = frozenset()
                if not k or not SYMBOL.fullmatch(symbol):
                    log.warning("universe_entry_skipped", strategy=name, symbol=symbol)
                    continue
                if self.feed is not None:
                    self._add_subscription(slot, symbol, k)
            log.info("universe_restored", strategy=name, symbols=sorted(subs))

    # --- helpers -----------------------------------------------------------------------------

    def _need_feed(self, slot: StrategySlot) -> UniverseFeed:
        if self.feed is None:
            raise ValueError(
                f"{slot.name}: no realtime feed here: conditions and run-time "
                "subscriptions need the daemon's feed or a backtest's store"
            )
        return self.feed

    def _room(self, slot: StrategySlot) -> None:
        if self._ops.qsize() >= MAX_PENDING_CHANGES:
            raise RuntimeError(
                f"{slot.name}: {self._ops.qsize()} subscription changes already wait for the "
                f"feed (at most {MAX_PENDING_CHANGES}): subscribe and unsubscribe less often"
            )

    def status(self) -> dict[str, Any]:
        feed = self.feed
        return {
            "realtime_conditions": len(self._in_use()),
            "max_realtime_conditions": feed.max_realtime if feed is not None else 0,
            "watched": {
                seq: [s.name for s in slots] for seq, slots in self.watchers.items() if slots
            },
            "loads_done": self.loads_done,
            "loads_failed": self.loads_failed,
        }
