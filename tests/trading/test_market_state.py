"""VI and session state (engine/trading/market.py) and the risk checks that read it: VI_ACTIVE
refuses market orders only, on the VI's venue; the feed's session notice decides
SESSION_CLOSED over the calendar, for today only; VENUE refuses a venue the account cannot
trade on. Driven directly, on a manual clock."""

from __future__ import annotations

from datetime import datetime

from engine.clock import KST, ManualClock
from engine.events import Exchange, SessionChanged, SessionState, ViEvent, ViKind
from engine.trading.calendar import KrxCalendar
from engine.trading.market import VI_MAX_S, MarketState, calendar_session
from engine.trading.risk import Reason
from tests.trading.test_risk import SYM, Account, buy, engine, rejected, sell

TUESDAY_10 = datetime(2026, 1, 6, 10, 0, tzinfo=KST)


def vi(active: bool, exchange: Exchange = Exchange.KRX, symbol: str = SYM) -> ViEvent:
    return ViEvent(symbol, exchange, active, ViKind.STATIC, 77_000, 70_000, 0, 100000, 0, 1)


def notice(state: SessionState, exchange: Exchange = Exchange.KRX) -> SessionChanged:
    return SessionChanged(exchange, state, 100000, 0)


def test_vi_refuses_a_market_order_and_passes_a_limit_order() -> None:
    risk = engine(ManualClock(TUESDAY_10))
    risk.market.on_vi(vi(True))
    r = rejected(risk, buy(price=None), Account())
    assert (r.reason, r.detail) == (Reason.VI_ACTIVE, f"{SYM} KRX")
    assert rejected(risk, sell(5, price=None), Account(positions={SYM: 5})).reason is (
        Reason.VI_ACTIVE
    )
    assert risk.check(buy(), "s1", Account()) is None  # a limit order joins the auction
    risk.market.on_vi(vi(False))
    assert risk.check(buy(price=None), "s1", Account()) is None


def test_vi_is_per_venue_and_sor_sees_either() -> None:
    risk = engine(ManualClock(TUESDAY_10))
    risk.market.on_vi(vi(True, Exchange.NXT))
    assert risk.check(buy(price=None), "s1", Account()) is None  # KRX is not under it
    assert rejected(risk, buy(price=None), Account(), exchange=Exchange.NXT).reason is (
        Reason.VI_ACTIVE
    )
    assert rejected(risk, buy(price=None), Account(), exchange=Exchange.SOR).reason is (
        Reason.VI_ACTIVE
    )
    assert risk.market.vi_active(SYM)
    assert not risk.market.vi_active("000660")


def test_vi_check_can_be_turned_off() -> None:
    risk = engine(ManualClock(TUESDAY_10), refuse_market_under_vi=False)
    risk.market.on_vi(vi(True))
    assert risk.check(buy(price=None), "s1", Account()) is None


def test_a_vi_whose_release_was_lost_ends_after_vi_max_s() -> None:
    clock = ManualClock(TUESDAY_10)
    market = MarketState(clock, None)
    market.on_vi(vi(True))
    clock.advance(VI_MAX_S - 1)
    assert market.vi_active(SYM)
    clock.advance(2)
    assert not market.vi_active(SYM)
    assert market.vi_events == 1


def test_the_feeds_notice_beats_the_calendar_for_today_only() -> None:
    clock = ManualClock(TUESDAY_10)  # the calendar: KRX regular
    risk = engine(clock, session=True)
    risk.feed_sessions = True
    assert risk.market.session() is SessionState.REGULAR
    risk.market.on_session(notice(SessionState.CLOSED))
    assert risk.market.session() is SessionState.CLOSED
    r = rejected(risk, buy(), Account())
    assert r.reason is Reason.SESSION_CLOSED
    assert r.detail == "KRX 2026-01-06 10:00:00 (the feed's session notice)"
    clock.advance(24 * 3600)  # Wednesday 10:00: yesterday's notice is stale
    assert risk.market.session() is SessionState.REGULAR
    assert risk.check(buy(), "s1", Account()) is None


def test_without_the_calendar_only_a_notice_closes_the_session() -> None:
    # Mode sim: the calendar is off, and a Sunday night trades until a notice says otherwise.
    clock = ManualClock(datetime(2026, 1, 4, 23, 0, tzinfo=KST))
    risk = engine(clock, session=False)
    risk.feed_sessions = True
    assert risk.market.session() is SessionState.REGULAR
    assert risk.check(buy(), "s1", Account()) is None
    risk.market.on_session(notice(SessionState.CLOSED))
    assert rejected(risk, buy(), Account()).reason is Reason.SESSION_CLOSED
    # NXT has its own notice; SOR goes where a venue is open.
    assert risk.check(buy(), "s1", Account(), exchange=Exchange.NXT) is None
    assert risk.check(buy(), "s1", Account(), exchange=Exchange.SOR) is None
    risk.market.on_session(notice(SessionState.NXT_AFTER, Exchange.NXT))
    assert risk.market.session(Exchange.SOR) is SessionState.NXT_AFTER
    risk.market.on_session(notice(SessionState.REGULAR))
    assert risk.market.session(Exchange.SOR) is SessionState.REGULAR
    clock.advance(7 * 24 * 3600)  # no calendar: the notional session does not expire
    assert risk.market.session() is SessionState.REGULAR


def test_feed_sessions_off_keeps_the_calendar() -> None:
    risk = engine(ManualClock(TUESDAY_10), session=True)
    risk.market.on_session(notice(SessionState.CLOSED))
    assert risk.check(buy(), "s1", Account()) is None


def test_calendar_sessions_by_venue() -> None:
    cal = KrxCalendar()
    at = datetime(2026, 1, 6, 8, 10, tzinfo=KST)
    assert calendar_session(cal, at, Exchange.KRX) is SessionState.CLOSED
    assert calendar_session(cal, at, Exchange.NXT) is SessionState.NXT_PRE
    assert calendar_session(cal, at, Exchange.SOR) is SessionState.NXT_PRE
    at = datetime(2026, 1, 6, 8, 45, tzinfo=KST)
    assert calendar_session(cal, at, Exchange.SOR) is SessionState.OPENING_AUCTION
    at = datetime(2026, 1, 1, 10, 0, tzinfo=KST)  # a holiday
    assert calendar_session(cal, at, Exchange.NXT) is SessionState.CLOSED


def test_a_refused_venue() -> None:
    risk = engine(ManualClock(TUESDAY_10))
    risk.refused_venues = {Exchange.NXT: "KRX only"}
    r = rejected(risk, buy(), Account(), exchange=Exchange.NXT)
    assert (r.reason, r.detail) == (Reason.VENUE, "KRX only")
    assert risk.check(buy(), "s1", Account()) is None
