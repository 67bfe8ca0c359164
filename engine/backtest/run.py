"""The run loop: the store's events, in time order, through the engine's own bus, strategy
host, OMS, risk engine, portfolio and journal (in a temporary state dir), on the backtest's
clock, against the in-process broker. No sockets.

Time ties (the no-look-ahead rules, tested): everything due before a data point's time (a
timer, a `Clock.sleep`, an order reaching the book) happens before it, in time order; what is
due exactly at its time happens after it (data stamped t, then timers at t). A bar of stored
bar data is fed at its close (start + interval): the broker walks it first (fills of orders
that reached the book by then), then strategies see it.

The loop yields to asyncio only when work is ready there (a task, a deferred call, a woken
timer): a loop turn costs microseconds, a data point without consequences none.

Condition search and run-time subscriptions (engine/backtest/universe.py): the recorded
condition rows of a watched condition and the stored data of a symbol subscribed to while
running join the same timeline from the time they are asked for, under the same rules; a
source that joins while timers run before a data point takes its turn before that point.

Days: each KST day with data runs as the daemon lives it: the day's last session ends at
DAY_END, what is still open ends as KRX ends it (CANCELED), the day's equity is marked at the
last prices, then the next day rolls (risk counters, order numbers).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import operator
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from engine.backtest.broker import InProcessBroker
from engine.backtest.clock import NS, BacktestClock
from engine.backtest.history import StoreHistory
from engine.backtest.universe import BacktestUniverseFeed, Keyed
from engine.bus import JOURNAL_MAX_ACCOUNT, AccountOverflow, ConsumerQueue, EventBus
from engine.clock import KST
from engine.config import Config
from engine.data.layout import interval_of
from engine.data.reader import ConditionRecord, StoreEvent, dataset_rank, iter_event_lists
from engine.events import (
    Bar,
    Fill,
    OrderBook,
    OrderExecution,
    OrderUpdate,
    Quote,
    Trade,
    ViEvent,
)
from engine.host import StrategyHost
from engine.journal import BATCH_LIMIT, JOURNALED, Journal
from engine.plugins import LoadedStrategy
from engine.trading.account import Account
from engine.trading.bars import bar_length
from engine.trading.fees import FeeRates
from engine.trading.oms import OrderManager
from engine.trading.portfolio import Portfolio
from engine.trading.risk import RiskEngine
from engine.universe.manager import Universe

DAY_START = time(8, 0)
"""The clock starts each day here (before the first session, 08:30)."""
DAY_END = time(18, 0)
"""The end of KRX's last session of the day (시간외 단일가, engine/trading/krx.py)."""


@dataclass(frozen=True, slots=True)
class DayMark:
    """The account and each strategy marked at a day's end."""

    day: date
    equity: int
    cash: int
    positions_value: int
    strategies: dict[str, tuple[int, int]]
    """Strategy -> (realised + unrealised PnL so far, value of its positions)."""
    prices: dict[str, int]


@dataclass(repr=False)
class Result:
    """What a run leaves for the report."""

    start_cash: int
    days: list[DayMark] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    orders: dict[str, OrderUpdate] = field(default_factory=dict)
    events: int = 0
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    first_prices: dict[str, int] = field(default_factory=dict)
    """Each symbol's first price in the run (buy-and-hold's entry)."""

    def __repr__(self) -> str:
        # Short: asyncio.run formats the repr of its main task, and so of this result, as it
        # restores the SIGINT handler (twice); every fill and order in it took a second.
        return (
            f"Result(events={self.events}, days={len(self.days)}, fills={len(self.fills)},"
            f" orders={len(self.orders)})"
        )


SHM = Path("/dev/shm")


def _scratch() -> str | None:
    """Where the run's journal goes: in memory where the system offers it (the journal is
    kept for the run, not for a crash), else the system's temporary directory."""
    return str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None


_TS_RECV: Callable[[StoreEvent], int] = operator.attrgetter("ts_recv")


def _day_ns(d: date, t: time) -> int:
    return int(datetime.combine(d, t, KST).timestamp()) * NS


def _ready(loop: asyncio.AbstractEventLoop) -> Callable[[], int]:
    """How many callbacks wait in the loop's ready queue (CPython's `_ready`); a loop without
    one is always taken as busy, so the backtest then yields after every step."""
    ready = getattr(loop, "_ready", None)
    if ready is None:
        return lambda: 1
    size: Callable[[], int] = ready.__len__
    return size


DAILY_WALK = time(15, 30)
"""A daily bar is walked at the regular session's close (after-hours prints aside)..."""
DAILY_OPEN = time(9, 0)
"""...against the orders sent by the regular session's open."""


def _timeline(events: Iterator[StoreEvent]) -> Iterator[tuple[int, StoreEvent]]:
    """(time in ns, event): events at their time, stored bars moved to their close (a daily
    bar: to DAILY_WALK of its day; its strategies see it at the next day's start, `_feed`)."""
    pending: list[tuple[int, int, Bar]] = []
    lengths: dict[str, int] = {}
    n = 0
    for ev in events:
        t = ev.ts_recv
        while pending and pending[0][0] <= t:
            end, _, bar = heapq.heappop(pending)
            yield end, bar
        if type(ev) is Bar:
            n += 1
            if ev.interval == "1d":
                end = _day_ns(ev.start.date(), DAILY_WALK)
            else:
                length = lengths.get(ev.interval)
                if length is None:
                    length = lengths[ev.interval] = (
                        int(bar_length(ev.interval).total_seconds()) * NS
                    )
                end = t + length
            heapq.heappush(pending, (end, n, ev))
        else:
            yield t, ev
    while pending:
        end, _, bar = heapq.heappop(pending)
        yield end, bar


def _closes(events: Iterator[StoreEvent], interval: str) -> Iterator[tuple[int, StoreEvent]]:
    """`_timeline` of bars of one intraday `interval` alone: each at its close, in the order
    read (every bar moves by the same length), without a Python turn per bar."""
    shift = int(bar_length(interval).total_seconds()) * NS
    times, evs = itertools.tee(events)
    return zip(map(shift.__add__, map(_TS_RECV, times)), evs, strict=True)


class Backtest:
    """One run of `cfg`'s strategies over [start, end] of the store at `data_dir`."""

    def __init__(
        self,
        cfg: Config,
        strategies: list[LoadedStrategy],
        data_dir: Path,
        start: date,
        end: date,
        *,
        state_dir: Path | None = None,
        progress: Callable[[date], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self.start = start
        self.end = end
        self.progress = progress
        self._state_dir = state_dir
        self.symbols = tuple(sorted({s for ls in strategies for s in ls.cfg.symbols}))
        self.clock = BacktestClock(_day_ns(start, DAY_START))
        self.bus = EventBus(self.clock)
        self.portfolio = Portfolio(cfg.portfolio, self.clock)
        self.portfolio.cash = cfg.backtest.cash
        # Session hours are the data's: a print outside them is still a print to react to.
        self.risk = RiskEngine(cfg.risk, self.clock, check_session_hours=False)
        rates = FeeRates(
            cfg.portfolio.commission_bp,
            cfg.portfolio.sell_tax_bp,
            cfg.portfolio.sell_tax_table,
        )
        account = Account(cfg.backtest.cash, rates, markets=self.portfolio.markets)
        self.broker = InProcessBroker(
            self.clock, self.bus, account,
            latency_ms=cfg.backtest.latency_ms,
        )  # fmt: skip
        self.strategies = strategies
        self.result = Result(cfg.backtest.cash, symbols=self.symbols)
        self._daily: list[Bar] = []
        self._priced: set[str] = set()
        """Symbols with a first price and a base: `_first_price` has nothing left to do."""
        """Daily bars walked, for strategies at the next day's start."""
        self.universe_feed = BacktestUniverseFeed(
            self.data_dir, start, end,
            bus=self.bus, now=self.clock.time_ns, configured=self.symbols,
            open_symbol=self._open_symbol, base=self.broker.base,
            max_realtime=cfg.kiwoom.max_realtime_conditions,
        )  # fmt: skip

    async def run(self) -> Result:
        if self._state_dir is not None:
            return await self._run(self._state_dir)
        with tempfile.TemporaryDirectory(prefix="kiwoom-backtest-", dir=_scratch()) as tmp:
            return await self._run(Path(tmp))

    async def _run(self, state_dir: Path) -> Result:
        journal = Journal(state_dir, self.clock)
        journal.open()
        oms = OrderManager(
            self.broker, self.bus, self.risk, self.portfolio, journal, self.clock,
            max_order_delay_s=self.cfg.risk.max_order_delay_ms / 1000,
        )  # fmt: skip
        self.oms = oms
        host = self.host = StrategyHost(self.bus, oms, self.clock, self.strategies)
        for slot in host.slots:
            # Budgets are measured and reported, never enforced: a busy machine must not
            # change a backtest's result.
            slot.max_overruns = sys.maxsize
        queue = ConsumerQueue(
            "journal", types=JOURNALED, max_account=JOURNAL_MAX_ACCOUNT,
            account_overflow=AccountOverflow.HALT,
        )  # fmt: skip
        bus = self.bus
        bus.subscribe(Trade, self.portfolio.on_trade)
        bus.subscribe(OrderExecution, oms.on_execution)
        bus.subscribe(Fill, self.result.fills.append)
        bus.subscribe(OrderUpdate, self._order_update)
        bus.attach(queue)
        # The journal is written by the run loop, not by `Journal.run`'s task: that task
        # wakes for every order event and writes each loop turn's few in a transaction of
        # their own, the largest single cost of a run with orders. Here the same
        # `Journal.write` takes BATCH_LIMIT events a transaction (and the rest at each day's
        # end): the same rows. A write that fails stops the run with its error.
        self._journal, self._journal_queue = journal, queue
        self._pending_ready = _ready(asyncio.get_running_loop())
        history = StoreHistory(self.data_dir, self.clock)
        universe = Universe(host, base=self.portfolio.base, history=history)
        universe.attach(self.universe_feed)
        host.universe = universe
        try:
            host.instantiate()
            await host.warm_up(history)
            await universe.prepare()
            host.start()
            universe.start()
            await self._settle()
            await self._feed()
            host.stop()
            await self._settle()
            await universe.stop()
            self._write_journal(1)
        finally:
            journal.close()
        for slot in host.slots:
            self.result.strategies[slot.name] = {
                "handler_calls": slot.calls,
                "errors": slot.errors,
                "budget_overruns": slot.overruns,
                "slowest_ms_over_budget": round(slot.slowest_ms, 3),
                "disabled": slot.disabled_reason if slot.disabled_reason != "stopped" else "",
            }
        return self.result

    def _order_update(self, up: OrderUpdate) -> None:
        self.result.orders[up.client_id] = up

    # --- the loop ----------------------------------------------------------------------------

    async def _settle(self) -> None:
        """Let the loop run what is ready (tasks, deferred calls), and what that makes ready."""
        ready = self._pending_ready
        # Not an Event: what is ready is the loop's own queue, and each turn may refill it.
        while ready():  # noqa: ASYNC110
            await asyncio.sleep(0)
        if self._journal_queue.depth >= BATCH_LIMIT:
            self._write_journal(BATCH_LIMIT)

    def _write_journal(self, least: int) -> None:
        """Write the journal's queue in transactions of BATCH_LIMIT events while it holds at
        least `least`."""
        queue = self._journal_queue
        while queue.depth >= least:
            self._journal.write(queue.take(BATCH_LIMIT))

    async def _until(self, t: int, joins: bool = False) -> bool:
        """Run everything due before `t` in time order (broker arrivals before timers at the
        same instant), then move the clock to `t`. With `joins`, stop (False) as soon as a
        source joins the timeline: its data may come before `t`."""
        clock, broker = self.clock, self.broker
        timeline = self.universe_feed.timeline
        while True:
            timer = clock.next_due()
            arrival = broker.next_due()
            if arrival is not None and arrival < t and (timer is None or arrival <= timer):
                clock.set(arrival)
                broker.arrive(arrival)
            elif timer is not None and timer < t:
                clock.wake_due(timer)
            else:
                break
            await self._settle()
            if joins and timeline.added:
                return False
        clock.set(t)
        return True

    async def _feed(self) -> None:
        kinds = self.cfg.backtest.kinds
        chunks = iter_event_lists(self.data_dir, self.symbols, kinds, self.start, self.end)
        events = itertools.chain.from_iterable(chunks)
        day: date | None = None
        broker, bus, portfolio = self.broker, self.bus, self.portfolio
        ready = self._pending_ready
        n = 0
        day_ends = 0  # the next KST midnight (ns): a day's events need no date arithmetic
        clock = self.clock
        priced = self._priced
        # Only stored bars move in time (to their close): without them an event's time is
        # its own, and the timeline's work per event is not needed.
        bars = [interval_of(k) for k in kinds if interval_of(k) is not None and k != "ticks"]
        source: Iterator[tuple[int, Any]]
        if len(kinds) == 1 and bars and bars[0] != "1d":
            # One kind of intraday bars: every event moves by the same length, so their
            # order holds and no heap is needed. (ev.ts_recv + length, ev), as `_timeline`.
            source = _closes(events, str(bars[0]))
        elif bars:
            source = _timeline(events)
        else:  # (ev.ts_recv, ev) without a Python generator's turn per event
            times, evs = itertools.tee(events)
            source = zip(map(_TS_RECV, times), evs, strict=True)
        # While no condition is watched and no symbol subscribed at run time, the loop takes
        # the config's data straight from `source`; when a source joins, from the merge of
        # both (`joined`) until nothing joined is left. An event taken before a source joined
        # ahead of it goes back (a merge's `push_back`, or in front of `source`).
        joined = self.universe_feed.timeline
        apply = self.universe_feed.apply
        while True:
            merged = bool(joined.joined)
            if merged:
                joined.attach_base(source)
            timeline: Iterator[tuple[int, Any]] = joined if merged else source
            joined.added = False
            for t, ev in timeline:
                if t >= day_ends:
                    d = datetime.fromtimestamp(t // NS, KST).date()
                    if day is not None:
                        await self._end_day(day)
                    await self._begin_day(d, t)
                    day = d
                    day_ends = _day_ns(d + timedelta(days=1), time(0))
                    if joined.added:
                        joined.added = False
                        if merged:
                            joined.push_back()
                            continue
                        source = itertools.chain(((t, ev),), source)
                        break
                if t > clock.ns:
                    # `_until`, without its coroutine when nothing is due before `t` (the usual
                    # data point).
                    timer = clock.next_due()
                    arrival = broker.next_due()
                    if (timer is not None and timer < t) or (arrival is not None and arrival < t):
                        if not await self._until(t, joins=True):
                            joined.added = False
                            if merged:
                                joined.push_back()
                                continue
                            source = itertools.chain(((t, ev),), source)
                            break
                    else:
                        clock.set(t)
                n += 1
                tp = type(ev)
                if tp is Trade:
                    assert isinstance(ev, Trade)
                    if ev.symbol not in priced:
                        self._first_price(ev.symbol, ev.price)
                    broker.on_trade(ev)
                elif tp is Bar:
                    assert isinstance(ev, Bar)
                    if ev.symbol not in priced:
                        self._first_price(ev.symbol, ev.open)
                    if ev.interval == "1d":
                        # A daily strategy decides before the next session; an order it sends
                        # on the bar meets the next day's bar, open first.
                        broker.on_bar(ev, _day_ns(ev.start.date(), DAILY_OPEN))
                        portfolio.last[ev.symbol] = ev.close
                        self._daily.append(ev)
                        continue
                    broker.on_bar(ev)
                    portfolio.last[ev.symbol] = ev.close
                elif tp is Quote:
                    assert isinstance(ev, Quote)
                    broker.on_quote(ev)
                elif tp is OrderBook:
                    assert isinstance(ev, OrderBook)
                    broker.on_book(ev)
                elif tp is ViEvent:
                    assert isinstance(ev, ViEvent)
                    broker.on_vi(ev)
                elif tp is ConditionRecord:
                    assert isinstance(ev, ConditionRecord)
                    apply(ev)  # the hits it makes, published as the live feed does
                if tp is not ConditionRecord:
                    bus.publish(ev)
                if ready():
                    await self._settle()
                    if self._regroup(merged):
                        break
            else:
                if not joined.joined:
                    break
                source = iter(())  # the config's data is done, what joined is not
                continue
            if merged and not joined.joined:
                source = joined.detach_base()
        if day is not None:
            await self._end_day(day)
        self.result.events = n

    def _open_symbol(self, symbol: str, now: int) -> list[Iterator[Keyed]]:
        """The stored data of `symbol` in `[backtest] kinds` from `now` on, a source per
        dataset for the timeline (files opened as the merge reaches them)."""
        day = max(datetime.fromtimestamp(now // NS, KST).date(), self.start)
        sources: list[Iterator[Keyed]] = []
        for kind in self.cfg.backtest.kinds:
            events = itertools.chain.from_iterable(
                iter_event_lists(self.data_dir, (symbol,), (kind,), day, self.end)
            )
            rank = dataset_rank(kind)
            later = itertools.dropwhile(lambda x: x[0] < now, _timeline(events))
            sources.append((t, rank, symbol, ev) for t, ev in later)
        return sources

    def _regroup(self, merged: bool) -> bool:
        """After a settle: whether the run loop must take its timeline anew, because a source
        joined while it read the config's data alone, or the last joined source left."""
        joined = self.universe_feed.timeline
        if joined.added:
            joined.added = False
            return not merged
        return merged and not joined.joined

    def _first_price(self, symbol: str, price: int) -> None:
        if symbol not in self.result.first_prices and price > 0:
            self.result.first_prices[symbol] = price
        # Without a previous close (the first day of the data) the day's first price is the
        # base of its ±30 % limits.
        if symbol not in self.broker.base and price > 0:
            self.broker.base[symbol] = price
            self.portfolio.base[symbol] = price
        if symbol in self.result.first_prices and symbol in self.broker.base:
            self._priced.add(symbol)  # both known for good (bases are replaced, never removed)

    async def _begin_day(self, d: date, first_ns: int) -> None:
        # Data before DAY_START (a recording made at night against the simulator) keeps its
        # own time.
        await self._until(min(_day_ns(d, DAY_START), first_ns))
        self.broker.new_day()
        self.portfolio.base.update(self.broker.base)
        self.risk.roll_day()
        await self._settle()
        daily, self._daily = self._daily, []
        for bar in daily:
            self.bus.publish(bar)
        await self._settle()

    async def _end_day(self, d: date) -> None:
        await self._until(_day_ns(d, DAY_END))
        self.broker.end_day()
        await self._settle()
        self._write_journal(1)
        self.result.days.append(self._mark(d))
        if self.progress is not None:
            self.progress(d)

    def _mark(self, d: date) -> DayMark:
        p = self.portfolio
        value = sum(pos.qty * p.last.get(s, 0) for s, pos in sorted(p.positions.items()))
        strategies: dict[str, tuple[int, int]] = {}
        for name in sorted(p.by_strategy):
            pnl = val = 0
            for s, pos in p.by_strategy[name].items():
                pnl += pos.realized + pos.unrealized(p.last.get(s))
                val += pos.qty * p.last.get(s, 0)
            strategies[name] = (pnl, val)
        prices = {s: p.last[s] for s in self.symbols if s in p.last}
        return DayMark(d, p.cash + value, p.cash, value, strategies, prices)


def run_backtest(
    cfg: Config,
    strategies: list[LoadedStrategy],
    data_dir: Path,
    start: date,
    end: date,
    **kw: Any,
) -> Result:
    """Run a backtest in a new event loop (the CLI's entry)."""
    return asyncio.run(Backtest(cfg, strategies, data_dir, start, end, **kw).run())
