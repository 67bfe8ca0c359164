"""The loopback HTTP endpoint: health, metrics, status and the kill switch, served from a
thread of its own, so that it answers while the engine's event loop is stuck.

    GET  /healthz   200 while the feed is live, the engine running, the loop not stalled and
                    the journal writing; 503 otherwise, naming the strategy and handler that
                    stall the loop
    GET  /metrics   Prometheus text format (engine/metrics.py)
    GET  /status    JSON: mode, connections, strategies, positions, orders, PnL, risk
    POST /halt      the kill switch: no new orders (cancels still go); body {"reason": "..."}
    POST /resume    back to ACTIVE
    GET  /          the live status page, read-only (engine/status_page/), when given one
    GET  /events    its Server-Sent Events: a snapshot at most every 0.25 s, at least every 1 s
    POST /enable    {"strategy": NAME}: start a strategy held disabled at start-up (the stall
                    watchdog's hold, engine/holds.py, released first by `kiwoom-engine enable`)

The thread never reads the engine's objects, which the loop changes under it: the loop
publishes a `Snapshot` (the status as JSON bytes, and the facts health needs) every
`PUBLISH_S`, at once when the trading state, the feed or a strategy changes, and when a request
asks for one (`call_soon_threadsafe`). Every request is handed to the loop that way and
answered once it ran; when it does not within its timeout, the loop is stalled: /healthz and
/status answer from the last snapshot, /metrics serves the last rendering (with the figures
the thread reads live: the loop's lateness, the handler running), a halt stays queued
(it applies as soon as the loop runs), a resume is withdrawn, and both answer 503 saying so. Read live are only the loop's heartbeat (LoopMonitor) and the current handler
call (StrategyHost.current): single values the loop writes whole.

It binds a loopback address only (config refuses others) and has no authentication: whoever
can reach it may halt and resume. Two rules keep a web page in a local browser out: every
route refuses (403) a request whose `Host` is not a loopback name (127.x, localhost, ::1, any
port), so a page that rebinds its own domain name to 127.0.0.1 (DNS rebinding) can neither
read /status nor POST /halt; and a POST carrying an `Origin` header is refused, so that a page
cannot flip the switch behind the operator's back. The CLI (engine/control.py) and a
Prometheus scrape name the configured loopback address in Host.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson
import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from engine.clock import Clock, stopwatch_ns
from engine.config import AdminConfig
from engine.events import (
    Disconnected,
    FeedResumed,
    FeedStale,
    Reconnected,
    StrategyDisabled,
    TradingStateChanged,
)
from engine.metrics import NAMESPACE, EngineMetrics, FeedView, LoopMonitor
from engine.status_page import StatusPage
from engine.status_page.page import loopback_host
from engine.terminal import one_line
from engine.trader import Trader
from engine.watchdog import describe

log = structlog.get_logger(__name__)

MAX_REASON_CHARS = 200
MAX_BODY_BYTES = 4096
PUBLISH_S: Final = 0.5
"""How often the loop publishes a snapshot (besides on every change that health shows)."""
LOOP_TIMEOUT_S: Final = 2.0
"""How long a halt or resume handed to the loop waits for it."""
METRICS_TIMEOUT_S: Final = 0.5
"""How long /metrics waits for the loop to render before it serves the last rendering."""
FRESH_TIMEOUT_S: Final = 0.2
"""How long /healthz and /status wait for the loop to publish a fresh snapshot before they
answer from the last one (a loop this late is stalled for health anyway)."""
CLOSE_TIMEOUT_S: Final = 3.0

T = TypeVar("T")

_CHANGES = (
    TradingStateChanged,
    StrategyDisabled,
    Disconnected,
    Reconnected,
    FeedStale,
    FeedResumed,
)
"""Events after which the snapshot is published at once, not at the next period."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the loop hands to the admin thread: immutable, built on the loop."""

    taken_ns: int
    engine_running: bool
    feed_live: bool
    status: bytes
    """The JSON object of /status without the parts the thread adds (pid, uptime, health)."""
    disabled: tuple[tuple[str, str], ...]
    """(strategy, reason) of the strategies not running, while the engine runs."""
    open_orders: int
    mqtt_spooled: int | None
    journal_ok: bool
    """While the journal cannot write, no order can be sent (trading is halted)."""
    not_started: tuple[dict[str, str], ...]
    """The strategies whose constructor raised: the daemon runs on without them (degraded)."""


class AdminServer:
    """Serves the endpoint from its own thread until `close`. `port` is the bound one (config
    port 0: any). `start` and `close` are called on the engine's loop."""

    def __init__(
        self,
        cfg: AdminConfig,
        trader: Trader,
        feed: FeedView,
        metrics: EngineMetrics,
        loop: LoopMonitor,
        clock: Clock,
        *,
        mode: str,
        urls: dict[str, str],
        status_page: StatusPage | None = None,
    ) -> None:
        self.cfg = cfg
        self.trader = trader
        self.feed = feed
        self.metrics = metrics
        self.loop = loop
        self.clock = clock
        self.mode = mode
        self.urls = urls
        self.status_page = status_page
        self.connections: dict[str, Callable[[], Any]] = {}
        """More entries for /status's `connections` (the MQTT mirror adds its own); read on
        the loop, when a snapshot is built."""
        self.port = 0
        self._started = clock.monotonic()
        self._snapshot: Snapshot | None = None
        self._last_metrics = b""
        self._engine_loop: asyncio.AbstractEventLoop | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._http_stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._publisher: asyncio.Task[None] | None = None
        self._dirty = False

    # --- on the engine's loop ----------------------------------------------------------------

    async def start(self) -> None:
        """Publish the first snapshot, then bind and serve from the thread. Raises OSError
        when the port is taken."""
        self._engine_loop = asyncio.get_running_loop()
        self.publish()
        bound: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(bound,), name="admin-http", daemon=True
        )
        self._thread.start()
        self.port = await asyncio.wrap_future(bound)
        self.trader.bus.subscribe(_CHANGES, self._changed)
        self._publisher = asyncio.create_task(self._publish_every(), name="admin-snapshots")
        if self.status_page is not None:
            self.status_page.start()
        log.info("admin_listening", host=self.cfg.host, port=self.port, thread="admin-http")

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop serving, waiting up to `timeout_s` for the thread (a daemon thread: one that
        does not end is left to the process's exit)."""
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        if self.status_page is not None:
            await self.status_page.close()  # its streams end before the server stops
        http_loop, stop = self._http_loop, self._http_stop
        if http_loop is None or stop is None or self._thread is None:
            return
        self._http_loop = None
        try:
            http_loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # its loop already closed
            return
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.wrap_future(self._done)
        except TimeoutError:
            log.warning("admin_close_abandoned")

    def publish(self) -> None:
        """Build a snapshot of the engine and hand it to the thread (one reference)."""
        self._dirty = False
        trader = self.trader
        feed = self.feed
        connections: dict[str, Any] = {
            "feed": {
                "url": self.urls.get("ws", ""),
                "live": feed.connected,
                "silent_s": feed.silent_s,
                "compressed": feed.compressed,
                "sessions": feed.sessions,
                "reconnects": max(0, feed.sessions - 1),
            },
            "rest": {"url": self.urls.get("rest", "")},
        }
        for name, read in self.connections.items():
            connections[name] = read()
        status = {
            "mode": self.mode,
            "connections": connections,
            **trader.status(),
            "trading_state_reason": trader.risk.state_reason,
        }
        mqtt = connections.get("mqtt")
        spooled = mqtt.get("spooled") if isinstance(mqtt, dict) else None
        self._snapshot = Snapshot(
            taken_ns=stopwatch_ns(),
            engine_running=trader.running,
            feed_live=feed.connected,
            status=orjson.dumps(status, option=orjson.OPT_NON_STR_KEYS),
            disabled=tuple((s.name, s.disabled_reason) for s in trader.host.slots if not s.enabled)
            if trader.running
            else (),
            open_orders=len(status["open_orders"]),
            mqtt_spooled=spooled if isinstance(spooled, int) else None,
            journal_ok=not trader.journal.faulty,
            not_started=tuple(trader.host.not_started()),
        )

    def _changed(self, _ev: object) -> None:
        if not self._dirty and self._engine_loop is not None:
            self._dirty = True
            self._engine_loop.call_soon(self._publish_quietly)

    def _publish_quietly(self) -> None:
        try:
            self.publish()
        except Exception:
            log.exception("admin_snapshot_failed")

    async def _publish_every(self) -> None:
        # On the engine's Clock, as every engine timer (the live clock: real time).
        while True:
            await self.clock.sleep(PUBLISH_S)
            self._publish_quietly()

    # --- read from any thread ---------------------------------------------------------------

    def last_words(self) -> dict[str, Any]:
        """What the watchdog's exit line reports from the last snapshot."""
        snap = self._snapshot
        if snap is None:
            return {}
        return {"open_orders": snap.open_orders, "mqtt_spooled_lost": snap.mqtt_spooled}

    def stalled(self) -> dict[str, Any] | None:
        """The strategy handler call that has held the loop past `loop_stall_s`, if one has."""
        call = self.trader.host.current
        if call is None:
            return None
        strategy, handler, ran_s = describe(call)
        if ran_s < self.cfg.loop_stall_s:
            return None
        return {"strategy": strategy, "handler": handler, "running_s": round(ran_s, 3)}

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy, and the checks behind the verdict."""
        snap = self._snapshot
        stalled_s = self.loop.stalled_s()
        stalled = self.stalled()
        checks = {
            "engine_running": snap is not None and snap.engine_running,
            "feed_live": snap is not None and snap.feed_live,
            "loop_ok": stalled_s < self.cfg.loop_stall_s and stalled is None,
            "journal_ok": snap is not None and snap.journal_ok,
        }
        # A strategy that could not start leaves the daemon degraded, not unhealthy: the
        # others trade, and a restart loop would not mend a constructor that raises.
        not_started = list(snap.not_started) if snap is not None else []
        body: dict[str, Any] = {
            **checks,
            "loop_stalled_s": round(stalled_s, 3),
            "degraded": bool(not_started),
            "strategies_not_started": not_started,
        }
        if stalled is not None:
            body["stalled"] = stalled
        if snap is not None:
            body["snapshot_age_s"] = round((stopwatch_ns() - snap.taken_ns) / 1e9, 3)
            if snap.disabled:
                body["strategies_disabled"] = dict(snap.disabled)
        return all(checks.values()), body

    # --- the thread --------------------------------------------------------------------------

    def _serve(self, bound: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve_http(loop, bound))
        except BaseException as e:  # told to the starter, or logged
            if not bound.done():
                bound.set_exception(e)
            else:
                log.exception("admin_thread_failed")
        finally:
            loop.close()
            self._done.set_result(None)

    async def _serve_http(
        self, loop: asyncio.AbstractEventLoop, bound: concurrent.futures.Future[int]
    ) -> None:
        stop = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_loopback_only])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_post("/halt", self._halt)
        app.router.add_post("/resume", self._resume)
        app.router.add_post("/enable", self._enable)
        if self.status_page is not None:
            self.status_page.mount(app, loop)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
            await site.start()
            self._http_loop, self._http_stop = loop, stop
            bound.set_result(int(runner.addresses[0][1]))
            await stop.wait()
        finally:
            await runner.cleanup()

    async def _on_loop(
        self,
        fn: Callable[[], T],
        *,
        timeout_s: float = LOOP_TIMEOUT_S,
        keep_on_timeout: bool = False,
    ) -> T:
        """Run `fn` on the engine's loop and return its result. Raises TimeoutError when the
        loop did not run it within `timeout_s`; it then never runs, unless `keep_on_timeout`
        (it runs when the loop does)."""
        engine_loop = self._engine_loop
        assert engine_loop is not None
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return  # withdrawn after its timeout
            try:
                done.set_result(fn())
            except BaseException as e:  # handed back to the requester
                done.set_exception(e)

        engine_loop.call_soon_threadsafe(run)
        waited: asyncio.Future[T] = asyncio.wrap_future(done)
        async with asyncio.timeout(timeout_s):
            return await (asyncio.shield(waited) if keep_on_timeout else waited)

    def _stall_text(self) -> str:
        stalled = self.stalled()
        if stalled is None:
            return "the engine's event loop did not answer"
        return (
            f"the engine's event loop is stalled: strategy {stalled['strategy']}, handler "
            f"{stalled['handler']}, for {stalled['running_s']} s"
        )

    async def _refresh(self) -> None:
        """A fresh snapshot, unless the loop is too late to make one."""
        with contextlib.suppress(TimeoutError):
            await self._on_loop(self._publish_quietly, timeout_s=FRESH_TIMEOUT_S)

    async def _healthz(self, _request: web.Request) -> web.Response:
        await self._refresh()
        healthy, checks = self.health()
        return _json({"healthy": healthy, **checks}, 200 if healthy else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        try:
            # Read on the loop, turned into text here: the loop pays only for the reading.
            families = await self._on_loop(self.metrics.collect, timeout_s=METRICS_TIMEOUT_S)
            body = self._last_metrics = self.metrics.format(families)
        except TimeoutError:
            body = self._last_metrics
        return web.Response(
            body=body + self._thread_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _thread_metrics(self) -> bytes:
        """Figures the thread knows itself, true while the loop is stuck."""
        snap = self._snapshot
        age = (stopwatch_ns() - snap.taken_ns) / 1e9 if snap is not None else -1.0
        lines = [
            f"# HELP {NAMESPACE}_admin_snapshot_age_seconds Age of the engine snapshot the admin "
            "thread serves (the loop publishes one every 0.5 s)",
            f"# TYPE {NAMESPACE}_admin_snapshot_age_seconds gauge",
            f"{NAMESPACE}_admin_snapshot_age_seconds {age:.3f}",
            # Here and not in the loop's rendering: a stalled loop renders nothing new.
            f"# HELP {NAMESPACE}_event_loop_stalled_seconds The event loop's current lateness "
            "(see event_loop_lag_seconds), read live: it grows while the loop is stuck",
            f"# TYPE {NAMESPACE}_event_loop_stalled_seconds gauge",
            f"{NAMESPACE}_event_loop_stalled_seconds {self.loop.stalled_s():.3f}",
        ]
        call = self.trader.host.current
        running = describe(call) if call is not None else None
        lines += [
            f"# HELP {NAMESPACE}_handler_running_seconds How long the strategy handler call "
            "running now has run",
            f"# TYPE {NAMESPACE}_handler_running_seconds gauge",
        ]
        if running is not None:
            strategy, handler, ran_s = running
            lines.append(
                f'{NAMESPACE}_handler_running_seconds{{strategy="{_label(strategy)}",'
                f'handler="{_label(handler)}"}} {ran_s:.3f}'
            )
        return ("\n".join(lines) + "\n").encode()

    async def _status(self, _request: web.Request) -> web.Response:
        await self._refresh()
        snap = self._snapshot
        healthy, checks = self.health()
        head = orjson.dumps(
            {
                "pid": os.getpid(),
                "uptime_s": round(self.clock.monotonic() - self._started, 3),
                "healthy": healthy,
                "health": checks,
            }
        )
        # The loop's part is a JSON object with other keys: spliced, not parsed again.
        body = head if snap is None else head[:-1] + b"," + snap.status[1:]
        return web.Response(body=body, content_type="application/json")

    async def _halt(self, request: web.Request) -> web.Response:
        return await self._switch(request, "halt")

    async def _resume(self, request: web.Request) -> web.Response:
        return await self._switch(request, "resume")

    async def _switch(self, request: web.Request, action: str) -> web.Response:
        if "Origin" in request.headers:
            log.warning("admin_request_refused", action=action, why="origin_header")
            return _json({"error": "requests from web pages are refused"}, 403)
        try:
            reason = await _reason(request)
        except ValueError as e:
            log.warning("admin_request_refused", action=action, why=str(e))
            return _json({"error": str(e)}, 400)
        text = f"OPERATOR_{action.upper()}" + (f": {reason}" if reason else "")

        def apply() -> dict[str, Any]:
            trader = self.trader
            if action == "halt":
                trader.halt(text)
            else:
                trader.resume(text)
            log.warning("operator_" + action, reason=reason or None)
            self.publish()
            return {"trading_state": trader.risk.state.value, "reason": trader.risk.state_reason}

        # A halt is the kill switch: queued when the loop is stuck, it still applies the
        # moment the loop runs again. A late resume is not what the operator asked for.
        keep = action == "halt"
        try:
            answer = await self._on_loop(apply, keep_on_timeout=keep)
        except TimeoutError:
            stall = self._stall_text()
            log.error("admin_request_stalled", action=action, stall=stall, queued=keep)
            then = (
                "the halt is queued: it applies as soon as the loop runs again"
                if keep
                else "nothing was changed"
            )
            return _json({"error": f"{stall}; {then}", "queued": keep}, 503)
        return _json(answer)

    async def _enable(self, request: web.Request) -> web.Response:
        if "Origin" in request.headers:
            log.warning("admin_request_refused", action="enable", why="origin_header")
            return _json({"error": "requests from web pages are refused"}, 403)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        name = body.get("strategy") if isinstance(body, dict) and len(body) == 1 else None
        if not isinstance(name, str):
            return _json({"error": 'the body must be {"strategy": "NAME"}'}, 400)

        def apply() -> tuple[int, dict[str, Any]]:
            trader = self.trader
            slot = trader.host.by_name.get(name)
            if slot is None:
                return 404, {"error": f"no strategy {one_line(name, 100)!r} runs here"}
            if slot.enabled:
                return 200, {"strategy": name, "state": "running", "started": False}
            if not trader.running or not slot.disabled_reason.startswith("held:"):
                # Only a hold is undone live: a strategy disabled for its errors or a stall in
                # this run would fail again the same way; a restart gives it a fresh start.
                return 409, {
                    "error": f"{name} is disabled ({slot.disabled_reason}), not held: restart "
                    "the daemon to run it again"
                }
            slot.enabled = True
            slot.disabled_reason = ""
            log.warning("strategy_enabled", strategy=name, by="operator")
            if slot.instance is not None:
                slot.call(slot.instance.on_start)
            self.publish()
            state = "running" if slot.enabled else f"disabled: {slot.disabled_reason}"
            return 200, {"strategy": name, "state": state, "started": True}

        try:
            code, answer = await self._on_loop(apply)
        except TimeoutError:
            return _json({"error": f"{self._stall_text()}; nothing was changed"}, 503)
        return _json(answer, code)


@web.middleware
async def _loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (403) a request to any route whose Host is not a loopback name: what a browser
    sends for a page that rebound its domain name to 127.0.0.1. A request without a Host
    header (no browser sends one) is let through."""
    host = request.headers.get(hdrs.HOST)
    if host is not None and not loopback_host(host):
        log.warning(
            "admin_request_refused", path=one_line(request.path, 100), why="foreign_host_header"
        )
        return _json({"error": "the admin endpoint answers requests to a loopback host only"}, 403)
    return await handler(request)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def _reason(request: web.Request) -> str:
    """The optional {"reason": "..."} of a halt or resume, as one printable line. Raises
    ValueError for a body that is not that."""
    raw = await request.read()
    if not raw.strip():
        return ""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError('the body must be JSON: {"reason": "..."}') from None
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise ValueError("the body takes one key: reason")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason must be a string")
    return one_line(reason.strip(), MAX_REASON_CHARS)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )
