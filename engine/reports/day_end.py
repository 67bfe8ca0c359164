"""The daily report at the day's end, for the daemon: when the day's last session of the
venues traded ends, journal a last equity snapshot, write the report in a child process
(`kiwoom-engine report --day`), and hand it to `on_report` (the alerts).

When: in mode live and mock, at the end of the day's last session by the calendar
(`last_session_end`: KRX's after-hours single-price session ends 18:00, NXT's after-market
20:00), on the clock; in mode sim, when the simulator's notional session of every venue
traded closes (its session notice, `SessionChanged` to CLOSED), whatever the hour. Once a day.

The report is drawn in its own process: matplotlib and the drawing never enter the daemon,
and a slow report never holds the event loop (rendering in a thread would hold the GIL).
Imports nothing heavy: the daemon imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from engine.clock import KST, Clock
from engine.config import Config
from engine.events import Exchange, SessionChanged, SessionState
from engine.reports.files import JSON_NAME, PNG_NAME, TEXT_NAME, ReportFiles
from engine.trading.calendar import KrxCalendar

log = structlog.get_logger(__name__)

SESSION_ENDS: dict[Exchange, time] = {Exchange.KRX: time(18, 0), Exchange.NXT: time(20, 0)}
"""The end of each venue's last session of the day (KRX: 시간외 단일가 until 18:00; NXT:
after-market until 20:00), engine/trading/krx.py and calendar.py."""

TRADED: tuple[Exchange, ...] = (Exchange.KRX,)
"""The venues traded with `[daemon] venue = "KRX"`: see `traded_venues`."""

MAX_SLEEP_S = 300.0
"""The wait for the day's end is taken in steps of at most this, so that a wall clock set
forward (or a suspended machine) is noticed within it."""

OnReport = Callable[[ReportFiles], Awaitable[None] | None]
"""Told the report's files once written (the alerts send the text and the PNG). Exceptions
are logged, never raised into the daemon."""


class Marks(Protocol):
    """What the reporter needs of the engine (engine/trader.py `Trader`)."""

    def record_equity(self) -> bool: ...
    async def journal_settled(self, timeout_s: float = ...) -> bool: ...


def traded_venues(cfg: Config) -> tuple[Exchange, ...]:
    """The venues whose last session ends the day: KRX, and NXT as well when `[daemon] venue`
    sends orders there (NXT, or SOR: routed to either). A strategy naming `venue="NXT"` on
    its own orders with the default KRX is not foreseen: its day ends with KRX's."""
    return TRADED if cfg.daemon.venue == "KRX" else (Exchange.KRX, Exchange.NXT)


def last_session_end(
    day: date, venues: Iterable[Exchange] = TRADED, calendar: KrxCalendar | None = None
) -> datetime | None:
    """When the last session of `venues` ends on `day` (KST), None on a day KRX does not
    trade."""
    calendar = calendar or KrxCalendar()
    if not calendar.is_trading_day(day):
        return None
    return datetime.combine(day, max(SESSION_ENDS[v] for v in venues), KST)


def next_day_end(
    now: datetime, venues: Iterable[Exchange] = TRADED, calendar: KrxCalendar | None = None
) -> datetime:
    """The first last-session end at or after `now` (a trading day within the next 30)."""
    calendar = calendar or KrxCalendar()
    venues = tuple(venues)
    day = now.astimezone(KST).date()
    for _ in range(30):
        end = last_session_end(day, venues, calendar)
        if end is not None and end >= now:
            return end
        day += timedelta(days=1)
    raise ValueError(f"no trading day within 30 days of {now.isoformat()}")


class DayEndReporter:
    """See the module docstring. `on_session` is the bus handler for SessionChanged (mode
    sim); `run` the task."""

    def __init__(
        self,
        cfg: Config,
        clock: Clock,
        on_report: OnReport | None = None,
        *,
        marks: Marks | None = None,
        venues: Iterable[Exchange] | None = None,
    ) -> None:
        self.cfg = cfg
        """The daemon's config as loaded (its state_dir, not the built-in simulator's)."""
        self.marks = marks
        """The engine (set once it is built): its last mark is journaled before a report."""
        self.clock = clock
        self.on_report = on_report
        self.venues = tuple(venues) if venues is not None else traded_venues(cfg)
        """Those whose last session ends the day (default: `traded_venues(cfg)`)."""
        self.by_session = cfg.kiwoom.mode == "sim"
        self._states: dict[Exchange, SessionState] = {}
        self._opened: set[Exchange] = set()
        self._due = asyncio.Event()
        self.reported: set[date] = set()
        self.reports = 0
        self.failures = 0
        self.last: ReportFiles | None = None

    def on_session(self, ev: SessionChanged) -> None:
        """A venue's session moved: due once every venue traded has been open and is closed."""
        if ev.exchange not in self.venues:
            return
        self._states[ev.exchange] = ev.state
        if ev.state is not SessionState.CLOSED:
            self._opened.add(ev.exchange)
            return
        if self._opened >= set(self.venues) and all(
            self._states.get(v) is SessionState.CLOSED for v in self.venues
        ):
            self._opened.clear()
            self._due.set()

    async def run(self) -> None:
        """Until cancelled: wait for each day's end, then report."""
        calendar = KrxCalendar(self.cfg.risk.extra_holidays)
        while True:
            if self.by_session:
                await self._due.wait()
                self._due.clear()
            else:
                end = next_day_end(self.clock.now(), self.venues, calendar)
                while (left := (end - self.clock.now()).total_seconds()) > 0:
                    await self.clock.sleep(min(left, MAX_SLEEP_S))
            day = self.clock.now().date()
            if day in self.reported:
                if not self.by_session:
                    await self.clock.sleep(1.0)  # past the end: on to the next day's
                continue
            self.reported.add(day)
            await self.report(day)

    async def report(self, day: date) -> ReportFiles | None:
        """Journal the day's last mark, write `day`'s report in a child process, tell
        `on_report`. Never raises (failures are logged and counted); None when no report."""
        if self.marks is not None:
            await self.marks.journal_settled()
            self.marks.record_equity()
        out = self.cfg.reports_dir / day.isoformat()
        files = await self._write(day, out)
        if files is None:
            self.failures += 1
            return None
        self.reports += 1
        self.last = files
        log.info("daily_report_written", day=files.day, directory=str(out), png=bool(files.png))
        if self.on_report is not None:
            try:
                result = self.on_report(files)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("daily_report_hook_failed", day=files.day)
        return files

    def command(self, day: date, out: Path) -> list[str]:
        """The child's command line: this interpreter, the config file when there is one,
        and the journal and report directories named (as absolute paths)."""
        argv = [sys.executable, "-m", "engine"]
        source = Path(self.cfg.source)
        if self.cfg.source != "<defaults>" and source.is_file():
            argv += ["-c", str(source.resolve())]
        return [
            *argv,
            "--log-level",
            "warning",
            "report",
            "--day",
            day.isoformat(),
            "--journal",
            str(self.cfg.journal_dir.resolve()),
            "--out",
            str(out.resolve()),
        ]

    async def _write(self, day: date, out: Path) -> ReportFiles | None:
        try:
            _make_dir(out)
            proc = await asyncio.create_subprocess_exec(
                *self.command(day, out),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                cwd=out,  # no ./config.toml of the daemon's working directory read by chance
            )
        except OSError as e:
            log.error("daily_report_failed", day=day.isoformat(), error=str(e))
            return None
        try:
            async with asyncio.timeout(self.cfg.report.timeout_s):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()
            log.error(
                "daily_report_failed",
                day=day.isoformat(),
                error=f"not done within report.timeout_s ({self.cfg.report.timeout_s} s)",
            )
            return None
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        if proc.returncode != 0:
            log.error(
                "daily_report_failed",
                day=day.isoformat(),
                exit_code=proc.returncode,
                error=err.decode("utf-8", "replace").strip()[-2_000:],
            )
            return None
        return _collect(day, out)


def _make_dir(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)


def _collect(day: date, out: Path) -> ReportFiles | None:
    """The files the child wrote into `out`; None (logged) when report.txt cannot be read."""
    try:
        text = (out / TEXT_NAME).read_text(encoding="utf-8")
    except OSError as e:
        log.error("daily_report_failed", day=day.isoformat(), error=str(e))
        return None
    png = out / PNG_NAME
    return ReportFiles(
        day.isoformat(),
        out,
        out / JSON_NAME,
        out / TEXT_NAME,
        png if png.is_file() else None,
        text,
    )
