"""What the daemon measures about itself, in the Prometheus text format (GET /metrics).

Most figures already live in the engine (the bus's and queues' counters, the OMS's orders, the
feed's sessions, the strategies' slots, the portfolio): a collector reads them at scrape time,
on the loop, so the hot path pays nothing for them. Only what has no home elsewhere is observed
as it happens, each a dict increment: risk rejections by reason, fills by strategy, the last
reconciliation's divergences, the tick-to-order latency and the event loop's lag.

Per-symbol series (positions, exposure) are capped at `metrics.max_symbol_series` per metric:
the largest exposures keep their own series, the rest are summed under symbol="_other" and
counted in `symbol_series_dropped`. Flat positions have no series, so the label set follows
what is held, not every symbol ever traded.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.clock import stopwatch_ns
from engine.events import Fill, Reconciled, RiskRejected, TradingState
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
OTHER_SYMBOLS = "_other"
"""The `symbol` label of the sum of the series left out past `metrics.max_symbol_series`."""
EXTERNAL = "_external"
"""The `strategy` label of orders no strategy placed (by hand, before the engine)."""


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
            # real time: the lateness of the event loop itself, which a simulated clock has
            # not (measured with the stopwatch, as CPU time is never simulated).
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
        self.fills: Counter[str] = Counter()
        self.reconciles = _Reconciles()
        self.mirror_stats: Callable[[], Mapping[str, int]] | None = None
        """The MQTT mirror's counters (Mirror.stats), set by the daemon when it mirrors."""
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
        self.registry.register(
            _EngineCollector(trader, feed, loop, event_counts, self.rejections, self)
        )
        trader.bus.subscribe(RiskRejected, self._rejected)
        trader.bus.subscribe(Fill, self._filled)
        trader.bus.subscribe(Reconciled, self.reconciles.on_reconciled)
        trader.oms.tick_to_order.append(self._tick_to_order)
        loop.observers.append(self.loop_lag.observe)

    def _rejected(self, ev: RiskRejected) -> None:
        self.rejections[ev.reason] += 1

    def _filled(self, ev: Fill) -> None:
        self.fills[ev.strategy or EXTERNAL] += 1

    def _tick_to_order(self, elapsed_ns: int) -> None:
        self.tick_to_order.observe(max(0, elapsed_ns) / 1e9)

    def collect(self) -> list[Metric]:
        """Read every figure (on the engine's loop): new objects, owned by the caller."""
        return list(self.registry.collect())

    @staticmethod
    def format(families: list[Metric]) -> bytes:
        """The Prometheus text of collected `families`; reads nothing else, so any thread may
        call it (the admin thread does, sparing the loop the longer half of a scrape)."""
        return generate_latest(_Collected(families))

    def render(self) -> bytes:
        """`format(collect())`: the /metrics body."""
        return self.format(self.collect())


class _Collected(CollectorRegistry):
    """Families already collected, served as a registry to `generate_latest`."""

    def __init__(self, families: list[Metric]) -> None:
        super().__init__(auto_describe=False)
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _Reconciles:
    """What the reconciliation passes found: the last one's divergences, and all of them."""

    def __init__(self) -> None:
        self.last_divergences = 0
        self.divergences = 0

    def on_reconciled(self, ev: Reconciled) -> None:
        self.last_divergences = ev.divergences
        self.divergences += ev.divergences


class _EngineCollector(Collector):
    def __init__(
        self,
        trader: Trader,
        feed: FeedView,
        loop: LoopMonitor,
        event_counts: Mapping[str, int],
        rejections: Mapping[str, int],
        metrics: EngineMetrics,
    ) -> None:
        self.trader = trader
        self.feed = feed
        self.loop = loop
        self.event_counts = event_counts
        self.rejections = rejections
        self.metrics = metrics
        self.max_symbol_series = trader.cfg.metrics.max_symbol_series
        self._heard_ns = stopwatch_ns()
        """When the feed last heard a frame (start-up before the first), for the silence
        across sessions: the feed itself counts only within one."""

    def collect(self) -> Iterable[Metric]:
        t = self.trader
        t.risk.roll_day()  # past midnight: the new day's PnL, not yesterday's
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
        now_ns = stopwatch_ns()
        silent = self.feed.silent_s
        if silent is not None:
            self._heard_ns = max(self._heard_ns, now_ns - int(silent * 1e9))
        yield GaugeMetricFamily(
            f"{NAMESPACE}_feed_silent_seconds",
            "Seconds since the realtime feed's last frame, in any session (since start-up "
            "before the first)",
            value=max(0, now_ns - self._heard_ns) / 1e9,
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
        yield from self._account()
        yield from self._strategies()
        yield from self._positions()
        yield from self._reconciliation()
        if self.metrics.mirror_stats is not None:
            yield from _mirror(self.metrics.mirror_stats())

    def _account(self) -> Iterable[Metric]:
        t = self.trader
        cash = t.portfolio.cash
        yield GaugeMetricFamily(
            f"{NAMESPACE}_account_cash_krw",
            "The account's orderable cash as the broker last reported it, moved by the fills "
            "since, before what the open buy orders reserve",
            value=float(cash),
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_account_orderable_cash_krw",
            "Cash still free for new buy orders: account_cash_krw less the open buy orders' "
            "notional (what the BUYING_POWER check allows)",
            value=float(cash - t.oms.open_buy_notional()),
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_account_gross_exposure_krw",
            "Sum over symbols of shares held x last price (average cost before a trade)",
            value=float(t.portfolio.gross_exposure()),
        )
        realized = t.risk.counters()["realized_pnl"]
        yield GaugeMetricFamily(
            f"{NAMESPACE}_daily_loss_krw",
            "Today's realised loss after fees and tax as the daily loss limit counts it "
            "(0 while in profit)",
            value=float(max(0, -realized)),
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_daily_loss_limit_krw",
            "risk.daily_loss_limit: the realised loss at which trading halts for the day",
            value=float(t.risk.cfg.daily_loss_limit),
        )

    def _strategies(self) -> Iterable[Metric]:
        t = self.trader
        running = GaugeMetricFamily(
            f"{NAMESPACE}_strategy_running",
            "1 while the strategy gets events, 0 once disabled (or held disabled at start-up)",
            labels=["strategy"],
        )
        disabled = GaugeMetricFamily(
            f"{NAMESPACE}_strategy_disabled",
            "1 for a disabled strategy, with why (too_many_errors, too_slow, "
            'too_many_rejections, stalled, held); 0 with reason="" while it runs',
            labels=["strategy", "reason"],
        )
        errors = CounterMetricFamily(
            f"{NAMESPACE}_strategy_errors", "Exceptions its handlers raised", labels=["strategy"]
        )
        overruns = CounterMetricFamily(
            f"{NAMESPACE}_strategy_overruns",
            "Handler calls past the strategy's budget_ms",
            labels=["strategy"],
        )
        refused = CounterMetricFamily(
            f"{NAMESPACE}_strategy_rejections",
            "Its orders refused by risk or the broker (not by the trading state)",
            labels=["strategy"],
        )
        names = []
        for slot in t.host.slots:
            names.append(slot.name)
            running.add_metric([slot.name], 1.0 if slot.enabled else 0.0)
            if slot.enabled:
                disabled.add_metric([slot.name, ""], 0.0)
            else:
                why = slot.disabled_reason.split(":", 1)[0].strip() or "disabled"
                disabled.add_metric([slot.name, why], 1.0)
            errors.add_metric([slot.name], float(slot.errors))
            overruns.add_metric([slot.name], float(slot.overruns))
            refused.add_metric([slot.name], float(slot.rejections))
        yield from (running, disabled, errors, overruns, refused)
        fills = CounterMetricFamily(
            f"{NAMESPACE}_strategy_fills",
            "Fills booked since start-up, by the strategy whose order filled",
            labels=["strategy"],
        )
        for name in sorted({*names, *self.metrics.fills}):
            fills.add_metric([name], float(self.metrics.fills.get(name, 0)))
        yield fills
        orders = GaugeMetricFamily(
            f"{NAMESPACE}_strategy_orders",
            "Orders by strategy and state: today's, and any still open from the days before",
            labels=["strategy", "state"],
        )
        by: Counter[tuple[str, str]] = Counter()
        for o in t.oms.orders.values():
            by[(o.strategy or EXTERNAL, o.state.value)] += 1
        for (name, state), n in sorted(by.items()):
            orders.add_metric([name, state], float(n))
        yield orders
        pnl = GaugeMetricFamily(
            f"{NAMESPACE}_strategy_pnl_krw",
            "Each strategy's profit and loss in KRW: realized today (after fees and tax), "
            "unrealized on what it holds at the last price",
            labels=["strategy", "kind"],
        )
        last = t.portfolio.last
        books = t.portfolio.by_strategy
        for name in sorted({*names, *books}):
            mine = books.get(name, {})
            realized = sum(p.realized for p in mine.values())
            unrealized = sum(p.unrealized(last.get(s)) for s, p in mine.items())
            pnl.add_metric([name, "realized"], float(realized))
            pnl.add_metric([name, "unrealized"], float(unrealized))
        yield pnl

    def _positions(self) -> Iterable[Metric]:
        p = self.trader.portfolio
        last = p.last
        cap = self.max_symbol_series
        dropped = GaugeMetricFamily(
            f"{NAMESPACE}_symbol_series_dropped",
            "Per-symbol series left out of a metric at this scrape past "
            'metrics.max_symbol_series (their exposure is summed under symbol="_other")',
            labels=["metric"],
        )
        rows: list[tuple[tuple[str, ...], int, int]] = []
        for name, mine in p.by_strategy.items():
            for symbol, pos in mine.items():
                if pos.qty:
                    rows.append(
                        ((name, symbol), pos.qty, pos.qty * (last.get(symbol) or pos.avg_price))
                    )
        shares = GaugeMetricFamily(
            f"{NAMESPACE}_strategy_position_shares",
            "Shares each strategy holds, by symbol (flat positions have no series)",
            labels=["strategy", "symbol"],
        )
        exposure = GaugeMetricFamily(
            f"{NAMESPACE}_strategy_exposure_krw",
            "Shares each strategy holds x last price (average cost before a trade), by symbol",
            labels=["strategy", "symbol"],
        )
        left = _capped(rows, cap, shares, exposure, per=lambda key: key[:1])
        dropped.add_metric(["strategy_position"], float(left))
        yield shares
        yield exposure
        rows = [
            ((symbol,), pos.qty, pos.qty * (last.get(symbol) or pos.avg_price))
            for symbol, pos in p.positions.items()
            if pos.qty
        ]
        shares = GaugeMetricFamily(
            f"{NAMESPACE}_position_shares",
            "Shares the account holds, by symbol (the strategies' and any external)",
            labels=["symbol"],
        )
        exposure = GaugeMetricFamily(
            f"{NAMESPACE}_position_exposure_krw",
            "Shares the account holds x last price (average cost before a trade), by symbol",
            labels=["symbol"],
        )
        left = _capped(rows, cap, shares, exposure, per=lambda key: ())
        dropped.add_metric(["position"], float(left))
        yield shares
        yield exposure
        yield dropped

    def _reconciliation(self) -> Iterable[Metric]:
        r = self.metrics.reconciles
        yield CounterMetricFamily(
            f"{NAMESPACE}_reconcile_runs",
            "Reconciliation passes against the broker's books that completed",
            value=float(self.trader.reconciler.runs),
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_position_divergences",
            "Symbols whose position differed from the broker's at the last reconciliation",
            value=float(r.last_divergences),
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_position_divergences_found",
            "Position differences found by all reconciliation passes since start-up",
            value=float(r.divergences),
        )


def _capped(
    rows: list[tuple[tuple[str, ...], int, int]],
    cap: int,
    shares: GaugeMetricFamily,
    exposure: GaugeMetricFamily,
    *,
    per: Callable[[tuple[str, ...]], tuple[str, ...]],
) -> int:
    """Add (labels, qty, exposure) rows to the two families, the `cap` largest exposures
    each as its own series, the rest's exposure summed per `per(labels)` under
    symbol=OTHER_SYMBOLS (shares of different symbols do not add up: left out). Returns how
    many rows were left out."""
    other: dict[tuple[str, ...], int] = {}
    kept = rows
    if len(rows) > cap:
        kept = heapq.nlargest(cap, rows, key=lambda r: (abs(r[2]), r[0]))
        chosen = {r[0] for r in kept}
        for labels, _qty, value in rows:
            if labels not in chosen:
                key = per(labels)
                other[key] = other.get(key, 0) + value
    for labels, qty, value in sorted(kept):
        shares.add_metric(list(labels), float(qty))
        exposure.add_metric(list(labels), float(value))
    for key, value in sorted(other.items()):
        exposure.add_metric([*key, OTHER_SYMBOLS], float(value))
    return max(0, len(rows) - cap)


def _mirror(stats: Mapping[str, int]) -> Iterable[Metric]:
    yield GaugeMetricFamily(
        f"{NAMESPACE}_mirror_connected",
        "1 while the MQTT mirror is connected to its broker",
        value=float(stats.get("connected", 0)),
    )
    yield GaugeMetricFamily(
        f"{NAMESPACE}_mirror_spooled",
        "QoS 1 messages (orders, fills, risk) waiting for the broker's acknowledgement",
        value=float(stats.get("spooled", 0)),
    )
    yield CounterMetricFamily(
        f"{NAMESPACE}_mirror_reconnects",
        "Broker connections after the first",
        value=float(stats.get("reconnects", 0)),
    )
    published = CounterMetricFamily(
        f"{NAMESPACE}_mirror_published",
        "Messages the mirror published: market data (QoS 0), account events (QoS 1, acked)",
        labels=["kind"],
    )
    published.add_metric(["market"], float(stats.get("published_market", 0)))
    published.add_metric(["account"], float(stats.get("published_account", 0)))
    yield published
    dropped = CounterMetricFamily(
        f"{NAMESPACE}_mirror_dropped",
        "Messages the mirror let go: market data with no broker (offline), QoS 1 messages "
        "past a full spool (spool; the journal has them)",
        labels=["why"],
    )
    dropped.add_metric(["offline"], float(stats.get("dropped_offline", 0)))
    dropped.add_metric(["spool"], float(stats.get("spool_dropped", 0)))
    yield dropped


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
