"""When the daemon writes the day's report by itself (engine/reports/day_end.py): the end of
the day's last session by the calendar in mode live/mock, on the clock; the simulated
session's close in mode sim; once a day; a report that fails is logged, not raised."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from pathlib import Path

import orjson

from engine import config
from engine.clock import KST, ManualClock
from engine.events import Exchange, SessionChanged, SessionState
from engine.reports.day_end import DayEndReporter, last_session_end, next_day_end
from engine.reports.files import ReportFiles
from tests.reports.test_daily import write_journal
from tests.support import until


def test_the_day_ends_with_the_last_session_of_the_venues_traded() -> None:
    wed = datetime(2026, 12, 30, 10, 0, tzinfo=KST)
    assert next_day_end(wed) == datetime(2026, 12, 30, 18, 0, tzinfo=KST)
    assert next_day_end(wed, (Exchange.KRX, Exchange.NXT)) == datetime(
        2026, 12, 30, 20, 0, tzinfo=KST
    )
    # After it: the next trading day's (31 December is KRX's year-end closing day, then New
    # Year's Day and a weekend).
    late = datetime(2026, 12, 30, 18, 0, 1, tzinfo=KST)
    assert next_day_end(late) == datetime(2027, 1, 4, 18, 0, tzinfo=KST)
    assert last_session_end(datetime(2026, 12, 31).date()) is None


class Marks:
    def __init__(self) -> None:
        self.marked = 0

    def record_equity(self) -> bool:
        self.marked += 1
        return True

    async def journal_settled(self, timeout_s: float = 2.0) -> bool:
        return True


def live_config(state: Path) -> config.Config:
    cfg = config.load(None, env={})
    return dataclasses.replace(
        cfg,
        kiwoom=dataclasses.replace(cfg.kiwoom, mode="live"),
        daemon=dataclasses.replace(cfg.daemon, state_dir=str(state)),
    )


async def test_live_the_report_is_written_at_the_days_end_on_the_clock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_journal(state)  # 2026-03-03, a Tuesday
    clock = ManualClock(datetime(2026, 3, 3, 17, 59, 0, tzinfo=KST))
    got: list[ReportFiles] = []
    marks = Marks()
    reporter = DayEndReporter(live_config(state), clock, got.append, marks=marks)
    assert not reporter.by_session
    task = asyncio.create_task(reporter.run())
    try:
        await until(lambda: clock.sleeping == 1)
        clock.advance(59.9)
        await asyncio.sleep(0.05)
        assert (got, marks.marked) == ([], 0)  # not before 18:00
        clock.advance(0.1)
        await until(lambda: bool(got), within_s=60.0)
    finally:
        task.cancel()
    files = got[0]
    assert marks.marked == 1  # the day's last mark, journaled first
    assert files.directory == state / "reports" / "2026-03-03"
    assert orjson.loads(files.json.read_bytes())["total"]["realized_pnl"] == 2_219
    assert files.png is not None
    assert reporter.reported == {datetime(2026, 3, 3).date()}


def test_orders_sent_to_nxt_or_sor_by_default_move_the_days_end_to_nxts_close(
    tmp_path: Path,
) -> None:
    base = live_config(tmp_path)
    assert DayEndReporter(base, ManualClock(), None).venues == (Exchange.KRX,)
    for venue in ("NXT", "SOR"):
        cfg = dataclasses.replace(base, daemon=dataclasses.replace(base.daemon, venue=venue))
        reporter = DayEndReporter(cfg, ManualClock(), None)
        assert reporter.venues == (Exchange.KRX, Exchange.NXT)
        wed = datetime(2026, 12, 30, 10, 0, tzinfo=KST)
        assert next_day_end(wed, reporter.venues) == datetime(2026, 12, 30, 20, 0, tzinfo=KST)


def session(state: SessionState, exchange: Exchange = Exchange.KRX) -> SessionChanged:
    return SessionChanged(exchange, state, 0, 0)


async def test_sim_it_waits_for_every_venue_traded_to_close_after_trading(tmp_path: Path) -> None:
    cfg = config.load(None, env={})  # mode sim
    reporter = DayEndReporter(cfg, ManualClock(), None)
    assert reporter.by_session
    reporter.on_session(session(SessionState.CLOSED))  # closed from the start: not a day's end
    assert not reporter._due.is_set()
    reporter.on_session(session(SessionState.REGULAR))
    reporter.on_session(session(SessionState.CLOSED, Exchange.NXT))  # not a venue traded
    assert not reporter._due.is_set()
    reporter.on_session(session(SessionState.CLOSED))
    assert reporter._due.is_set()


async def test_a_report_that_fails_is_logged_and_the_daemon_goes_on(tmp_path: Path) -> None:
    got: list[ReportFiles] = []
    reporter = DayEndReporter(live_config(tmp_path / "empty"), ManualClock(), got.append)
    assert await reporter.report(datetime(2026, 3, 3).date()) is None  # no journal there
    assert (reporter.failures, got) == (1, [])
