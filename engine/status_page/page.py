"""The status page's two halves: on the engine's loop, the snapshots (built at most every
`MIN_INTERVAL_S`, and only while a browser watches) and the histories they show; on the
admin thread, `GET /` (the page) and `GET /events` (Server-Sent Events from the fan-out).

The engine's loop does per snapshot: one `build`, one `orjson.dumps`, one
`call_soon_threadsafe`. What each browser costs is paid on the admin thread (fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from importlib import resources
from typing import Any, Final

import orjson
import structlog
from aiohttp import web

from engine.clock import Clock
from engine.events import (
    Disconnected,
    Fill,
    OrderUpdate,
    Reconnected,
    StrategyDisabled,
    TradingStateChanged,
)
from engine.metrics import FeedView, LoopMonitor
from engine.status_page.fanout import Fanout, stream
from engine.status_page.names import Fetch, SymbolNames
from engine.status_page.snapshot import MAX_FILLS, EquityLine, Fills, build, equity
from engine.trader import Trader

log = structlog.get_logger(__name__)

INTERVAL_S: Final = 1.0
"""A snapshot at least this often while a browser watches (the clock on the page ticks)."""
MIN_INTERVAL_S: Final = 0.25
"""At most one snapshot per this, however fast fills and order updates come."""
EQUITY_EVERY_S: Final = 5.0
"""The equity line's step (and a point at every fill)."""
NAMES_EVERY_S: Final = 3600.0
"""How often the names task looks whether a new day needs the stock lists read again."""

_URGENT = (Fill, OrderUpdate, TradingStateChanged, StrategyDisabled, Disconnected, Reconnected)
"""Events after which the page gets a snapshot at once (within MIN_INTERVAL_S)."""

_HEADERS = {
    "Cache-Control": "no-store",
    # Everything is inline; the page reaches nothing but its own /events.
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
    "X-Content-Type-Options": "nosniff",
}


class StatusPage:
    """Built and started on the engine's loop (`start`), mounted on the admin thread's
    application (`mount`), closed from the engine's loop (`close`)."""

    def __init__(
        self,
        trader: Trader,
        feed: FeedView,
        loop_monitor: LoopMonitor,
        clock: Clock,
        *,
        mode: str,
        names: SymbolNames,
    ) -> None:
        self.trader = trader
        self.feed = feed
        self.loop_monitor = loop_monitor
        self.clock = clock
        self.mode = mode
        self.names = names
        self.fills = Fills()
        self.equity = EquityLine()
        self.fanout = Fanout()
        self.built = 0
        """Snapshots built (only while a browser watches)."""
        self._engine_loop: asyncio.AbstractEventLoop | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_ns = 0
        self._pending: asyncio.Handle | asyncio.Task[None] | None = None
        self._page = resources.files(__package__).joinpath("status.html").read_bytes()

    # --- on the engine's loop ----------------------------------------------------------------

    def start(self) -> None:
        """Read today's fills from the journal (a restart in the day), then follow the bus."""
        self._engine_loop = asyncio.get_running_loop()
        try:
            count, past = self.trader.journal.fills_of_day(
                self.clock.now().strftime("%Y%m%d"), MAX_FILLS
            )
            self.fills.restore(past, count)
        except Exception as e:  # the page then starts with the fills from now on
            log.warning("status_page_fills_unread", error_type=type(e).__name__, error=str(e))
        now = self.clock.now()
        try:
            self.equity.restore(now, self.trader.journal.equity_of_day(now.strftime("%Y%m%d")))
        except Exception as e:  # the line then starts now
            log.warning("status_page_equity_unread", error_type=type(e).__name__, error=str(e))
        self.trader.bus.subscribe(Fill, self._on_fill)
        self.trader.bus.subscribe(_URGENT, self._urgent)
        self._tasks.append(asyncio.create_task(self._every(), name="status-page"))
        self._sample()

    def read_names(self, fetch: Fetch) -> None:
        """Read the symbol names in the background (cache first), then once a new day."""
        self.names.load()
        self._tasks.append(asyncio.create_task(self._names(fetch), name="status-page-names"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._pending is not None:
            self._pending.cancel()
        http = self._http_loop
        if http is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                http.call_soon_threadsafe(self.fanout.close)

    def snapshot(self) -> dict[str, Any]:
        """The page's state now (snapshot.build over the engine's objects)."""
        trader = self.trader
        risk = trader.risk
        risk.roll_day()  # past midnight: the new day's PnL, not yesterday's
        feed = self.feed
        return build(
            now=self.clock.now(),
            mode=self.mode,
            trading_state=risk.state.value,
            trading_reason=risk.state_reason,
            halts={k.value: v for k, v in risk.halts.items()},
            reconciling=risk.reconciling,
            feed={
                "live": feed.connected,
                "silent_s": None if feed.silent_s is None else round(feed.silent_s, 3),
                "reconnects": max(0, feed.sessions - 1),
                "loop_lag_ms": round(self.loop_monitor.lag_s * 1000, 1),
            },
            portfolio=trader.portfolio,
            strategies=trader.host.slots,
            open_orders=trader.oms.open_orders(),
            fills=self.fills,
            equity_line=self.equity,
            names=self.names.names,
        )

    def publish(self) -> None:
        """Build a snapshot and hand it to the admin thread, if a browser watches."""
        self._pending = None
        http = self._http_loop
        if http is None or not self.fanout.clients:
            return
        self._last_ns = self.clock.time_ns()
        try:
            payload = orjson.dumps(self.snapshot())
        except Exception:  # a page that cannot be built must not break the loop
            log.exception("status_page_snapshot_failed")
            return
        self.built += 1
        with contextlib.suppress(RuntimeError):  # the admin thread is closing
            http.call_soon_threadsafe(self.fanout.publish, payload)

    def _on_fill(self, fill: Fill) -> None:
        self.fills.add(fill, self.clock.now())
        if self._engine_loop is not None:
            # After the dispatch: the portfolio has booked the fill by then.
            self._engine_loop.call_soon(self._sample)

    def _sample(self) -> None:
        if self.trader.running:  # before, the account is not loaded yet: no point at 0
            self.equity.add(self.clock.now(), equity(self.trader.portfolio))

    def _urgent(self, _ev: object) -> None:
        loop = self._engine_loop
        if self._pending is not None or loop is None or not self.fanout.clients:
            return
        wait_s = MIN_INTERVAL_S - (self.clock.time_ns() - self._last_ns) / 1e9
        if wait_s <= 0:
            self._pending = loop.call_soon(self.publish)
        else:
            self._pending = loop.create_task(self._publish_after(wait_s))

    async def _publish_after(self, wait_s: float) -> None:
        await self.clock.sleep(wait_s)
        self.publish()

    def _asked(self) -> None:
        """A browser came: a fresh snapshot (throttled as any)."""
        self._urgent(None)

    async def _every(self) -> None:
        # On the engine's Clock, as the admin's own snapshots (the live clock: real time).
        since_sample = 0.0
        while True:
            await self.clock.sleep(INTERVAL_S)
            since_sample += INTERVAL_S
            if since_sample >= EQUITY_EVERY_S or not self.equity.points:
                since_sample = 0.0
                self._sample()
            since_s = (self.clock.time_ns() - self._last_ns) / 1e9
            if self._pending is None and since_s >= MIN_INTERVAL_S:
                self.publish()

    async def _names(self, fetch: Fetch) -> None:
        while True:
            await self.names.refresh(fetch, self.clock.now().date())
            await self.clock.sleep(NAMES_EVERY_S)

    # --- on the admin thread -----------------------------------------------------------------

    def mount(self, app: web.Application, loop: asyncio.AbstractEventLoop) -> None:
        """Add `GET /` and `GET /events` to the admin thread's application."""
        self._http_loop = loop
        app.router.add_get("/", self._index)
        app.router.add_get("/events", self._events)

    async def _index(self, request: web.Request) -> web.Response:
        if not loopback_host(request.host):
            return _foreign_host()
        return web.Response(
            body=self._page, content_type="text/html", charset="utf-8", headers=_HEADERS
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not loopback_host(request.host):
            return _foreign_host()
        return await stream(request, self.fanout, on_join=self._browser_came)

    def _browser_came(self) -> None:
        engine = self._engine_loop
        if engine is not None:
            with contextlib.suppress(RuntimeError):  # the engine's loop is closing
                engine.call_soon_threadsafe(self._asked)


def loopback_host(host: str) -> bool:
    """Whether a request's Host names the loopback interface (127.x, localhost, ::1), with
    any port. A web page that rebinds its own domain name to 127.0.0.1 sends its domain in
    Host: refused, it cannot read the account through a browser on this machine."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _foreign_host() -> web.Response:
    return web.Response(
        status=403, text="the status page answers requests to a loopback host name only"
    )
