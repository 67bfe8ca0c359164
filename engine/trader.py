"""The trading engine assembled: bus, risk, portfolio, OMS, journal, strategies, reconciliation.

`Trader` is what the daemon runs and what the tests drive. Start-up and crash recovery are one
path (`start`): the journal rebuilds open orders and risk counters, the broker's books settle
them, and only then do strategies start. The feed is attached before that, so no 00 notice
can fall between the broker's answer and the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

import structlog

from engine.broker import KiwoomBroker
from engine.bus import JOURNAL_MAX_ACCOUNT, AccountOverflow, ConsumerQueue, EventBus
from engine.clock import Clock
from engine.config import Config
from engine.events import (
    Disconnected,
    Event,
    Exchange,
    FeedResumed,
    FeedStale,
    Fill,
    OrderExecution,
    OrderState,
    OrderUpdate,
    Reconnected,
    RiskRejected,
    SessionChanged,
    Trade,
    TradingState,
    TradingStateChanged,
    ViEvent,
)
from engine.host import StrategyHost
from engine.journal import JOURNALED, Journal
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError
from engine.kiwoom.history import KiwoomHistory
from engine.plugins import LoadedStrategy
from engine.trading.broker import BrokerUnavailable
from engine.trading.oms import OrderManager
from engine.trading.orders import Order, OrderReason
from engine.trading.portfolio import Portfolio
from engine.trading.reconcile import Reconciler
from engine.trading.risk import HaltReason, Reason, RiskEngine
from engine.universe.manager import Universe
from engine.universe.port import UniverseFeed

log = structlog.get_logger(__name__)

_LOGGED = frozenset({OrderUpdate, Fill, RiskRejected})
_OUTCOMES = frozenset(
    {OrderState.SUBMITTING, OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED}
)

JOURNAL_BACKLOG = HaltReason.JOURNAL_BACKLOG.value
"""The halt reason while the journal's queue is at its bound (JOURNAL_MAX_ACCOUNT events not
yet written); lifted by itself once the journal has written half of them."""

RECONCILE_RETRY_S = 1.0
"""How soon reconciliation runs again while an order's outcome is unknown or a pass failed."""
COUNTERS_SAVE_S = 1.0

_REFUSED_BEFORE_SENDING = frozenset(
    {*(r.value for r in Reason), OrderReason.STOPPING, OrderReason.JOURNAL}
) - {Reason.STALE.value}
"""Reasons of orders that never went out: every risk code but STALE, which the broker's rate
limit caused after the order was counted as sent, and the shutdown's and the journal's."""


def _sent(orders: list[Order]) -> int:
    """How many of `orders` (journaled) are the engine's own that went out, or may have: an
    intent whose POST a crash cut off."""
    return sum(
        1
        for o in orders
        if not o.external
        and not (o.state is OrderState.REJECTED and o.reason in _REFUSED_BEFORE_SENDING)
    )


class Trader:
    """See the module docstring. `on_event` is the feed's callback."""

    def __init__(
        self,
        cfg: Config,
        api: KiwoomApi,
        clock: Clock,
        strategies: list[LoadedStrategy],
        *,
        journal: Journal | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.clock = clock
        self.bus = EventBus(clock)
        self.journal = journal or Journal(cfg.daemon.state_dir, clock)
        pcfg = cfg.portfolio
        if cfg.kiwoom.mode == "sim":
            # The built-in simulator charges its own configured rates (0 by default); a fill
            # that carries no fee is then exactly that, not an estimate of Kiwoom's.
            pcfg = dataclasses.replace(
                pcfg,
                commission_bp=cfg.sim.commission_bp,
                sell_tax_bp=cfg.sim.sell_tax_bp,
                sell_tax_table=cfg.sim.sell_tax_table,
            )
        self.portfolio = Portfolio(pcfg, clock)
        self.risk = RiskEngine(
            cfg.risk,
            clock,
            check_session_hours=cfg.risk.check_session_hours and cfg.kiwoom.mode != "sim",
            feed_sessions=cfg.risk.check_session_hours,
        )
        if cfg.kiwoom.mode == "mock":
            why = "Kiwoom's mock trading (모의투자) takes KRX orders only"
            self.risk.refused_venues = {Exchange.NXT: why, Exchange.SOR: why}
        self.risk.may_sell_external = frozenset(
            sc.name for sc in cfg.strategies if sc.may_sell_external
        )
        self.broker = KiwoomBroker(api)
        self.oms = OrderManager(
            self.broker,
            self.bus,
            self.risk,
            self.portfolio,
            self.journal,
            clock,
            max_order_delay_s=cfg.risk.max_order_delay_ms / 1000,
            on_unknown=self.request_reconcile,
            on_journal_refused=self._journal_refused,
        )
        self.reconciler = Reconciler(self.broker, self.oms)
        self.host = StrategyHost(self.bus, self.oms, clock, strategies)
        self.universe = Universe(
            self.host,
            base=self.portfolio.base,
            store=self.journal,
            history=KiwoomHistory(api, clock),
        )
        self.host.universe = self.universe

        self.host.default_venue = Exchange(cfg.daemon.venue)
        # Never drops an order or fill; at its bound (a stalled journal) trading halts.
        self.journal_queue = ConsumerQueue(
            "journal",
            types=JOURNALED,
            max_account=JOURNAL_MAX_ACCOUNT,
            account_overflow=AccountOverflow.HALT,
            on_full=self._journal_backlog_full,
            on_drained=self._journal_backlog_drained,
        )
        # Realised PnL drives the daily loss limit: saved with the fills that move it.
        self.journal.counters_source = lambda: (self.risk.trading_day(), self.risk.counters())
        self.journal.on_fault = self._journal_fault
        # Order, fill and risk lines are written from here, off the dispatch: rendering one
        # took as long as the risk checks, between a strategy's buy and its POST.
        self.log_queue = ConsumerQueue("log", types=_LOGGED)
        self._reconcile_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._counters_saved: dict[str, int] = {}
        self._halts_saved: dict[str, str] | None = None
        """The halts last journaled (None: not known to be journaled)."""
        self.running = False
        self._stopped = False
        self._started_equity = False
        """Snapshots are journaled from `start` on (before it, positions are not known)."""
        self._wire()

    def _wire(self) -> None:
        bus = self.bus
        bus.subscribe(Trade, self.portfolio.on_trade)
        # Before the strategies hear of them: `vi_active` and `session` already say so.
        bus.subscribe(ViEvent, self.risk.market.on_vi)
        bus.subscribe(SessionChanged, self.risk.market.on_session)
        bus.subscribe(OrderExecution, self.oms.on_execution)
        bus.subscribe((Disconnected, FeedStale), self._feed_down)
        bus.subscribe(FeedResumed, self._feed_resumed)
        bus.subscribe(Reconnected, self._feed_back)
        bus.subscribe(TradingStateChanged, self._state_changed)
        bus.attach(self.journal_queue)
        bus.attach(self.log_queue)

    def attach_feed(self, feed: UniverseFeed) -> None:
        """The feed the strategies' conditions and run-time subscriptions go through (the
        daemon's KiwoomUniverseFeed); before `start`."""
        self.universe.attach(feed)

    # --- the feed's entry point ------------------------------------------------------------

    def on_event(self, ev: Event) -> bool:
        """The feed's callback (KiwoomWebSocket on_event): everything enters the bus here.
        True when the event started work (an order) that should run before the feed goes
        on with the rest of its frame."""
        bus = self.bus
        bus.publish(ev)
        return bus.take_turn_wanted()

    # --- life --------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Rebuild from the journal: open orders, strategy positions, today's risk counters,
        and the bus's numbering. Call before the feed is attached."""
        journal = self.journal
        journal.open()
        self.bus.continue_after(journal.last_seq())
        self.oms.id_prefix = f"{journal.next_client_seq()}."
        # Ended orders too: their broker numbers are taken (reconciliation must not give one
        # to an intent that lost its answer), and a late notice for one finds its order.
        orders = journal.load_orders()
        self.oms.adopt(orders)
        open_orders = [o for o in orders if o.is_open]
        for order in open_orders:
            if order.state in (OrderState.NEW, OrderState.SUBMITTING):
                # Its POST may have reached the broker, and the answer died with the process
                # that sent it: outcome unknown, for reconciliation to settle (never resent).
                self.oms.restarted(order)
                self.request_reconcile()
        day = self.risk.trading_day()
        counters = journal.load_counters(day)
        # An order's intent is committed before its POST, the counters up to a second later:
        # after a kill -9 the journal knows of orders sent that the saved count missed.
        counters["orders_sent"] = max(counters.get("orders_sent", 0), _sent(orders))
        halts = journal.load_halts()
        # Halts are journaled as they change, before the fills that breach the loss limit
        # are: what the journal holds is the truth (a resume after a breach holds too). A
        # journal that never held halts (migrated from version 1) infers the loss halt.
        change = self.risk.restore(day, counters, halt_on_loss=halts is None)
        if halts:
            change = self.risk.restore_halts(halts) or change
        self._halts_saved = self.risk.journaled_halts() if halts is not None else None
        if change is not None:
            self.bus.publish(change)
        # Each strategy's shares and cost from its journaled fills, and the day's PnL as the
        # risk counter kept it: the fills reconciliation books at start (those the journal
        # missed) are booked against these, before the broker's holdings replace the
        # account's quantities.
        self.portfolio.restore(journal.fills_in_order(), day, self.risk.counters()["realized_pnl"])
        self.risk.reconciling = True
        self._tasks.append(
            asyncio.create_task(self.journal.run(self.journal_queue), name="journal")
        )
        self._tasks.append(asyncio.create_task(self._log_events(), name="order-log"))
        log.info("journal_recovered", open_orders=len(open_orders), counters=self.risk.counters())

    async def start(self) -> None:
        """Reconcile with the broker, load base prices and history, then start strategies.
        Raises KiwoomError when the broker cannot be asked at all (start-up fails)."""
        result = await self.reconciler.run(load_positions=True)
        log.info(
            "reconciled",
            orders_checked=result.orders_checked,
            orders_changed=result.orders_changed,
            positions=len(self.portfolio.positions),
            cash=self.portfolio.cash,
        )
        await self._load_base_prices()
        self.risk.reconciling = False
        self.host.instantiate()
        await self.host.warm_up(KiwoomHistory(self.api, self.clock))
        await self.universe.prepare()
        self.host.start()
        self.universe.start()
        self.running = True
        self._started_equity = True
        self._tasks.append(asyncio.create_task(self._reconcile_loop(), name="reconcile"))
        self._tasks.append(asyncio.create_task(self._counters_loop(), name="risk-counters"))
        self._tasks.append(asyncio.create_task(self._equity_loop(), name="equity-snapshots"))
        log.info(
            "strategies_started",
            strategies=[s.name for s in self.host.slots if s.enabled],
            disabled=[s.name for s in self.host.slots if not s.enabled],
        )

    async def _load_base_prices(self) -> None:
        symbols = sorted({s for slot in self.host.slots for s in slot.symbols})
        for symbol in symbols:
            if symbol in self.portfolio.base:
                continue
            try:
                info = await self.api.stock_info(symbol)
            except KiwoomError as e:
                log.warning("base_price_unavailable", symbol=symbol, error=str(e))
                continue
            if info.base_price > 0:
                self.portfolio.base[symbol] = info.base_price

    async def stop(self, *, cancel_open: bool, timeout_s: float = 5.0) -> None:
        """Stop strategies and new orders; cancel open orders if asked; wait for order calls
        in flight up to `timeout_s`; flush the journal. Never raises; a second call does
        nothing."""
        if self._stopped:
            return
        self._stopped = True
        self.running = False
        # Before on_stop: what a strategy orders there is refused (STOPPING), as documented.
        self.oms.accepting = False
        self.host.stop()
        if cancel_open:
            for order in self.oms.open_orders():
                if not order.external:
                    self.oms.cancel(order)
        left = await self.oms.drain(timeout_s)
        if left:
            log.warning("order_calls_still_in_flight", count=left)
        await self.universe.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._save_counters()
        if self._started_equity:
            self.record_equity()  # the day's last mark: the report of a stopped daemon ends here
        self.journal.close()
        log.info("engine_stopped", orders=self.oms.counts_by_state())

    async def close(self) -> None:
        """`stop` without cancelling anything, for a start-up that failed half way."""
        await self.stop(cancel_open=False, timeout_s=1.0)

    # --- operator actions --------------------------------------------------------------------

    def halt(self, reason: str, kind: HaltReason = HaltReason.OPERATOR) -> None:
        """Halt trading for `kind` (an operator's kill switch by default), `reason` the text
        shown with it. Journaled at once: it outlives any restart until `resume`."""
        change = self.risk.halt(kind, reason)
        if change is not None:
            self.bus.publish(change)

    def resume(self, reason: str) -> None:
        """Lift every halt a person must lift (operator, divergence, daily loss); a JOURNAL
        halt stays until the journal writes again."""
        change = self.risk.resume(reason)
        if change is not None:
            self.bus.publish(change)

    def _journal_backlog_full(self, queue: ConsumerQueue) -> None:
        """The journal is `max_account` events behind: halt until it catches up."""
        self.halt(JOURNAL_BACKLOG, HaltReason.JOURNAL_BACKLOG)

    def _journal_backlog_drained(self, queue: ConsumerQueue) -> None:
        """Lift the backlog's halt, and only that one (an operator's halt stays)."""
        change = self.risk.lift(HaltReason.JOURNAL_BACKLOG, f"{JOURNAL_BACKLOG} cleared")
        if change is not None:
            self.bus.publish(change)

    def reload(self, cfg: Config) -> list[str]:
        """Apply the risk limits and strategy params of a re-read config (SIGHUP); the
        connections, orders and counters stay. Returns the problems that refused it (then
        nothing changed), else []. Everything else in `cfg` waits for a restart."""
        problems: list[str] = []
        params: dict[str, Mapping[str, Any]] = {}
        new = {sc.name: (i, sc) for i, sc in enumerate(cfg.strategies)}
        for slot in self.host.slots:
            i, sc = new.get(slot.name, (-1, None))
            if sc is None or sc.params == slot.params:
                continue
            try:
                slot.loaded.cls.check_params(sc.params)
            except Exception as e:
                problems.append(f"strategies[{i}].params: {e}")
            else:
                params[slot.name] = sc.params
        if problems:
            return problems
        old = self.cfg.risk
        change = self.risk.reconfigure(cfg.risk)
        self.risk.check_session_hours = (
            cfg.risk.check_session_hours and self.cfg.kiwoom.mode != "sim"
        )
        self.risk.feed_sessions = cfg.risk.check_session_hours
        self.oms.max_order_delay_s = cfg.risk.max_order_delay_ms / 1000
        for name, p in params.items():
            self.host.by_name[name].set_params(p)
        self.cfg = dataclasses.replace(
            self.cfg,
            risk=cfg.risk,
            strategies=tuple(
                dataclasses.replace(sc, params=params[sc.name]) if sc.name in params else sc
                for sc in self.cfg.strategies
            ),
        )
        log.info(
            "config_reloaded",
            risk={
                f.name: getattr(cfg.risk, f.name)
                for f in dataclasses.fields(cfg.risk)
                if getattr(cfg.risk, f.name) != getattr(old, f.name)
            },
            params=sorted(params),
        )
        if change is not None:
            self.bus.publish(change)
        return []

    def request_reconcile(self) -> None:
        self._reconcile_now.set()

    def _journal_refused(self, error: Exception) -> None:
        """The journal could not hold an order's intent: that order ended REJECTED (JOURNAL)
        and nothing was sent. The halt comes from the journal itself, which reports the fault
        to `Journal.on_fault` (`_journal_fault`: a halt that lifts once writes succeed)."""
        log.error("journal_refused_order", error=str(error))

    # --- background --------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        period = self.cfg.portfolio.reconcile_s
        wait_s = period
        while True:
            sleep = asyncio.ensure_future(self.clock.sleep(wait_s))
            woken = asyncio.ensure_future(self._reconcile_now.wait())
            try:
                await asyncio.wait({sleep, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                woken.cancel()
            self._reconcile_now.clear()
            try:
                result = await self.reconciler.run()
            except (BrokerUnavailable, KiwoomError) as e:
                log.warning("reconcile_failed", error=str(e))
                wait_s = RECONCILE_RETRY_S
                continue
            except Exception:
                log.exception("reconcile_crashed")
                wait_s = RECONCILE_RETRY_S
                continue
            if self.risk.reconciling and self.risk.feed_live:
                self.risk.reconciling = False
                log.info("reconciled_after_reconnect", orders_changed=result.orders_changed)
            if result.divergences and self.cfg.portfolio.halt_on_divergence:
                self.halt("POSITION_DIVERGENCE", HaltReason.DIVERGENCE)
            unknown = any(o.state is OrderState.UNKNOWN for o in self.oms.open_orders())
            retry = unknown or self.risk.reconciling or self.reconciler.carried_pending
            wait_s = RECONCILE_RETRY_S if retry else period

    async def _counters_loop(self) -> None:
        while True:
            await self.clock.sleep(COUNTERS_SAVE_S)
            # A JOURNAL halt lifts once the journal writes again, also when nothing else
            # would be written meanwhile.
            self.journal.probe()
            self._save_counters()
            self._save_halts()

    async def _equity_loop(self) -> None:
        """An equity snapshot every `report.equity_interval_s` on the clock (the daily
        report's line), the first at once."""
        while True:
            self.record_equity()
            await self.clock.sleep(self.cfg.report.equity_interval_s)

    async def journal_settled(self, timeout_s: float = 2.0) -> bool:
        """Wait (on the clock, at most `timeout_s`) until the journal's queue is empty: what
        was published by now is committed, for a reader of the journal (the day-end report).
        Returns whether it is."""
        deadline = self.clock.monotonic() + timeout_s
        while self.journal_queue.depth and self.clock.monotonic() < deadline:
            await self.clock.sleep(0.01)
        await asyncio.sleep(0)  # the writer's turn for what it took last
        return not self.journal_queue.depth

    def record_equity(self) -> bool:
        """Journal the account and each strategy marked at the last prices now. Never
        raises: a snapshot that cannot be written is logged (the journal's fault, if any,
        halts trading on its own) and the next one tried. Returns whether it was written."""
        try:
            self.journal.record_equity(self.portfolio.mark())
        except Exception as e:
            log.warning("equity_snapshot_failed", error=str(e))
            return False
        return True

    def _save_counters(self) -> None:
        counters = self.risk.counters()
        if counters != self._counters_saved:
            try:
                self.journal.save_counters(self.risk.trading_day(), counters)
            except Exception:
                log.exception("risk_counters_save_failed")
                return
            self._counters_saved = counters

    def _feed_down(self, ev: Event) -> None:
        self.risk.feed_live = False

    def _feed_resumed(self, ev: FeedResumed) -> None:
        # Same connection, registrations held: what was sent meanwhile arrives late and in
        # order, so there is nothing to reconcile.
        self.risk.feed_live = True

    def _feed_back(self, ev: Reconnected) -> None:
        # Notices may have been missed while down: deny new exposure until the broker's books
        # were read again.
        self.risk.feed_live = True
        self.risk.reconciling = True
        self.request_reconcile()

    def _state_changed(self, ev: TradingStateChanged) -> None:
        level = "error" if ev.state is TradingState.HALTED else "warning"
        getattr(log, level)(
            "trading_state_changed",
            state=ev.state.value,
            prev=ev.prev_state.value,
            reason=ev.reason,
            reasons=list(ev.reasons),
        )
        self._save_halts()

    def _save_halts(self) -> None:
        """Journal the halts a person must lift, as soon as they change: a kill -9 right
        after a halt must not come back trading."""
        halts = self.risk.journaled_halts()
        if halts == self._halts_saved:
            return
        try:
            self.journal.save_halts(halts)
        except Exception:
            # The journal halts trading itself meanwhile (JOURNAL); the next change or the
            # next save retries.
            log.exception("halts_save_failed", halts=halts)
            return
        self._halts_saved = halts

    def _journal_fault(self, error: str | None) -> None:
        """The journal stopped (`error`) or resumed (None) writing: halt with reason JOURNAL
        while it cannot, since an order whose intent cannot be stored must not be sent."""
        change = self.risk.set_journal_fault(error is not None, error or "")
        if change is not None:
            self.bus.publish(change)

    async def _log_events(self) -> None:
        try:
            while True:
                for ev in await self.log_queue.get():
                    self._log_event(ev)
        except asyncio.CancelledError:
            for ev in self.log_queue.take(self.log_queue.depth):
                self._log_event(ev)
            raise

    def _log_event(self, ev: Event) -> None:
        if type(ev) is OrderUpdate:
            self._log_order(ev)
        elif type(ev) is Fill:
            self._log_fill(ev)
        elif type(ev) is RiskRejected:
            self._rejected(ev)

    def _log_order(self, ev: OrderUpdate) -> None:
        # One info line per outcome (sent, filled, cancelled, rejected by the broker; a risk
        # refusal is its `risk_rejected` line); the steps between are debug.
        outcome = ev.state in _OUTCOMES and not (
            ev.state is OrderState.REJECTED and ev.prev_state is OrderState.NEW
        )
        (log.info if outcome else log.debug)(
            "order_update",
            client_id=ev.client_id,
            strategy=ev.strategy,
            symbol=ev.symbol,
            side=ev.side.value,
            qty=ev.qty,
            price=ev.price,
            state=ev.state.value,
            order_no=ev.order_no,
            filled_qty=ev.filled_qty,
            avg_fill_price=ev.avg_fill_price or None,
            reason=ev.reason or None,
        )

    def _log_fill(self, ev: Fill) -> None:
        log.info(
            "fill",
            client_id=ev.client_id,
            strategy=ev.strategy,
            symbol=ev.symbol,
            side=ev.side.value,
            qty=ev.qty,
            price=ev.price,
            order_no=ev.order_no,
            fill_no=ev.fill_no,
            strategy_realized_pnl=self._realized(ev.strategy),
        )

    def _realized(self, strategy: str | None) -> int | None:
        """The strategy's realised PnL as booked now (the log runs a little behind)."""
        if strategy is None:
            return None
        return sum(p.realized for p in self.portfolio.by_strategy.get(strategy, {}).values())

    def _rejected(self, ev: RiskRejected) -> None:
        log.info(
            "risk_rejected",
            strategy=ev.strategy,
            client_id=ev.client_id,
            symbol=ev.symbol,
            reason=ev.reason,
            limit=ev.limit,
            value=ev.value,
        )

    # --- reading -------------------------------------------------------------------------

    def _market_status(self) -> dict[str, Any]:
        """The session per venue (and whether the feed's notice says so) and the symbols
        under a VI."""
        market = self.risk.market
        venues = (Exchange.KRX, Exchange.NXT)
        return {
            "session": {v.value: market.session(v).value for v in venues},
            "session_from_feed": {v.value: market.from_feed(v) for v in venues},
            "vi": market.vi_symbols(),
            "vi_events": market.vi_events,
        }

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "trading_state": self.risk.state.value,
            "trading_state_reason": self.risk.state_reason,
            "trading_state_reasons": {k.value: v for k, v in self.risk.halts.items()},
            "reconciling": self.risk.reconciling,
            "feed_live": self.risk.feed_live,
            "strategies": [s.status() for s in self.host.slots],
            "universe": self.universe.status(),
            "orders": self.oms.counts_by_state(),
            "open_orders": [
                {
                    "client_id": o.client_id,
                    "strategy": o.strategy,
                    "symbol": o.symbol,
                    "side": o.side.value,
                    "qty": o.qty,
                    "price": o.price or 0,
                    "state": o.state.value,
                    "order_no": o.order_no,
                    "filled_qty": o.filled_qty,
                    "external": o.external,
                    "venue": o.venue.value,
                }
                for o in self.oms.open_orders()
            ],
            "market": self._market_status(),
            "portfolio": self.portfolio.snapshot(),
            "risk": self.risk.counters(),
            "limits": dataclasses.asdict(self.risk.cfg),
            "bus": {"published": self.bus.published, "handler_errors": self.bus.handler_errors},
            "queues": {q.name: q.stats() for q in self.bus.queues},
            "oms": vars(self.oms.stats),
        }
