"""The daemon's wiring and lifecycle: simulator (mode sim), REST client, engine, feed, signals.

Start-up order matters: the journal is read first, the feed (with the account streams) comes
up next so that no order notice can slip between the broker's books and the live stream, then
the engine reconciles and starts the strategies. Shutdown runs the other way: strategies stop,
open orders are kept or cancelled (`daemon.on_stop`), the journal is flushed, the feed closes,
and the token is revoked last.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import signal
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import structlog

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
)
from engine.journal import JournalError
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.plugins import LoadedStrategy, load_all
from engine.trader import Trader

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_STARTUP = 1
ACCOUNT_STREAMS = ("00", "04")
STATS_INTERVAL_S = 30.0


class FeedReport:
    """Counts what the feed delivers and logs account events as they come (they are rare)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, ev: Event) -> None:
        self.counts[type(ev).__name__] += 1
        if isinstance(ev, OrderExecution | Balance):
            log.info("account_event", kind=type(ev).__name__, symbol=ev.symbol)
        elif isinstance(ev, Disconnected):
            log.warning("feed_disconnected", reason=ev.reason)
        elif isinstance(ev, Reconnected):
            log.info("feed_reconnected", attempts=ev.attempt, downtime_s=round(ev.downtime_s, 3))
        elif isinstance(ev, FeedStale):
            log.warning("feed_stale", silent_s=ev.silent_s)
        elif isinstance(ev, FeedResumed):
            log.info("feed_resumed", silent_s=ev.silent_s)


async def run(
    cfg: Config,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
    strategies: list[LoadedStrategy] | None = None,
    on_ready: Callable[[Trader], None] | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT). Returns the process exit code.

    `on_ready(trader)` is called once the engine runs (strategies started), for embedders and
    tests that watch its state (orders, positions, counters) rather than its log.

    Start-up failures (simulator port taken, login refused, Kiwoom unreachable, record file
    unwritable, a strategy that cannot be loaded, a journal held by another engine) are logged
    with their reason and return EXIT_STARTUP; after start-up the feed
    reconnects on its own. A stop during start-up abandons it (connect and token retries can
    take longer than systemd waits) and still closes what was opened. The token is revoked on
    the way out unless `kiwoom.revoke_on_exit` is false.
    """
    stop = stop or _signal_stop()
    async with AsyncExitStack() as stack:
        starting = asyncio.create_task(_start(cfg, stack, clock, strategies), name="daemon-start")
        stopping = asyncio.create_task(stop.wait(), name="daemon-stop")
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            log.info("daemon_stopped_during_startup")
            return EXIT_OK
        try:
            cfg, ws, report, trader = starting.result()
        except _StartupFailed:
            return EXIT_STARTUP
        except Exception as e:
            # Whatever else broke start-up: one line with the reason (and the traceback, through
            # the redactor), never a bare crash.
            log.exception("startup_failed", error_type=type(e).__name__, error=str(e))
            return EXIT_STARTUP
        log.info(
            "daemon_running",
            mode=cfg.kiwoom.mode,
            rest_url=cfg.rest_url,
            symbols=cfg.daemon.symbols,
            types=cfg.daemon.realtime_types,
            strategies=[slot.name for slot in trader.host.slots if slot.enabled],
        )
        if on_ready is not None:
            on_ready(trader)
        stats = asyncio.create_task(_report_stats(report, ws, trader))
        try:
            await stop.wait()
        finally:
            stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats
        log.info("daemon_stopping", events=dict(report.counts), codec=ws.stats.as_dict())
        await trader.stop(cancel_open=cfg.daemon.on_stop == "cancel")
    log.info("daemon_stopped")
    return EXIT_OK


class _StartupFailed(Exception):
    """Start-up failed and the reason is already logged."""


async def _start(
    cfg: Config,
    stack: AsyncExitStack,
    clock: Clock,
    strategies: list[LoadedStrategy] | None,
) -> tuple[Config, KiwoomWebSocket, FeedReport, Trader]:
    """Open the simulator (mode sim), the REST client, the engine and the feed, each registered
    on `stack` for shutdown. Returns the config the clients use, the feed, its report and the
    engine."""
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
        sim_state = Path(cfg.daemon.state_dir) / "builtin-sim"
        shutil.rmtree(sim_state, ignore_errors=True)
        cfg = dataclasses.replace(
            cfg,
            kiwoom=dataclasses.replace(cfg.kiwoom, rest_url=sim.rest_url, ws_url=sim.ws_url),
            daemon=dataclasses.replace(cfg.daemon, state_dir=str(sim_state)),
        )
    try:
        rest = await stack.enter_async_context(
            KiwoomRest(cfg, clock, revoke_on_close=cfg.kiwoom.revoke_on_exit)
        )
        trader = Trader(cfg, KiwoomApi(rest), clock, strategies)
        try:
            await trader.recover()
        except JournalError as e:
            log.error("journal_unusable", error=str(e))
            raise _StartupFailed from e
        # Registered before the feed's close: the exit stack unwinds in reverse, so on a failed
        # start-up the journal is flushed and closed after the feed is gone.
        stack.push_async_callback(trader.close)
        report = FeedReport()
        trader.bus.subscribe_all(report)
        recorder = None
        if cfg.daemon.record:
            recorder = FrameRecorder(cfg.daemon.record, clock)
            stack.callback(recorder.close)
        ws = KiwoomWebSocket(
            cfg.ws_url,
            rest.tokens.token,
            rest.tokens.invalidate,
            clock,
            trader.on_event,
            recorder=recorder,
            connect_timeout_s=cfg.kiwoom.connect_timeout_s,
            stale_after_s=cfg.ws_stale_s,
            stale_grace_s=cfg.kiwoom.ws_stale_grace_s,
            sequence=trader.bus.next_seq,
        )
        await ws.start()
        stack.push_async_callback(ws.close)
        symbols = sorted(set(cfg.daemon.symbols) | {s for ls in strategies for s in ls.cfg.symbols})
        await ws.subscribe(cfg.daemon.realtime_types, symbols)
        await ws.subscribe(ACCOUNT_STREAMS, [])
        await trader.start()
        _log_account(trader)
    except KiwoomError as e:
        log.error("startup_failed", error_type=type(e).__name__, error=str(e))
        raise _StartupFailed from e
    return cfg, ws, report, trader


def _signal_stop() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _log_account(trader: Trader) -> None:
    snap = trader.portfolio.snapshot()
    log.info(
        "account_snapshot",
        orderable=snap["cash"],
        holdings=len(trader.portfolio.positions),
        open_orders=len(trader.oms.open_orders()),
    )


async def _report_stats(report: FeedReport, ws: KiwoomWebSocket, trader: Trader) -> None:
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
        except Exception:
            log.exception("feed_stats_failed")
