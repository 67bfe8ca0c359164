"""The loopback HTTP endpoint: health, metrics, status and the kill switch, in the engine's loop.

    GET  /healthz   200 while the feed is live, the engine running, the loop not stalled and
                    the journal writing
    GET  /metrics   Prometheus text format (engine/metrics.py)
    GET  /status    JSON: mode, connections, strategies, positions, orders, PnL, risk
    POST /halt      the kill switch: no new orders (cancels still go); body {"reason": "..."}
    POST /resume    back to ACTIVE

It binds a loopback address only (config refuses others) and has no authentication: whoever
can reach it may halt and resume. A POST carrying an `Origin` header is refused, so that a web
page in a local browser cannot flip the switch behind the operator's back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.clock import Clock
from engine.config import AdminConfig
from engine.metrics import EngineMetrics, FeedView, LoopMonitor
from engine.terminal import one_line
from engine.trader import Trader

log = structlog.get_logger(__name__)

MAX_REASON_CHARS = 200
MAX_BODY_BYTES = 4096


class AdminServer:
    """Serves the endpoint until `close`. `port` is the bound one (config port 0: any)."""

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
    ) -> None:
        self.cfg = cfg
        self.trader = trader
        self.feed = feed
        self.metrics = metrics
        self.loop = loop
        self.clock = clock
        self.mode = mode
        self.urls = urls
        self.connections: dict[str, Callable[[], Any]] = {}
        """More entries for /status's `connections` (the MQTT mirror adds its own)."""
        self.port = 0
        self._started = clock.monotonic()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve. Raises OSError when the port is taken."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_post("/halt", self._halt)
        app.router.add_post("/resume", self._resume)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("admin_listening", host=self.cfg.host, port=self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- reading ---------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy, and the checks behind the verdict."""
        stalled_s = self.loop.stalled_s()
        checks = {
            "engine_running": self.trader.running,
            "feed_live": self.feed.connected,
            "loop_ok": stalled_s < self.cfg.loop_stall_s,
            # While the journal cannot write, no order can be sent (trading is halted).
            "journal_ok": not self.trader.journal.faulty,
        }
        # A strategy that could not start leaves the daemon degraded, not unhealthy: the
        # others trade, and a restart loop would not mend a constructor that raises.
        not_started = self.trader.host.not_started()
        return all(checks.values()), {
            **checks,
            "loop_stalled_s": round(stalled_s, 3),
            "degraded": bool(not_started),
            "strategies_not_started": not_started,
        }

    def status(self) -> dict[str, Any]:
        healthy, checks = self.health()
        connections: dict[str, Any] = {
            "feed": {
                "url": self.urls.get("ws", ""),
                "live": self.feed.connected,
                "silent_s": self.feed.silent_s,
                "compressed": self.feed.compressed,
                "sessions": self.feed.sessions,
                "reconnects": max(0, self.feed.sessions - 1),
            },
            "rest": {"url": self.urls.get("rest", "")},
        }
        for name, read in self.connections.items():
            connections[name] = read()
        return {
            "pid": os.getpid(),
            "mode": self.mode,
            "uptime_s": round(self.clock.monotonic() - self._started, 3),
            "healthy": healthy,
            "health": checks,
            "connections": connections,
            **self.trader.status(),
            "trading_state_reason": self.trader.risk.state_reason,
        }

    # --- handlers --------------------------------------------------------------------------

    async def _healthz(self, _request: web.Request) -> web.Response:
        healthy, checks = self.health()
        return _json({"healthy": healthy, **checks}, 200 if healthy else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _status(self, _request: web.Request) -> web.Response:
        return _json(self.status())

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
        if action == "halt":
            self.trader.halt(text)
        else:
            self.trader.resume(text)
        log.warning("operator_" + action, reason=reason or None)
        risk = self.trader.risk
        return _json({"trading_state": risk.state.value, "reason": risk.state_reason})


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
