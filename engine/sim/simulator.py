"""The whole simulator on one port: REST (OAuth, market data, account, orders) and the
WebSocket exchange feed, with the market generator (or a replay) driving both.

`Simulator` composes the parts; `serve_forever` is `kiwoom-engine sim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import WS_PATH, SimConfig, is_loopback
from engine.kiwoom import fids
from engine.sim import control
from engine.sim.conditions import SimConditions
from engine.sim.exchange import SimExchange
from engine.sim.handlers import exchange_handlers
from engine.sim.market import Book, MarketGenerator
from engine.sim.replay import check_readable, play
from engine.sim.server import start
from engine.sim.stamps import Stamps
from engine.sim.state import SimState, build_state
from engine.sim.vi import ViMonitor
from engine.sim.ws import SimRealtime, SimSession
from engine.trading.fees import Market

log = structlog.get_logger(__name__)

_PUMP_INTERVAL_S = 0.01
"""How often the market generator runs; events are batched per interval."""
MAX_ENTRIES_PER_PUMP = 2_000
"""Most entries one pump generates (~5.5 MB, ~15 ms of generator work). When the loop falls
behind (a rate near sim.events_per_s's limit, a busy machine, a suspended process) the debt
beyond it is dropped and counted, not carried: a backlog would grow memory and the time
between two yields to the loop (so SIGTERM waits) without bound."""


SESSION_CODES: dict[tuple[str, str], str] = {}
"""(venue, session state) -> the 0s (FID 215) code that starts it: the first code the
engine's codec maps to it (engine/kiwoom/fids.py), so the two cannot disagree."""
for _code, _key in fids.SESSION_STATES.items():
    SESSION_CODES.setdefault(_key, _code)


class SimStartupError(Exception):
    """The simulator cannot start as configured; the message names the config key."""


class Simulator:
    """A running simulator. Use as an async context manager; `port` is known after entry.

    `state.faults` and `realtime` hold the fault knobs; `exchange` is the account and matcher.
    """

    def __init__(self, config: SimConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.state: SimState = build_state(config, clock)
        # SYSTEM frames before the LOGIN ack: state.faults, from sim.system_frames_before_login.
        self.realtime = SimRealtime(
            config.ping_interval_s, self.state.tokens.is_valid, clock, self.state.faults
        )
        self.market = MarketGenerator(
            config.symbols, config.seed, clock, universe=self.state.universe
        )
        self.exchange = SimExchange(
            self.market,
            config.cash,
            clock,
            self.realtime.publish,
            account_no=config.account_no,
            commission_bp=config.commission_bp,
            sell_tax_bp=config.sell_tax_bp,
            sell_tax_table=config.sell_tax_table,
            markets={s: Market(self.state.universe.listing(s).market) for s in config.symbols},
            reject_mode=config.reject_mode,
        )
        self.state.rest_handlers.update(exchange_handlers(self.exchange))
        self.state.feed = self.realtime
        # REST quotes follow the generated market, so ka10001 agrees with the feed and fills.
        self.state.marketdata.price_of = self._live_price
        self.state.marketdata.book_of = self._live_book
        self.conditions = SimConditions(
            config.conditions,
            config.symbols,
            self.market.last_price,
            self.market.prev_close,
            self.market.name,
            page_size=config.condition_page_size,
            max_realtime=config.max_realtime_conditions,
        )
        self.realtime.conditions = self.conditions
        self.realtime.on_registered = self._on_registered
        self.vi = ViMonitor(
            config.vi_static_pct, config.vi_dynamic_pct, config.vi_window_s, config.vi_auction_s
        )
        self.session: str = config.session
        """The notional KRX session (SessionState's value): the simulator's own, whatever the
        hour; `set_session` moves it and pushes 0s."""
        self.nxt_session: str = config.nxt_session
        """The notional NXT session, likewise (`set_session(state, venue="NXT")`)."""
        self.exchange.venue_open = self._venue_open
        self.port = 0
        self.events_per_s = config.events_per_s
        self.events_skipped = 0
        """Generated events dropped because the feed fell behind (MAX_ENTRIES_PER_PUMP)."""
        self._runner: web.AppRunner | None = None
        self._feed: asyncio.Task[None] | None = None

    def _live_price(self, code: str) -> int | None:
        return self.market.last_price(code) if self.market.has(code) else None

    def _live_book(self, code: str) -> Book | None:
        return self.market.book(code) if self.market.has(code) else None

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    async def __aenter__(self) -> Simulator:
        """Bind the port and start the feed. Raises SimStartupError when `sim.replay` cannot
        be read (before binding anything) and OSError when the port is taken."""
        if self.config.replay:
            try:
                check_readable(self.config.replay)
            except OSError as e:
                reason = e.strerror or type(e).__name__
                raise SimStartupError(
                    f"sim.replay: cannot read {self.config.replay!r}: {reason}"
                ) from None
        if self.config.stamp_file:
            try:
                stamps = Stamps(self.config.stamp_file)
            except OSError as e:
                reason = e.strerror or type(e).__name__
                raise SimStartupError(
                    f"sim.stamp_file: cannot open {self.config.stamp_file!r}: {reason}"
                ) from None
            self.state.stamps = self.realtime.stamps = stamps
        routes = [web.get(WS_PATH, self.realtime.handle)]
        if self.config.control:
            if not is_loopback(self.config.host):
                raise SimStartupError(
                    f"sim.control: the control endpoint needs a loopback sim.host, "
                    f"not {self.config.host!r}"
                )
            routes += control.routes(self)
            log.warning("sim_control_enabled", paths=control.PATHS)
        self._runner, self.port = await start(self.state, routes)
        self._feed = asyncio.create_task(self._run_feed(), name="sim-feed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
            self._feed = None
        await self.realtime.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.state.stamps is not None:
            self.state.stamps.close()

    async def _run_feed(self) -> None:
        """The market source: a replay or the generator. Never ends with an exception, so
        that `close` (on SIGTERM) has nothing to re-raise: a failure is logged and ends it."""
        try:
            if self.config.replay:
                await self._replay(self.config.replay)
            else:
                await self._generate()
        except Exception:
            log.exception("sim_feed_failed")

    async def _replay(self, path: str) -> None:
        # A recording is finite: start it when somebody listens, not into the void.
        while not self.realtime.registered_pairs():  # noqa: ASYNC110 - no REG hook; a poll is cheap
            await asyncio.sleep(0.05)
        log.info("sim_replay_started", path=path)
        try:
            count = await play(path, self.realtime.publish, clock=self.clock)
        except OSError as e:
            # Read at start-up, gone or broken since: the sessions stay up, the market stops.
            log.error(
                "sim_replay_failed",
                key="sim.replay",
                path=path,
                error_type=type(e).__name__,
                error=e.strerror or str(e),
            )
            return
        log.info("sim_replay_done", entries=count)

    async def _generate(self) -> None:
        owed = 0.0
        last = self.clock.monotonic()
        while True:
            await asyncio.sleep(_PUMP_INTERVAL_S)
            now = self.clock.monotonic()
            owed += self.events_per_s * (now - last)
            last = now
            n = int(owed)
            owed -= n
            if n > MAX_ENTRIES_PER_PUMP:
                if not self.events_skipped:
                    log.warning("sim_feed_behind", events_per_s=self.events_per_s)
                self.events_skipped += n - MAX_ENTRIES_PER_PUMP
                n = MAX_ENTRIES_PER_PUMP
            try:
                if n > 0:
                    halted = self.market.halted
                    for entry in self.market.next_entries(n):
                        if halted and entry["item"] in halted:
                            # Generated in this batch after its VI began: the auction matches
                            # nothing, so nothing of the symbol is published until it ends.
                            continue
                        self.realtime.publish(entry)
                        if entry["type"] == "0B":
                            self._check_vi(entry, now)
                self._release_due(now)
                self.exchange.on_market_tick()
                self.realtime.condition_tick(self._hms())
            except Exception:  # a generator bug must not silence the whole feed
                log.exception("sim_feed_error")

    # --- market state: VI, session, stock info -------------------------------------------

    def _hms(self) -> str:
        return self.clock.now().strftime("%H%M%S")

    def _check_vi(self, entry: dict[str, Any], now: float) -> None:
        code = entry["item"]
        price = abs(int(entry["values"]["10"]))
        trigger = self.vi.on_trade(code, price, self.market.prev_close(code), now, self._hms())
        if trigger is not None:
            self.market.halted.add(code)
            self.realtime.publish(trigger)
            log.info("sim_vi_triggered", symbol=code, price=price)

    def trigger_vi(self, code: str, kind: str = "static") -> None:
        """Start a VI on `code` now at its last price (tests, the control endpoint)."""
        now = self.clock.monotonic()
        price = self.market.last_price(code)
        entry = self.vi.trigger(code, kind, price, self.market.prev_close(code), now, self._hms())
        self.market.halted.add(code)
        self.realtime.publish(entry)

    def _release_due(self, now: float) -> None:
        for code in self.vi.due(now):
            self.market.halted.discard(code)
            # The auction uncrosses at the book as it stands: resting orders that cross it
            # fill in on_market_tick, right after the release is pushed.
            entry = self.vi.release(code, self.market.last_price(code), now, self._hms())
            self.realtime.publish(entry)
            log.info("sim_vi_released", symbol=code)

    def set_session(self, state: str, venue: str = "KRX") -> None:
        """Move the notional session of `venue` (KRX, NXT) to `state` and push its 0s notice
        (none for a state no 0s code starts, such as pre_open_after_hours)."""
        if venue == "NXT":
            self.nxt_session = state
        else:
            self.session = state
        entry = self._session_entry(venue)
        if entry is not None:
            self.realtime.publish(entry)

    def _venue_open(self, venue: str) -> bool:
        return (self.nxt_session if venue == "NXT" else self.session) != "closed"

    def _session_entry(self, venue: str = "KRX") -> dict[str, Any] | None:
        state = self.nxt_session if venue == "NXT" else self.session
        code = SESSION_CODES.get((venue, state))
        if code is None:
            return None
        values = {"215": code, "20": self._hms(), "214": "000000"}
        return {"type": "0s", "name": "장시작시간", "item": "", "values": values}

    def _stock_info_entry(self, code: str) -> dict[str, Any]:
        lower, upper = self.market.limits(code)
        base = self.market.prev_close(code)
        values = {
            "305": f"+{upper}",
            "306": f"-{lower}",
            "307": str(base),
            "297": "0",
            "592": "0",
            "593": "0",
            "689": "",
            "594": "KRW",
            "382": "20%",
            "370": "",
        }
        return {"type": "0g", "name": "주식종목정보", "item": code, "values": values}

    def _on_registered(self, s: SimSession, pairs: set[tuple[str, str]]) -> None:
        # A new registration starts with the state it is about: the session's phase, a
        # symbol's limits (Kiwoom sends these on change; a client that just registered needs
        # them now).
        for rtype, item in pairs:
            if rtype == "0s":
                for venue in ("KRX", "NXT"):
                    entry = self._session_entry(venue)
                    if entry is not None:
                        self.realtime.push_to(s, entry)
            elif rtype == "0g" and self.market.has(item):
                self.realtime.push_to(s, self._stock_info_entry(item))


EXIT_STARTUP = 1


async def serve_forever(
    config: SimConfig, *, port: int | None = None, stop: asyncio.Event | None = None
) -> int:
    """`kiwoom-engine sim`: serve until `stop` is set (default: SIGINT/SIGTERM).

    Returns 0 after a stop, EXIT_STARTUP (logged with the reason) when the port cannot be bound
    or `sim.replay` cannot be read.
    """
    if port is not None:
        config = dataclasses.replace(config, port=port)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    try:
        await sim.__aenter__()
    except SimStartupError as e:
        log.error("sim_start_failed", error=str(e))
        return EXIT_STARTUP
    except OSError as e:
        await sim.close()
        log.error("sim_start_failed", host=config.host, port=config.port, error=str(e))
        return EXIT_STARTUP
    try:
        log.info("sim_serving", rest_url=sim.rest_url, ws_url=sim.ws_url, symbols=config.symbols)
        await stop.wait()
    finally:
        await sim.close()
    log.info("sim_stopped")
    return 0
