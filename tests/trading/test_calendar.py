"""The KRX calendar on known 2025-2027 dates, and order-entry hours at every KRX/NXT boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from engine import config
from engine.clock import KST
from engine.config import ConfigError
from engine.events import Exchange
from engine.trading.calendar import KrxCalendar, parse_day

CAL = KrxCalendar()
TUESDAY = date(2026, 1, 6)


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2026, 1, 1), "New Year"),
        (date(2026, 2, 16), "Korean New Year"),  # 설날 연휴, Mon-Wed
        (date(2026, 2, 17), "Korean New Year"),
        (date(2026, 2, 18), "Korean New Year"),
        (date(2026, 9, 24), "Chuseok"),  # 추석 연휴 Thu-Fri (the third day is a Saturday)
        (date(2026, 9, 25), "Chuseok"),
        (date(2026, 5, 1), "Labor Day"),  # KRX closed on Workers' Day
        (date(2025, 5, 1), "Workers' Day"),
        (date(2026, 12, 31), "End of Year"),  # 연말휴장일, a Thursday
        (date(2025, 12, 31), "End of Year"),
        (date(2026, 1, 3), "weekend"),
        (date(2026, 1, 4), "weekend"),
        (date(2026, 9, 26), "weekend"),
    ],
)
def test_closed_days(day: date, why: str) -> None:
    assert not CAL.is_trading_day(day)
    reason = CAL.closed_reason(day)
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize(
    "day",
    [
        TUESDAY,
        date(2026, 1, 2),  # first trading day of 2026
        date(2026, 2, 13),  # the Friday before 설날
        date(2026, 2, 19),  # the day after 설날
        date(2026, 9, 23),
        date(2026, 9, 28),  # the Monday after 추석
        date(2026, 12, 30),  # the last trading day of 2026
    ],
)
def test_trading_days(day: date) -> None:
    assert CAL.is_trading_day(day)
    assert CAL.closed_reason(day) is None


def test_extra_holidays_close_the_market() -> None:
    cal = KrxCalendar(["2026-01-06", date(2026, 1, 7)])
    assert cal.closed_reason(TUESDAY) == "extra holiday (risk.extra_holidays)"
    assert not cal.is_trading_day(date(2026, 1, 7))
    assert cal.is_trading_day(date(2026, 1, 8))
    assert not cal.is_open_for_orders(datetime(2026, 1, 6, 10, 0, tzinfo=KST), Exchange.KRX)
    assert CAL.is_trading_day(TUESDAY)  # another calendar is not affected


def test_parse_day_accepts_only_yyyy_mm_dd() -> None:
    assert parse_day("2026-09-24") == date(2026, 9, 24)
    for bad in ("20260924", "2026-9-24", "2026-13-01", "2026/09/24", ""):
        with pytest.raises(ValueError, match=r"."):
            parse_day(bad)


def test_config_refuses_a_malformed_extra_holiday(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[risk]\nextra_holidays = ["2026-06-03", "2026-6-4"]\n')
    with pytest.raises(ConfigError, match=r"risk\.extra_holidays\[1\]: expected a date"):
        config.load(p, env={})
    p.write_text('[risk]\nextra_holidays = ["2026-06-04"]\n')
    assert config.load(p, env={}).risk.extra_holidays == ("2026-06-04",)


def at(hh: int, mm: int, ss: int = 0, day: date = TUESDAY) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=KST)


KRX_BOUNDARIES = [
    (at(8, 29, 59), False),
    (at(8, 30), True),  # 장전 시간외 and the opening auction's order entry
    (at(9, 0), True),
    (at(15, 29, 59), True),  # closing auction
    (at(15, 30), False),  # the 15:30-15:40 gap
    (at(15, 39, 59), False),
    (at(15, 40), True),  # 장후 시간외 종가
    (at(17, 59, 59), True),  # 시간외 단일가
    (at(18, 0), False),
    (at(0, 0), False),
]

NXT_BOUNDARIES = [
    (at(7, 59, 59), False),
    (at(8, 0), True),  # pre-market
    (at(8, 49, 59), True),
    (at(8, 50), False),
    (at(9, 0, 29), False),
    (at(9, 0, 30), True),  # main market
    (at(15, 19, 59), True),
    (at(15, 20), False),
    (at(15, 39, 59), False),
    (at(15, 40), True),  # after-market
    (at(19, 59, 59), True),
    (at(20, 0), False),
]


@pytest.mark.parametrize(("now", "is_open"), KRX_BOUNDARIES)
def test_krx_order_hours(now: datetime, is_open: bool) -> None:
    assert CAL.is_open_for_orders(now, Exchange.KRX) is is_open


@pytest.mark.parametrize(("now", "is_open"), NXT_BOUNDARIES)
def test_nxt_order_hours(now: datetime, is_open: bool) -> None:
    assert CAL.is_open_for_orders(now, Exchange.NXT) is is_open


@pytest.mark.parametrize(
    ("now", "is_open"),
    [(at(8, 0), True), (at(15, 35), False), (at(18, 30), True), (at(20, 0), False)],
)
def test_sor_is_open_when_either_venue_is(now: datetime, is_open: bool) -> None:
    assert CAL.is_open_for_orders(now, Exchange.SOR) is is_open


@pytest.mark.parametrize("exchange", list(Exchange))
@pytest.mark.parametrize(
    "day", [date(2026, 1, 1), date(2026, 2, 17), date(2026, 9, 25), date(2026, 1, 3)]
)
def test_no_venue_takes_orders_on_a_closed_day(exchange: Exchange, day: date) -> None:
    assert not CAL.is_open_for_orders(at(10, 0, day=day), exchange)


def test_hours_are_read_in_kst_whatever_the_timezone_of_now() -> None:
    utc = UTC
    # 00:30 UTC on Tuesday is 09:30 KST on Tuesday.
    assert CAL.is_open_for_orders(datetime(2026, 1, 6, 0, 30, tzinfo=utc), Exchange.KRX)
    # 23:00 UTC on Monday is 08:00 KST on Tuesday: NXT's pre-market, KRX not yet.
    monday_late = datetime(2026, 1, 5, 23, 0, tzinfo=utc)
    assert not CAL.is_open_for_orders(monday_late, Exchange.KRX)
    assert CAL.is_open_for_orders(monday_late, Exchange.NXT)
    # 01:00 UTC on 2026-01-01 is 10:00 KST on New Year's Day.
    assert not CAL.is_open_for_orders(datetime(2026, 1, 1, 1, 0, tzinfo=utc), Exchange.KRX)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.is_open_for_orders(datetime(2026, 1, 6, 10, 0), Exchange.KRX)


def test_warm_builds_the_year_and_the_next_so_new_year_s_day_builds_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import holidays

    built: list[object] = []
    build = holidays.financial_holidays

    def noted(*args: object, **kwargs: object) -> object:
        built.append(kwargs.get("years"))
        return build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(holidays, "financial_holidays", noted)
    cal = KrxCalendar()
    cal.warm(date(2026, 12, 31))
    assert built == [2026, 2027]
    assert cal.closed_reason(date(2026, 12, 31)) is not None  # 연말휴장일
    assert cal.closed_reason(date(2027, 1, 1)) is not None  # New Year's Day
    assert cal.is_trading_day(date(2027, 1, 4))
    assert built == [2026, 2027]  # nothing built by the lookups
