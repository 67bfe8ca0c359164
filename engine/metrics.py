"""What the daemon measures about itself, in the Prometheus text format (GET /metrics).

Most figures already live in the engine (the bus's and queues' counters, the OMS's orders, the
feed's sessions): a collector reads them at scrape time, so the hot path pays nothing for
them. Only what has no home elsewhere is observed as it happens: risk rejections by reason,
the tick-to-order latency and the event loop's lag.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.clock import stopwatch_ns
from engine.events import RiskRejected, TradingState
from engine.trader import Trader
from engine.trading.risk import HaltReason

NAMESPACE = "kiwoom_engine"
TICK_TO_ORDER_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FeedView(Protocol):
    """What metrics and health read of the realtime feed (KiwoomWebSocket has it)."""

    @property
    def connected(self) -> bool: ...

    @property
    def silent_s(self) -> float | None: ...

    @property
    def compressed(self) -> bool | None: ...

    sessions: int
    held_dropped: int


class LoopMonitor:
    """How late the event loop runs: a task asks to sleep `interval_s` and measures (real
    time, `stopwatch_ns`) how much longer it took. A loop blocked by a slow handler shows as
    lag; one blocked right now shows as silence since the last tick (`stalled_s`)."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0
        """The last tick's lateness."""
        self.observers: list[Callable[[float], None]] = []
        self._last_tick_ns = stopwatch_ns()

    async def run(self) -> None:
        """Tick until cancelled."""
        interval_ns = int(self.interval_s * 1e9)
        while True:
            started = stopwatch_ns()
            await asyncio.sleep(self.interval_s)
            now = stopwatch_ns()
            self.lag_s = max(0, now - started - interval_ns) / 1e9
            self._last_tick_ns = now
            for observe in self.observers:
                observe(self.lag_s)

    def stalled_s(self) -> float:
        """The larger of the last tick's lag and how overdue the next tick is: a handler
        asking this right after a long block sees the block before the monitor could."""
        overdue = (stopwatch_ns() - self._last_tick_ns) / 1e9 - self.interval_s
        return max(self.lag_s, overdue, 0.0)


class EngineMetrics:
    """The daemon's Prometheus registry: a collector over the engine's own counters plus the
    few figures observed here. `render()` is the /metrics body."""

    def __init__(
        self,
        trader: Trader,
        feed: FeedView,
        loop: LoopMonitor,
        event_counts: Mapping[str, int],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rejections: Counter[str] = Counter()
        self.tick_to_order = Histogram(
            "tick_to_order_seconds",
            "From the receipt of the market event an order answers to the order's hand-over "
            "to the broker client (pacing and the POST itself not included)",
            namespace=NAMESPACE,
            buckets=TICK_TO_ORDER_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            "How much later than asked the event loop ran a timer",
            namespace=NAMESPACE,
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(trader, feed, loop, event_counts, self.rejections))
        trader.bus.subscribe(RiskRejected, self._rejected)
        trader.oms.tick_to_order.append(self._tick_to_order)
        loop.observers.append(self.loop_lag.observe)

    def _rejected(self, ev: RiskRejected) -> None:
        self.rejections[ev.reason] += 1

    def _tick_to_order(self, elapsed_ns: int) -> None:
        self.tick_to_order.observe(max(0, elapsed_ns) / 1e9)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    def __init__(
        self,
        trader: Trader,
        feed: FeedView,
        loop: LoopMonitor,
        event_counts: Mapping[str, int],
        rejections: Mapping[str, int],
    ) -> None:
        self.trader = trader
        self.feed = feed
        self.loop = loop
        self.event_counts = event_counts
        self.rejections = rejections

    def collect(self) -> Iterable[Metric]:
        t = self.trader
        yield _labelled(
            CounterMetricFamily,
            "events_in",
            "Events through the bus, by type",
            "type",
            self.event_counts,
        )
        queues = t.bus.queues
        # Delivered = taken by the consumer: what it was offered less what was dropped,
        # coalesced away, or still waits.
        yield _labelled(
            CounterMetricFamily,
            "events_out",
            "Events taken by each slow consumer from its queue",
            "consumer",
            {
                q.name: q.offered - q.dropped - q.coalesced - q.account_dropped - q.depth
                for q in queues
            },
        )
        dropped = CounterMetricFamily(
            f"{NAMESPACE}_events_dropped",
            "Events a consumer queue (or the feed, while restoring) let go: oldest trades "
            "dropped, quotes and books superseded by newer ones, or (account_overflow) the "
            "oldest account events past a copying consumer's bound (the mirror's, the log's)",
            labels=["consumer", "why"],
        )
        for q in queues:
            dropped.add_metric([q.name, "overflow"], q.dropped)
            dropped.add_metric([q.name, "coalesced"], q.coalesced)
            dropped.add_metric([q.name, "account_overflow"], q.account_dropped)
        dropped.add_metric(["feed_restore", "overflow"], self.feed.held_dropped)
        yield dropped
        depth = GaugeMetricFamily(
            f"{NAMESPACE}_queue_depth",
            "Events waiting in each consumer queue (critical: orders, fills, balances, risk)",
            labels=["consumer", "kind"],
        )
        for q in queues:
            depth.add_metric([q.name, "all"], q.depth)
            depth.add_metric([q.name, "critical"], q.critical_depth)
        yield depth
        yield CounterMetricFamily(
            f"{NAMESPACE}_bus_handler_errors",
            "In-loop handlers that raised",
            value=t.bus.handler_errors,
        )
        yield _labelled(
            GaugeMetricFamily,
            "orders",
            "Orders by state: today's, and any still open from the days before",
            "state",
            t.oms.counts_by_state(),
        )
        yield _labelled(
            CounterMetricFamily,
            "risk_rejections",
            "Orders the pre-trade checks refused, by reason code",
            "reason",
            self.rejections,
        )
        state = GaugeMetricFamily(
            f"{NAMESPACE}_trading_state",
            "1 for the kill switch's current state",
            labels=["state"],
        )
        for s in TradingState:
            state.add_metric([s.value], 1.0 if t.risk.state is s else 0.0)
        yield state
        halts = GaugeMetricFamily(
            f"{NAMESPACE}_trading_halt",
            "1 for each halt reason in force (trading is halted while any is)",
            labels=["reason"],
        )
        for h in HaltReason:
            halts.add_metric([h.value], 1.0 if h in t.risk.halts else 0.0)
        yield halts
        yield CounterMetricFamily(
            f"{NAMESPACE}_ws_reconnects",
            "Realtime sessions opened after the first",
            value=max(0, self.feed.sessions - 1),
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_feed_live",
            "1 while the realtime feed is logged in and hearing frames",
            value=1.0 if self.feed.connected else 0.0,
        )
        silent = self.feed.silent_s
        if silent is not None:
            yield GaugeMetricFamily(
                f"{NAMESPACE}_feed_silent_seconds",
                "Seconds since the realtime feed's last frame",
                value=silent,
            )
        journal = t.journal.stats()
        for kind, name, doc in _JOURNAL_FIGURES:
            yield kind(f"{NAMESPACE}_journal_{name}", doc, value=journal[name])
        pnl = GaugeMetricFamily(
            f"{NAMESPACE}_pnl_krw", "Today's profit and loss in KRW", labels=["kind"]
        )
        pnl.add_metric(["realized"], float(t.portfolio.realized_today))
        pnl.add_metric(["unrealized"], float(t.portfolio.unrealized()))
        yield pnl
        market = t.risk.market
        yield CounterMetricFamily(
            f"{NAMESPACE}_vi_events",
            "Volatility interruption (VI) notices from the feed, triggers and releases",
            value=market.vi_events,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_vi_active_symbols",
            "Symbols under a VI now (market orders on them are refused: VI_ACTIVE)",
            value=len(market.vi_symbols()),
        )
        conditions = getattr(self.feed, "condition_book", None)
        if conditions is not None:
            used = GaugeMetricFamily(
                f"{NAMESPACE}_realtime_conditions",
                "Realtime condition searches (조건검색) running on the login, and the limit "
                "(kiwoom.max_realtime_conditions; Kiwoom allows about 10)",
                labels=["kind"],
            )
            used.add_metric(["in_use"], float(len(conditions.realtime)))
            used.add_metric(["limit"], float(conditions.max_realtime))
            yield used
        yield GaugeMetricFamily(
            f"{NAMESPACE}_event_loop_stalled_seconds",
            "The event loop's current lateness (see event_loop_lag_seconds)",
            value=self.loop.stalled_s(),
        )


_JOURNAL_FIGURES: tuple[
    tuple[type[CounterMetricFamily] | type[GaugeMetricFamily], str, str], ...
] = (
    (CounterMetricFamily, "intents", "Orders journaled before their POST"),
    (
        GaugeMetricFamily,
        "intents_pending",
        "Intents in the intent log not yet moved into SQLite (moved by every batch)",
    ),
    (
        CounterMetricFamily,
        "write_errors",
        "Journal transactions that failed and were rolled back; alert on any",
    ),
    (CounterMetricFamily, "failed_events", "Events the journal could never write (each logged)"),
    (
        CounterMetricFamily,
        "intents_refused",
        "Order intents the journal could not store (those orders were not sent)",
    ),
    (
        CounterMetricFamily,
        "duplicate_fills",
        "Fills journaled again under a key already stored (replays; stored once)",
    ),
    (GaugeMetricFamily, "faulty", "1 while the journal cannot write (trading halts: JOURNAL)"),
)
"""(kind, the key in Journal.stats(), help) of the journal's figures."""


def _labelled(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: Mapping[str, int],
) -> Metric:
    family = kind(f"{NAMESPACE}_{name}", doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], float(value))
    return family
