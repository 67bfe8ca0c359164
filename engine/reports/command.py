"""`kiwoom-engine report --day YYYY-MM-DD`: the day's report from the journal, read-only
beside a running daemon, written under `<daemon.state_dir>/reports/<day>/` (or `--out`).

Loaded by the CLI only when asked, and run by the daemon at the day's end in its own
process (engine/reports/day_end.py): matplotlib never enters the daemon."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from engine.config import Config
from engine.reports import daily, source
from engine.reports.files import ReportFiles
from engine.reports.source import ReportInputError

__all__ = ["ReportInputError", "report_day"]


def report_day(
    cfg: Config, day: date, *, out: Path | None = None, journal: Path | None = None
) -> ReportFiles:
    """Read `day` from the journal (`journal`: the directory holding it, default the
    daemon's, `Config.journal_dir`) and write its report into `out` (default
    `<daemon.state_dir>/reports/<day>`). Raises ReportInputError (no journal, nothing that
    day, unreadable) with a message naming the file; OSError when `out` cannot be written."""
    rec = source.read_day(journal or cfg.journal_dir, day)
    return daily.write(rec, out or cfg.reports_dir / day.isoformat())
