"""Where each dataset lives on disk, and the calendar arithmetic of its partitions. Pure.

    <dir>/bars_1m/005930/month=2026-11/part.parquet      (bars: one file per symbol and month)
    <dir>/ticks/005930/day=2026-11-30/part.parquet       (ticks: one file per symbol and day)
    <dir>/factors/005930/part.parquet                    (adjustment factors, one file)
    <dir>/bars_1m/005930/_manifest.json                  (which dates are stored whole)

The symbol is a plain directory, not ``symbol=005930``: every hive reader (pyarrow, pandas,
polars, DuckDB) would infer ``005930`` as the integer 5930. The symbol is a string column in
the files instead, and `month=` / `day=` stay hive keys (they infer as strings). Files whose
names start with ``.`` or ``_`` (temporary files, the manifest) are skipped by those readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

INTERVALS = ("tick", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "1d")
PART_FILE = "part.parquet"
MANIFEST_FILE = "_manifest.json"
TMP_PREFIX = ".tmp-"


def dataset_name(interval: str) -> str:
    """The dataset of one interval: "ticks" or "bars_<interval>"."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return "ticks" if interval == "tick" else f"bars_{interval}"


def interval_of(dataset: str) -> str | None:
    """The interval a dataset directory holds, or None for one that is not a chart dataset."""
    if dataset == "ticks":
        return "tick"
    if dataset.startswith("bars_") and dataset[5:] in INTERVALS:
        return dataset[5:]
    return None


@dataclass(frozen=True, slots=True)
class Partition:
    """One file's share of the calendar: [first, last] dates inclusive."""

    key: str
    """The hive directory, "month=2026-11" or "day=2026-11-30"."""
    first: date
    last: date


def partition_of(interval: str, d: date) -> Partition:
    """The partition that holds day `d` of `interval` (ticks: by day, bars: by month)."""
    if interval == "tick":
        return Partition(f"day={d.isoformat()}", d, d)
    first = d.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return Partition(f"month={first:%Y-%m}", first, nxt - timedelta(days=1))


def partitions_between(interval: str, start: date, end: date) -> list[Partition]:
    """Every partition that overlaps [start, end], oldest first."""
    out: list[Partition] = []
    d = start
    while d <= end:
        p = partition_of(interval, d)
        out.append(p)
        d = p.last + timedelta(days=1)
    return out


def symbol_dir(root: Path, interval: str, symbol: str) -> Path:
    return root / dataset_name(interval) / symbol


def part_path(root: Path, interval: str, symbol: str, partition: Partition) -> Path:
    return symbol_dir(root, interval, symbol) / partition.key / PART_FILE


def factors_path(root: Path, symbol: str) -> Path:
    return root / "factors" / symbol / PART_FILE


def check_symbol(symbol: str) -> str:
    """A symbol as a directory name: letters and digits only (KRX codes are 6 of them)."""
    if not (symbol.isascii() and symbol.isalnum() and 1 <= len(symbol) <= 12):
        raise ValueError(f"symbol must be a plain code like 005930, got {symbol!r}")
    return symbol
