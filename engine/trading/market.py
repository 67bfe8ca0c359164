"""What the market says about itself: volatility interruptions (VI) per symbol and venue, and
each venue's session as the feed announced it (or, without a notice, as the calendar has it).

Risk and the strategies read it; the trader feeds it the bus's `ViEvent` and `SessionChanged`
before anyone else sees them. Pure logic on an injected clock; nothing here knows the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from engine.clock import KST, Clock
from engine.events import Exchange, SessionChanged, SessionState, ViEvent
from engine.trading.calendar import KrxCalendar, nxt_session
from engine.trading.krx import session_phase

VI_MAX_S = 600.0
"""A VI not released after this long (clock seconds) counts as over. KRX's auction lasts about
2 minutes plus a random extension of up to 30 s: a release notice lost with a dropped
connection must not refuse market orders for the rest of the day."""

NO_ORDERS: frozenset[SessionState] = frozenset({SessionState.CLOSED})
"""Session states in which a venue takes no order."""


@dataclass(frozen=True, slots=True)
class FeedSession:
    """A venue's session as the feed's last notice set it, and the KST day it was set on."""

    state: SessionState
    day: date


def calendar_session(calendar: KrxCalendar, now: datetime, exchange: Exchange) -> SessionState:
    """The session of `exchange` at `now` (aware) by the calendar alone: CLOSED on a day KRX
    does not trade; KRX by `krx.session_phase`, NXT by `calendar.NXT_SESSIONS`; SOR is KRX's
    session while KRX takes orders, else NXT's."""
    kst = now.astimezone(KST)
    if not calendar.is_trading_day(kst.date()):
        return SessionState.CLOSED
    t = kst.time()
    krx = session_phase(t)
    if exchange is Exchange.KRX:
        return krx
    nxt = nxt_session(t) or SessionState.CLOSED
    if exchange is Exchange.NXT:
        return nxt
    return krx if krx not in NO_ORDERS else nxt


def session_of(
    feed: dict[Exchange, FeedSession],
    calendar: KrxCalendar | None,
    now: datetime,
    exchange: Exchange,
) -> SessionState:
    """The session of `exchange` at `now`: the feed's notice of today when there is one, else
    the calendar's (None: no calendar, as in mode sim, whose market never closes: REGULAR).
    SOR reads KRX's session while KRX takes orders, else NXT's."""
    if exchange is Exchange.SOR:
        krx = session_of(feed, calendar, now, Exchange.KRX)
        return krx if krx not in NO_ORDERS else session_of(feed, calendar, now, Exchange.NXT)
    known = feed.get(exchange)
    if known is not None and (calendar is None or known.day == now.astimezone(KST).date()):
        return known.state
    if calendar is None:
        return SessionState.REGULAR
    return calendar_session(calendar, now, exchange)


class MarketState:
    """VI per (symbol, venue) and the feed's session per venue (see the module docstring).

    `calendar` None: no calendar fallback (mode sim): a venue without a notice is REGULAR and
    a notice never expires with the day (the simulator's session is notional)."""

    def __init__(self, clock: Clock, calendar: KrxCalendar | None) -> None:
        self._clock = clock
        self.calendar = calendar
        self.feed_sessions: dict[Exchange, FeedSession] = {}
        self._vi: dict[tuple[str, Exchange], tuple[ViEvent, float]] = {}
        self.vi_events = 0
        """VI notices seen (triggers and releases)."""

    # --- fed by the bus ------------------------------------------------------------------------

    def on_vi(self, ev: ViEvent) -> None:
        self.vi_events += 1
        key = (ev.symbol, ev.exchange)
        if ev.active:
            self._vi[key] = (ev, self._clock.monotonic())
        else:
            self._vi.pop(key, None)

    def on_session(self, ev: SessionChanged) -> None:
        day = self._clock.now().astimezone(KST).date()
        self.feed_sessions[ev.exchange] = FeedSession(ev.state, day)

    # --- read ----------------------------------------------------------------------------------

    def vi_active(self, symbol: str, exchange: Exchange | None = None) -> bool:
        """True while a VI holds `symbol` on `exchange` (None or SOR: on any venue)."""
        now = self._clock.monotonic()
        venues = (Exchange.KRX, Exchange.NXT) if exchange in (None, Exchange.SOR) else (exchange,)
        for venue in venues:
            hit = self._vi.get((symbol, venue))
            if hit is None:
                continue
            if now - hit[1] <= VI_MAX_S:
                return True
            del self._vi[(symbol, venue)]
        return False

    def vi_symbols(self) -> list[str]:
        """The symbols under a VI now (any venue), sorted."""
        return sorted({s for s, v in list(self._vi) if self.vi_active(s, v)})

    def session(self, exchange: Exchange = Exchange.KRX) -> SessionState:
        """The session of `exchange` now (see `session_of`)."""
        return session_of(self.feed_sessions, self.calendar, self._clock.now(), exchange)

    def from_feed(self, exchange: Exchange) -> bool:
        """True when today's session of `exchange` (SOR: of KRX or NXT) comes from a notice."""
        if exchange is Exchange.SOR:
            return self.from_feed(Exchange.KRX) or self.from_feed(Exchange.NXT)
        known = self.feed_sessions.get(exchange)
        if known is None:
            return False
        return self.calendar is None or known.day == self._clock.now().astimezone(KST).date()
