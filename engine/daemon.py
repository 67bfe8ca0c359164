"""The daemon's wiring and lifecycle: simulator (mode sim), REST client, engine, feed, admin
endpoint, signals and systemd's notifications.

Start-up order matters: the journal is read first, the feed (with the account streams) comes
up next so that no order notice can slip between the broker's books and the live stream, then
the engine reconciles and starts the strategies; only then is systemd told READY=1, and the
watchdog pinged from the event loop itself. Shutdown (SIGTERM) runs the other way, all of it
within `daemon.stop_timeout_s` of the signal: strategies and new orders stop, open orders are
kept or cancelled (`daemon.on_stop`), the journal and the `flushers` (the MQTT spool) are
flushed, the feed closes, and the token is revoked last. SIGHUP re-reads risk limits and
strategy params.

Signals never wait for the loop (`_signals`): the stall watchdog's thread (engine/watchdog.py)
hears them through the wakeup fd, and plain `signal.signal` handlers run on the loop's thread
between bytecodes even while a strategy handler holds it. The watchdog breaks such a handler,
and ends the process when the deadline passes all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import structlog

from engine import config as config_mod
from engine.admin import AdminServer
from engine.alerts import Alerts
from engine.alerts.metrics import AlertsCollector
from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config
from engine.events import (
    Balance,
    Disconnected,
    Event,
    FeedResumed,
    FeedStale,
    OrderExecution,
    Reconnected,
    SessionChanged,
    TradingStateChanged,
)
from engine.holds import Holds
from engine.journal import JournalError
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.universe_feed import KiwoomUniverseFeed
from engine.kiwoom.ws import KiwoomWebSocket
from engine.metrics import EngineMetrics, LoopMonitor
from engine.notify import Notifier
from engine.plugins import LoadedStrategy, load_all
from engine.reports.day_end import DayEndReporter, OnReport
from engine.reports.files import ReportFiles
from engine.status_page import StatusPage
from engine.status_page.names import CACHE_FILE, SymbolNames
from engine.trader import Trader
from engine.watchdog import STALL_GRACE_S, Watchdog

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_STARTUP = 1
ACCOUNT_STREAMS = ("00", "04")
VI_STREAM = "1h"
"""VI notices (VI발동/해제), registered for every symbol beside `realtime_types`: risk and
the strategies need them (VI_ACTIVE, on_vi, vi_active)."""
SESSION_STREAMS = ("0s",)
"""The market's session notices (장운영구분), registered without an item: they drive the
session state (on_session, `session`, SESSION_CLOSED)."""
STATS_INTERVAL_S = 30.0

# How the stop deadline (daemon.stop_timeout_s) is shared out: each step may use what is left
# less the share kept for the steps after it, so a step that hangs (an order POST, a frozen
# broker) takes its own time, never the token revoke's.
KEEP_AFTER_ORDERS = 0.4
"""Of the deadline, kept from the order calls in flight for flushing, the feed and the revoke."""
KEEP_AFTER_FLUSH = 0.25
"""Kept from the flushers (journal, MQTT spool) for the feed's close and the revoke."""
FEED_CLOSE_S = 2.0
"""At most this for the WebSocket's closing handshake; a server that does not answer is cut."""
FINAL_S = 0.2
"""Kept from the token revoke for closing the admin thread and the last lines of the log."""
ALERTS_SHARE = 0.15
"""Of the deadline, at most this for the alerts still queued (the stop message among them):
3 s of the default 20, enough for a few paced messages; a target that is down gets no more."""

Flusher = Callable[[float], Awaitable[None]]
"""Flushes a consumer's backlog at shutdown within the seconds it is given (the MQTT mirror's
spool). It must return by then; it is cancelled if it does not."""


class _CountsByName(Mapping[str, int]):
    """A live view by type name of counts kept by type."""

    def __init__(self, by_type: dict[type, int]) -> None:
        self._by_type = by_type

    def _named(self) -> dict[str, int]:
        return {t.__name__: n for t, n in self._by_type.items()}

    def __getitem__(self, name: str) -> int:
        return self._named()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._named())

    def __len__(self) -> int:
        return len(self._by_type)


_REPORTED: Final = frozenset(
    {OrderExecution, Balance, Disconnected, Reconnected, FeedStale, FeedResumed}
)


class FeedReport:
    """Counts what the feed delivers and logs account events as they come (they are rare)."""

    def __init__(self) -> None:
        # By type, not by name: this runs for every event of the feed.
        self._by_type: dict[type, int] = {}
        self.counts: Mapping[str, int] = _CountsByName(self._by_type)
        """Events delivered, by type name (a live view)."""

    def __call__(self, ev: Event) -> None:
        t = type(ev)
        by_type = self._by_type
        by_type[t] = by_type.get(t, 0) + 1
        if t in _REPORTED:
            self._report(ev)

    @staticmethod
    def _report(ev: Event) -> None:
        if isinstance(ev, OrderExecution | Balance):
            log.debug("account_event", kind=type(ev).__name__, symbol=ev.symbol)
        elif isinstance(ev, Disconnected):
            log.warning("feed_disconnected", reason=ev.reason)
        elif isinstance(ev, Reconnected):
            log.info("feed_reconnected", attempts=ev.attempt, downtime_s=round(ev.downtime_s, 3))
        elif isinstance(ev, FeedStale):
            log.warning("feed_stale", silent_s=ev.silent_s)
        elif isinstance(ev, FeedResumed):
            log.info("feed_resumed", silent_s=ev.silent_s)


@dataclass
class Running:
    """What a started daemon holds; shutdown closes it in order."""

    cfg: Config
    rest: KiwoomRest
    ws: KiwoomWebSocket
    report: FeedReport
    trader: Trader
    admin: AdminServer | None
    loop: LoopMonitor
    flushers: list[Flusher] = field(default_factory=list)
    """Flushed at shutdown after the journal, before the feed closes and the token is revoked:
    the MQTT mirror's spool goes here."""
    alerts: Alerts | None = None
    """Notifications (`[alerts]`); `alerts.send_report(text, png_path)` sends the daily
    report."""


class RecordingImports:
    """At the day roll the recorder closes the day's file; this imports it into the history
    store (`kiwoom-engine history --import FILE`, the config's `[data] dir`) in a subprocess
    of its own session, so that the import never runs on the event loop or slows trading. A
    thread (not the loop) waits for it and logs the outcome (recording_import_done /
    recording_import_failed); a daemon that stops meanwhile leaves it running to its end."""

    def __init__(self, cfg: Config) -> None:
        self.argv = [sys.executable, "-m", "engine"]
        if cfg.source != "<defaults>":
            self.argv += ["-c", cfg.source]
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, closed: Path) -> None:
        argv = [*self.argv, "--log-level", "warning", "history", "--import", str(closed)]
        log.info("recording_import_started", path=str(closed))
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            log.error("recording_import_failed", path=str(closed), error=str(e))
            return
        self.running.append(proc)
        threading.Thread(
            target=self._wait, args=(proc, closed), name="recording-import", daemon=True
        ).start()

    def _wait(self, proc: subprocess.Popen[bytes], closed: Path) -> None:
        _, err = proc.communicate()
        self.running.remove(proc)
        if proc.returncode:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            log.error(
                "recording_import_failed",
                path=str(closed),
                exit_code=proc.returncode,
                error=tail[0][:300],
            )
        else:
            log.info("recording_import_done", path=str(closed))


async def run(
    cfg: Config,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
    strategies: list[LoadedStrategy] | None = None,
    notifier: Notifier | None = None,
    on_ready: Callable[[Trader], None] | None = None,
    on_report: OnReport | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT). Returns the process exit code.

    `on_ready(trader)` is called once the engine runs (strategies started), for embedders and
    tests that watch its state (orders, positions, counters) rather than its log.
    `on_report(files)` is told each daily report written at the day's end (`[report]
    at_day_end`; engine/reports/day_end.py): the alerts send it.

    Start-up failures (simulator or admin port taken, login refused, Kiwoom unreachable,
    record file unwritable, a strategy that cannot be loaded, a journal held by another
    engine) are logged with their reason and return EXIT_STARTUP; after start-up the feed
    reconnects on its own. A stop during start-up abandons it (connect and token retries can
    take longer than systemd waits) and still closes what was opened. A stop after start-up
    runs the shutdown within `daemon.stop_timeout_s` and returns EXIT_OK. With no `stop`
    given, SIGHUP reloads risk limits and strategy params from the config file.
    """
    notifier = notifier or Notifier()
    file_cfg = cfg
    own_signals = stop is None
    stop = stop or asyncio.Event()
    # In the configured state_dir, not the built-in simulator's (started afresh every time).
    holds = Holds(cfg.daemon.state_dir)
    watchdog = Watchdog(
        stall_s=cfg.daemon.handler_stall_s,
        stop_timeout_s=cfg.daemon.stop_timeout_s,
        holds=holds,
        resignal=own_signals,
        # Embedded (a `stop` given: tests, tools), the process is not the daemon's to end.
        exit=os._exit if own_signals else _embedded_no_exit,
    )
    # SIGHUP's default action would end the process: from the first moment, a reload is
    # either applied or (during start-up) refused with a log line.
    hup = _Reloader(file_cfg)
    restore_signals: Callable[[], None] = lambda: None  # noqa: E731
    if own_signals:
        restore_signals = _signals(stop, hup, watchdog)
    watchdog.start()
    _check_systemd_watchdog(cfg, notifier)
    notifier.status("starting")
    loop_monitor = LoopMonitor()
    background: list[asyncio.Task[None]] = [
        asyncio.create_task(loop_monitor.run(), name="loop-monitor")
    ]
    # Made before start-up, so that it hears the session notices the feed starts with.
    reporter = DayEndReporter(cfg, clock, on_report) if cfg.report.at_day_end else None
    try:
        async with AsyncExitStack() as stack:
            starting = asyncio.create_task(
                _start(
                    cfg,
                    stack,
                    clock,
                    strategies,
                    notifier,
                    loop_monitor,
                    watchdog,
                    holds,
                    reporter,
                ),
                name="daemon-start",
            )
            stopping = asyncio.create_task(stop.wait(), name="daemon-stop")
            try:
                await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not starting.done():
                watchdog.stop_requested()
                notifier.stopping("stopping during start-up")
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                log.info("daemon_stopped_during_startup")
                return EXIT_OK
            try:
                running = starting.result()
            except _StartupFailed:
                return EXIT_STARTUP
            except Exception as e:
                # Whatever else broke start-up: one line with the reason (and the traceback,
                # through the redactor), never a bare crash.
                log.exception("startup_failed", error_type=type(e).__name__, error=str(e))
                return EXIT_STARTUP
            hup.trader = running.trader
            if reporter is not None and running.alerts is not None:
                reporter.on_report = _report_to_alerts(running.alerts, on_report)
            if on_ready is not None:
                on_ready(running.trader)
            if reporter is not None:
                background.append(asyncio.create_task(reporter.run(), name="day-end-report"))
            await _serve(running, stop, notifier, background)
            watchdog.stop_requested()
            await _shutdown(running, clock, notifier, already_s=watchdog.since_stop_s())
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        notifier.close()
        watchdog.close()
        restore_signals()
    log.info("daemon_stopped")
    return EXIT_OK


async def _serve(
    running: Running,
    stop: asyncio.Event,
    notifier: Notifier,
    background: list[asyncio.Task[None]],
) -> None:
    """From READY=1 until `stop`."""
    cfg, trader, ws = running.cfg, running.trader, running.ws
    log.info(
        "daemon_running",
        mode=cfg.kiwoom.mode,
        rest_url=cfg.rest_url,
        symbols=cfg.daemon.symbols,
        types=cfg.daemon.realtime_types,
        strategies=[slot.name for slot in trader.host.slots if slot.enabled],
        admin_port=running.admin.port if running.admin else None,
    )
    # Logged in, subscribed, reconciled, strategies started: only now is the service up.
    if running.admin is not None:
        running.admin.publish()  # health says so from now, not from the next period
    notifier.ready(status_line(trader, ws))
    if running.alerts is not None:
        running.alerts.started(
            cfg.kiwoom.mode,
            [slot.name for slot in trader.host.slots if slot.enabled],
            trader.risk.state.value,
        )
    if notifier.enabled:

        def tell(_ev: Event) -> None:
            notifier.status(status_line(trader, ws))

        trader.bus.subscribe(
            (TradingStateChanged, Disconnected, Reconnected, FeedStale, FeedResumed), tell
        )
    if notifier.watchdog_interval_s is not None:
        background.append(
            asyncio.create_task(_watchdog(notifier, notifier.watchdog_interval_s), name="watchdog")
        )
    background.append(
        asyncio.create_task(_report_stats(running.report, ws, trader, notifier), name="stats")
    )
    await stop.wait()


async def _shutdown(
    running: Running, clock: Clock, notifier: Notifier, *, already_s: float = 0.0
) -> None:
    """The SIGTERM steps, each within its share of `daemon.stop_timeout_s` (see
    KEEP_AFTER_ORDERS), counted from the stop request, `already_s` ago (a loop held by a
    strategy hears it late): stop strategies and new orders (a strategy's `on_stop` that
    blocks is broken by the watchdog); keep or cancel open orders and wait for the order calls
    in flight; flush the journal, then the `flushers`; close the feed; revoke the token. The
    log's `within_s` is the time it really took. Never raises."""
    cfg, trader = running.cfg, running.trader
    total = cfg.daemon.stop_timeout_s
    asked = clock.monotonic() - already_s
    deadline = asked + total

    def left(keep: float = 0.0) -> float:
        return max(0.0, deadline - clock.monotonic() - keep * total)

    notifier.stopping("stopping: strategies, orders, journal")
    log.info(
        "daemon_stopping",
        events=dict(running.report.counts),
        codec=running.ws.stats.as_dict(),
        on_stop=cfg.daemon.on_stop,
        deadline_s=total,
    )
    with contextlib.suppress(Exception):
        await trader.stop(
            cancel_open=cfg.daemon.on_stop == "cancel", timeout_s=left(KEEP_AFTER_ORDERS)
        )
    for flush in running.flushers:
        budget = left(KEEP_AFTER_FLUSH)
        try:
            async with asyncio.timeout(budget):
                await flush(budget)
        except TimeoutError:
            log.warning("flush_abandoned", flusher=getattr(flush, "__qualname__", repr(flush)))
        except Exception:
            log.exception("flush_failed", flusher=getattr(flush, "__qualname__", repr(flush)))
    if running.alerts is not None:
        alerts = running.alerts
        with contextlib.suppress(Exception):
            alerts.stopped(
                cfg.kiwoom.mode,
                trader.oms.counts_by_state().get("filled", 0),
                trader.portfolio.realized_today,
                len(trader.oms.open_orders()),
            )
        await alerts.close(min(left(KEEP_AFTER_FLUSH), ALERTS_SHARE * total))
    notifier.status("stopping: closing the feed, revoking the token")
    await running.ws.close(timeout_s=min(FEED_CLOSE_S, left() / 2))
    # The token last: nothing may need it after this (Kiwoom shares it with every client of
    # the app key, see kiwoom.revoke_on_exit).
    await running.rest.close(timeout_s=max(0.0, left() - FINAL_S))
    if running.admin is not None:
        await running.admin.close(timeout_s=max(0.05, left()))
    took = clock.monotonic() - asked
    if took > total:
        log.warning("shutdown_overran", took_s=round(took, 3), deadline_s=total)
    log.info("shutdown_done", within_s=round(took, 3), deadline_s=total)


async def assemble(
    cfg: Config,
    stack: AsyncExitStack,
    clock: Clock = SYSTEM_CLOCK,
    strategies: list[LoadedStrategy] | None = None,
) -> Running:
    """The daemon's start-up path without its signals, notifications or serving loop: what
    benchmarks and tools drive to measure the real assembly. Everything opened is registered
    on `stack`; stop the engine with `running.trader.stop(...)` before leaving it."""
    # Never systemd's: a tool run under a service must not speak for it.
    return await _start(
        cfg, stack, clock, strategies, Notifier(env={}), LoopMonitor(), None, None, None
    )


class _StartupFailed(Exception):
    """Start-up failed and the reason is already logged."""


async def _start(
    cfg: Config,
    stack: AsyncExitStack,
    clock: Clock,
    strategies: list[LoadedStrategy] | None,
    notifier: Notifier,
    loop_monitor: LoopMonitor,
    watchdog: Watchdog | None,
    holds: Holds | None,
    reporter: DayEndReporter | None,
) -> Running:
    """Open the simulator (mode sim), the REST client, the engine, the admin endpoint and the
    feed, each registered on `stack` for shutdown. Returns what runs."""
    if strategies is None:
        strategies, problems = load_all(cfg)
        if problems:
            for problem in problems:
                log.error("strategy_config_error", problem=problem)
            raise _StartupFailed
    if cfg.kiwoom.mode == "sim" and not cfg.kiwoom.rest_url:
        from engine.sim.simulator import SimStartupError, Simulator

        try:
            sim = await stack.enter_async_context(Simulator(cfg.sim, clock))
        except SimStartupError as e:
            log.error("sim_start_failed", error=str(e))
            raise _StartupFailed from e
        except OSError as e:
            log.error(
                "sim_start_failed",
                port=cfg.sim.port,
                error=str(e),
                hint="is `kiwoom-engine sim` already running? set kiwoom.rest_url/ws_url to use it",
            )
            raise _StartupFailed from e
        # sim.port may be 0 (any free port): point the clients at the real one. The built-in
        # simulator's books start empty every time, so a journal of an earlier run would
        # only disagree with them: it gets its own state directory, started afresh.
        sim_state = cfg.journal_dir
        shutil.rmtree(sim_state, ignore_errors=True)
        cfg = dataclasses.replace(
            cfg,
            kiwoom=dataclasses.replace(cfg.kiwoom, rest_url=sim.rest_url, ws_url=sim.ws_url),
            daemon=dataclasses.replace(cfg.daemon, state_dir=str(sim_state)),
        )
    try:
        rest = KiwoomRest.from_config(cfg, clock, revoke_on_close=cfg.kiwoom.revoke_on_exit)
        await stack.enter_async_context(rest)
        trader = Trader(cfg, KiwoomApi(rest), clock, strategies)
        if reporter is not None:
            reporter.marks = trader
            if reporter.by_session:
                trader.bus.subscribe(SessionChanged, reporter.on_session)
        if holds is not None:
            _apply_holds(trader, holds)
        alerts = _start_alerts(cfg, stack, clock, trader)
        if watchdog is not None:
            watchdog.watch(trader.host)
        notifier.status("starting: reading the journal")
        try:
            await trader.recover()
        except JournalError as e:
            log.error("journal_unusable", error=str(e))
            raise _StartupFailed from e
        # Registered before the feed's close: the exit stack unwinds in reverse, so on a failed
        # start-up the journal is flushed and closed after the feed is gone.
        stack.push_async_callback(trader.close)
        if alerts is not None:
            alerts.mark_baseline()
        report = FeedReport()
        trader.bus.subscribe_all(report)
        recorder = None
        if cfg.daemon.record:
            recorder = FrameRecorder(
                cfg.daemon.record,
                clock,
                rotate_daily=True,
                on_rotate=RecordingImports(cfg).start,
            )
            stack.callback(recorder.close)
        ws = KiwoomWebSocket.from_config(
            cfg, rest, trader.on_event, clock, recorder=recorder, sequence=trader.bus.next_seq
        )
        trader.attach_feed(KiwoomUniverseFeed(ws, trader.api))
        admin = await _start_admin(cfg, stack, clock, trader, ws, report, loop_monitor)
        if admin is not None and watchdog is not None:
            watchdog.last_words = admin.last_words
        if admin is not None and alerts is not None:
            admin.metrics.registry.register(AlertsCollector(alerts))
            admin.connections["alerts"] = alerts.stats
        flushers = await _start_mirror(cfg, stack, clock, trader, admin)
        notifier.status("starting: logging in")
        await ws.start()
        stack.push_async_callback(ws.close)
        notifier.status("starting: subscribing")
        symbols = sorted(set(cfg.daemon.symbols) | {s for ls in strategies for s in ls.cfg.symbols})
        types = tuple(dict.fromkeys((*cfg.daemon.realtime_types, VI_STREAM)))
        await ws.subscribe(types, symbols)
        await ws.subscribe(ACCOUNT_STREAMS, [])
        await ws.subscribe(SESSION_STREAMS, [])
        for rtype, items in strategy_realtime(strategies).items():
            await ws.subscribe((rtype,), items)
        notifier.status("starting: reconciling with the broker")
        await trader.start()
        _log_account(trader)
        if admin is not None and admin.status_page is not None:
            # After reconciliation, in the background: names are for people, not for trading.
            admin.status_page.read_names(trader.api.listed)
    except KiwoomError as e:
        log.error("startup_failed", error_type=type(e).__name__, error=str(e))
        raise _StartupFailed from e
    return Running(cfg, rest, ws, report, trader, admin, loop_monitor, flushers, alerts)


def _report_to_alerts(alerts: Alerts, then: OnReport | None) -> OnReport:
    """The day-end report's hook once the alerts run: they send its text and PNG
    (`[alerts] daily_report`), then `then` (the embedder's hook) is told."""

    def sent(files: ReportFiles) -> Awaitable[None] | None:
        alerts.send_report(files.text, files.png)
        return then(files) if then is not None else None

    return sent


def _start_alerts(
    cfg: Config, stack: AsyncExitStack, clock: Clock, trader: Trader
) -> Alerts | None:
    """The notifications (`[alerts]` with a target), hearing the bus from before the journal
    is read (a halt that outlived a restart is told), their senders running in their own
    tasks. A failed start-up closes them at once; the shutdown gives them ALERTS_SHARE."""
    if cfg.alerts is None:
        return None
    alerts = Alerts(cfg.alerts, clock)
    if not alerts.boxes:
        log.warning("alerts_without_target", hint="add [alerts.telegram] or [alerts.webhook]")
        return None
    alerts.attach(trader.bus, trader.portfolio)
    alerts.start()
    stack.push_async_callback(alerts.close)
    log.info("alerts_started", targets=[box.target.name for box in alerts.boxes])
    return alerts


def strategy_realtime(strategies: list[LoadedStrategy]) -> dict[str, list[str]]:
    """The realtime types the running strategies named in `realtime` (for `on_realtime`),
    each with the union of their items, in config order."""
    wanted: dict[str, dict[str, None]] = {}
    for ls in strategies:
        if not ls.cfg.enabled:
            continue
        for sub in ls.cfg.realtime:
            wanted.setdefault(sub.type, {}).update(dict.fromkeys(sub.items))
    return {t: list(items) for t, items in wanted.items()}


async def _start_admin(
    cfg: Config,
    stack: AsyncExitStack,
    clock: Clock,
    trader: Trader,
    ws: KiwoomWebSocket,
    report: FeedReport,
    loop_monitor: LoopMonitor,
) -> AdminServer | None:
    """The admin endpoint, before the feed so that health answers (503) during start-up. A
    port that is taken fails start-up: a daemon the operator cannot halt must not trade."""
    if cfg.admin is None or not cfg.admin.enabled:
        return None
    metrics = EngineMetrics(trader, ws, loop_monitor, report.counts)
    page = StatusPage(
        trader,
        ws,
        loop_monitor,
        clock,
        mode=cfg.kiwoom.mode,
        names=SymbolNames(Path(cfg.daemon.state_dir) / CACHE_FILE),
    )
    admin = AdminServer(
        cfg.admin,
        trader,
        ws,
        metrics,
        loop_monitor,
        clock,
        mode=cfg.kiwoom.mode,
        urls={"rest": cfg.rest_url, "ws": cfg.ws_url},
        status_page=page,
    )
    try:
        await admin.start()
    except OSError as e:
        log.error(
            "admin_start_failed",
            host=cfg.admin.host,
            port=cfg.admin.port,
            error=str(e),
            hint="another daemon on this port? set admin.port",
        )
        raise _StartupFailed from e
    stack.push_async_callback(admin.close)
    return admin


async def _start_mirror(
    cfg: Config, stack: AsyncExitStack, clock: Clock, trader: Trader, admin: AdminServer | None
) -> list[Flusher]:
    """The MQTT mirror (with an `[mqtt]` table), reading its own bounded queue on the bus
    from before the feed starts. A broker that is down never stops start-up or trading: the
    mirror retries in the background. Returns its shutdown flusher."""
    if cfg.mqtt is None:
        return []
    from engine.mirror import Mirror, engine_snapshots

    account = cfg.sim.account_no if cfg.kiwoom.mode == "sim" else None
    if cfg.mqtt.prefix is None or cfg.mqtt.client_id is None:
        try:
            account = await trader.api.account_number()
        except KiwoomError as e:
            log.error("mqtt_account_unknown", error=str(e), hint="set mqtt.prefix and client_id")
            raise _StartupFailed from e
    queue = trader.bus.attach(Mirror.queue(cfg.mqtt.max_market, cfg.mqtt.spool_size))

    def command(name: str, args: Mapping[str, Any]) -> None:
        reason = f"mqtt: {args.get('reason') or name}"
        trader.halt(reason) if name == "halt" else trader.resume(reason)

    mirror = Mirror(
        cfg.mqtt,
        queue,
        clock,
        account=account or "unknown",
        snapshots=engine_snapshots(trader),
        on_command=command,
    )
    task = asyncio.create_task(mirror.run(), name="mqtt-mirror")
    if admin is not None:
        admin.connections["mqtt"] = mirror.stats
        admin.metrics.mirror_stats = mirror.stats

    async def stop_mirror(_budget_s: float = 0.0) -> None:
        # Cancelling run() makes it flush the spool (within mqtt.flush_timeout_s), publish
        # status offline and disconnect.
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(stop_mirror)  # a failed start-up still ends it
    log.info(
        "mqtt_mirror_started", host=cfg.mqtt.host, port=cfg.mqtt.port, topics=mirror.topics.prefix
    )
    return [stop_mirror]


class _Reloader:
    """The SIGHUP handler: reload once the engine runs, refuse (logged) before."""

    def __init__(self, file_cfg: Config) -> None:
        self.file_cfg = file_cfg
        self.trader: Trader | None = None

    def __call__(self) -> None:
        if self.trader is None or not self.trader.running:
            log.warning("config_reload_ignored", why="not running (starting or stopping)")
            return
        reload_config(self.file_cfg, self.trader)


def reload_config(file_cfg: Config, trader: Trader) -> bool:
    """SIGHUP: re-read the config file and apply its risk limits and strategy params. An
    unreadable or invalid file (or params a strategy refuses) keeps the running config and is
    logged with the reason. Returns True when the new values were applied."""
    if file_cfg.source == "<defaults>":
        log.warning("config_reload_skipped", why="no config file")
        return False
    try:
        new = config_mod.load(file_cfg.source, with_secrets=False)
    except config_mod.ConfigError as e:
        log.error("config_reload_failed", error=str(e), kept="the running config")
        return False
    problems = trader.reload(new)
    if problems:
        log.error("config_reload_failed", problems=problems, kept="the running config")
        return False
    restart = _needs_restart(file_cfg, new)
    if restart:
        log.warning("config_reload_needs_restart", keys=restart)
    return True


def _needs_restart(old: Config, new: Config) -> list[str]:
    """The changed settings that only a restart applies (all but risk and strategy params)."""
    keys = []
    for f in dataclasses.fields(Config):
        if f.name in ("risk", "strategies", "source"):
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name == "kiwoom":  # the secrets are not re-read
            a = dataclasses.replace(a, appkey=None, secretkey=None)
            b = dataclasses.replace(b, appkey=None, secretkey=None)
        if f.name == "alerts":
            a, b = _alerts_without_secrets(a), _alerts_without_secrets(b)
        if a != b:
            keys.append(f.name)
    strip = [dataclasses.replace(sc, params={}) for sc in old.strategies]
    if strip != [dataclasses.replace(sc, params={}) for sc in new.strategies]:
        keys.append("strategies")
    return keys


def _alerts_without_secrets(
    alerts: config_mod.AlertsConfig | None,
) -> config_mod.AlertsConfig | None:
    """`alerts` as a reload compares it: the token and the webhook URL are not re-read."""
    if alerts is None:
        return None
    telegram, webhook = alerts.telegram, alerts.webhook
    return dataclasses.replace(
        alerts,
        telegram=telegram and dataclasses.replace(telegram, token=None),
        webhook=webhook and dataclasses.replace(webhook, url=None),
    )


async def _watchdog(notifier: Notifier, interval_s: float) -> None:
    """WATCHDOG=1 every `interval_s`, from the event loop itself: a loop that stalls stops the
    pings, and systemd restarts the daemon after WatchdogSec."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval_s)


def status_line(trader: Trader, ws: KiwoomWebSocket) -> str:
    """systemd's STATUS=: what the daemon is doing, in a line."""
    running = sum(1 for s in trader.host.slots if s.enabled)
    feed = "live" if ws.connected else str(ws.state)
    return (
        f"trading {trader.risk.state.value}; feed {feed}; {running} strategies; "
        f"{len(trader.oms.open_orders())} open orders"
    )


def _signals(
    stop: asyncio.Event, hup: Callable[[], None], watchdog: Watchdog
) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop`, SIGHUP calls `hup` on the loop, and none of them waits
    for the loop: asyncio's own handlers (`add_signal_handler`) run on the loop, which a
    stalled strategy handler holds. Two paths, so that a signal is never lost:

    - the signal's wakeup fd is read by the watchdog's thread (Watchdog.hear), which starts
      the shutdown's deadline and wakes the loop, even while the loop's thread is in C code;
    - plain Python handlers run on the loop's thread between bytecodes, whatever it does, and
      may raise HandlerStalled out of the strategy handler holding it
      (Watchdog.break_from_signal), which also interrupts a `time.sleep` or a lock.

    Returns what puts the old handlers and wakeup fd back."""
    loop = asyncio.get_running_loop()
    stops = (signal.SIGTERM, signal.SIGINT)

    def heard(signum: int) -> None:  # on the watchdog's thread
        if signum in stops:
            watchdog.stop_requested()
            loop.call_soon_threadsafe(stop.set)
        elif signum == signal.SIGHUP:
            loop.call_soon_threadsafe(hup)

    def on_stop_signal(_signum: int, frame: FrameType | None) -> None:
        watchdog.stop_requested()
        loop.call_soon_threadsafe(stop.set)
        watchdog.break_from_signal(frame)

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        """The watchdog's thread hears it; without a handler SIGHUP would end the process."""

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    watchdog.hear(reader, heard)
    previous = {sig: signal.signal(sig, on_stop_signal) for sig in stops}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def restore() -> None:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reader.close()
        writer.close()

    return restore


def _embedded_no_exit(code: int) -> None:
    log.error("watchdog_exit_skipped", exit_code=code, why="embedded: the process is not ours")


def _apply_holds(trader: Trader, holds: Holds) -> None:
    """Keep the strategies the watchdog held disabled (engine/holds.py) from starting."""
    try:
        held = holds.load()
    except (OSError, ValueError) as e:
        # Which strategy hung the daemon last is unknown: starting them all could hang it again.
        log.error(
            "held_strategies_unreadable",
            path=str(holds.path),
            error=str(e),
            hint="fix or remove the file; `kiwoom-engine enable NAME` rewrites it",
        )
        raise _StartupFailed from e
    for name, info in held.items():
        slot = trader.host.by_name.get(name)
        reason = str(info.get("reason", "?"))
        if slot is None:
            log.warning("held_strategy_not_configured", strategy=name, reason=reason)
            continue
        slot.enabled = False
        slot.disabled_reason = f"held: {reason}"
        log.error(
            "strategy_held_disabled",
            strategy=name,
            reason=reason,
            hint=f"kiwoom-engine enable {name} (then restart) once it is fixed",
        )


def _check_systemd_watchdog(cfg: Config, notifier: Notifier) -> None:
    """The stall watchdog must give up before systemd's does: a SIGABRT from systemd would
    restart the daemon into the same hang, with no strategy held disabled."""
    interval = notifier.watchdog_interval_s
    if interval is None:
        return
    watchdog_sec = interval * 2
    if cfg.daemon.handler_stall_s + STALL_GRACE_S >= watchdog_sec:
        log.warning(
            "handler_stall_above_systemd_watchdog",
            handler_stall_s=cfg.daemon.handler_stall_s,
            grace_s=STALL_GRACE_S,
            watchdog_sec=watchdog_sec,
            hint="lower daemon.handler_stall_s or raise WatchdogSec",
        )


def _log_account(trader: Trader) -> None:
    snap = trader.portfolio.snapshot()
    log.info(
        "account_snapshot",
        orderable=snap["cash"],
        holdings=len(trader.portfolio.positions),
        open_orders=len(trader.oms.open_orders()),
    )


async def _report_stats(
    report: FeedReport, ws: KiwoomWebSocket, trader: Trader, notifier: Notifier | None = None
) -> None:
    while True:
        await asyncio.sleep(STATS_INTERVAL_S)
        # Reporting is a side line: a bug here is logged and the next round tried, never
        # allowed to end the task (or to re-raise out of the shutdown that awaits it).
        try:
            log.info(
                "feed_stats",
                state=str(ws.state),
                connected=ws.connected,
                silent_s=ws.silent_s,
                events=dict(report.counts),
                bad_frames=ws.stats.bad_frames,
                bad_entries=ws.stats.bad_entries,
                orders=trader.oms.counts_by_state(),
                trading_state=trader.risk.state.value,
                realized_today=trader.portfolio.realized_today,
            )
            if notifier is not None:
                notifier.status(status_line(trader, ws))
        except Exception:
            log.exception("feed_stats_failed")
