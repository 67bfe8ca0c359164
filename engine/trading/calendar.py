"""The KRX trading calendar: which days the market trades, and when each venue takes orders.

Closed days come from the `holidays` package's KRX market calendar (Korean public holidays with
their substitutes and election days, plus the exchange's own closures: Workers' Day, the
year-end closing day), plus the operator's `risk.extra_holidays`. NXT trades on KRX's days.
Pure: callers pass the time; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time

import holidays

from engine.clock import KST, parse_day
from engine.events import Exchange, SessionState
from engine.trading.krx import session_phase

# KRX phases in which no order is taken: night, and the 15:30-15:40 gap between the closing
# auction and the after-hours close session (both CLOSED in krx.session_phase).
_KRX_NO_ORDERS = frozenset({SessionState.CLOSED})

# NXT (Nextrade) sessions, start inclusive, end exclusive. The main market starts 30 s after
# KRX's open, leaving KRX's opening auction to set the day's first price; 08:50-09:00:30 and
# 15:20-15:40 take no orders.
NXT_SESSIONS: tuple[tuple[time, time, SessionState], ...] = (
    (time(8, 0), time(8, 50), SessionState.NXT_PRE),
    (time(9, 0, 30), time(15, 20), SessionState.REGULAR),
    (time(15, 40), time(20, 0), SessionState.NXT_AFTER),
)


def nxt_session(t: time) -> SessionState | None:
    """The NXT session at KST wall time `t`, or None when NXT takes no orders then."""
    naive = t.replace(tzinfo=None)
    for start, end, session in NXT_SESSIONS:
        if start <= naive < end:
            return session
    return None


class KrxCalendar:
    """KRX trading days and order-entry hours.

    Ignores the late-opening days (the first trading day of the year and the 수능 day open an
    hour late): orders sent too early on those days are refused by the exchange, not here.
    """

    def __init__(self, extra_holidays: Iterable[str | date] = ()) -> None:
        self._extra: dict[date, str] = {
            d if isinstance(d, date) else parse_day(d): "extra holiday (risk.extra_holidays)"
            for d in extra_holidays
        }
        self._closed: dict[int, dict[date, str]] = {}

    def _closed_days(self, year: int) -> dict[date, str]:
        # One dict per year, built once: the lookup runs on every order.
        days = self._closed.get(year)
        if days is None:
            market = holidays.financial_holidays("XKRX", years=year)
            days = {d: str(name) for d, name in market.items()}
            days.update({d: n for d, n in self._extra.items() if d.year == year})
            self._closed[year] = days
        return days

    def warm(self, day: date) -> None:
        """Build the closed days of `day`'s year and the next, so that no lookup of those
        years builds them later (a daemon running past New Year's Eve included). The first
        build in a process loads the `holidays` package's KRX calendar, which takes seconds:
        this blocks, so call it off the event loop (`asyncio.to_thread`) before trading
        starts, never between a strategy's decision and its order."""
        for year in (day.year, day.year + 1):
            self._closed_days(year)

    def closed_reason(self, day: date) -> str | None:
        """Why KRX does not trade on `day` ("weekend", the holiday's name), or None if it does."""
        if day.weekday() >= 5:
            return "weekend"
        return self._closed_days(day.year).get(day)

    def is_trading_day(self, day: date) -> bool:
        return self.closed_reason(day) is None

    def is_open_for_orders(self, now: datetime, exchange: Exchange) -> bool:
        """True when `exchange` takes new orders at `now` (timezone-aware; read in KST).

        KRX: 08:30-18:00 on trading days, except the 15:30-15:40 gap (krx.session_phase).
        NXT: 08:00-08:50, 09:00:30-15:20 and 15:40-20:00 (`NXT_SESSIONS`). SOR routes to
        whichever venue is open, so it is open when either is. Raises ValueError for a naive
        datetime: a server on UTC would otherwise be off by nine hours.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        kst = now.astimezone(KST)
        if not self.is_trading_day(kst.date()):
            return False
        t = kst.time()
        krx_open = session_phase(t) not in _KRX_NO_ORDERS
        if exchange is Exchange.KRX:
            return krx_open
        nxt_open = nxt_session(t) is not None
        if exchange is Exchange.NXT:
            return nxt_open
        return krx_open or nxt_open
