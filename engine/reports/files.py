"""A daily report's files: their names, and what the daemon hands to the alerts once they are
written. Imports nothing but the standard library (the daemon imports it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

JSON_NAME = "report.json"
TEXT_NAME = "report.txt"
PNG_NAME = "equity.png"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """A report written: `text` is report.txt's content (the alerts' message), `png` the
    equity picture (None when the day had no equity snapshot)."""

    day: str
    directory: Path
    json: Path
    text_file: Path
    png: Path | None
    text: str
