"""Which dates of a symbol's dataset are stored whole: a set of inclusive date ranges, kept in
`_manifest.json` beside the partitions. Pure arithmetic plus one atomic file write.

A date is in the manifest only after every partition holding it was renamed into place, so a
crash leaves the manifest behind the files, never ahead: what it does not list is fetched
again and merged, never duplicated.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from engine.data.layout import MANIFEST_FILE, TMP_PREFIX

Span = tuple[date, date]
"""[first, last], inclusive."""


class ManifestError(Exception):
    """The manifest cannot be read; the message names the file."""


def normalise(spans: list[Span]) -> list[Span]:
    """Sorted, with overlapping and adjacent spans merged."""
    out: list[Span] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + timedelta(days=1):
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def gaps(covered: list[Span], start: date, end: date) -> list[Span]:
    """The parts of [start, end] that `covered` does not hold, oldest first."""
    out: list[Span] = []
    d = start
    for first, last in normalise(covered):
        if last < d:
            continue
        if first > end:
            break
        if first > d:
            out.append((d, first - timedelta(days=1)))
        d = max(d, last + timedelta(days=1))
    if d <= end:
        out.append((d, end))
    return out


@dataclass
class Manifest:
    path: Path
    covered: list[Span] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    """Partition key -> rows in its file, as last written: a listed file that is gone is a
    missing partition, not an empty one."""

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as e:
            raise ManifestError(f"{path}: unreadable manifest ({type(e).__name__})") from None
        try:
            covered = [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in raw["covered"]]
            rows = {str(k): int(v) for k, v in raw["rows"].items()}
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"{path}: malformed manifest") from None
        return cls(path, normalise(covered), rows)

    def add(self, span: Span) -> None:
        self.covered = normalise([*self.covered, span])

    def save(self) -> None:
        """Write to a temporary name, fsync, rename: a reader sees the old or the new."""
        body = {
            "covered": [[a.isoformat(), b.isoformat()] for a, b in self.covered],
            "rows": dict(sorted(self.rows.items())),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{TMP_PREFIX}{MANIFEST_FILE}")
        with open(tmp, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
