"""The history store's files: partitions written whole and renamed into place, read back with
their checks, listed and exported. The only module of engine.data that imports pyarrow (inside
its functions, so importing this module costs nothing).

Schemas (every price and quantity int64; `time` is `timestamp[ns, tz=Asia/Seoul]`, UTC epoch
underneath, so pandas, polars and DuckDB agree):
- bars: time, symbol, open, high, low, close, volume, session. `time` is the bar's time as
  Kiwoom labels it (the day, at midnight KST, for daily bars).
- ticks: time, symbol, seq, price, qty, session. `seq` orders the prints of one second.
- factors: date, symbol, factor (float64). A raw price times the factor of its day is the
  adjusted price; the store never holds an adjusted series (it would go stale at the next
  corporate action), only raw prices and these factors.
Days KRX did not trade (halts, reported as OHLC 0) have no row: missing, never a price of 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.clock import KST
from engine.data import crash
from engine.data.layout import (
    PART_FILE,
    TMP_PREFIX,
    Partition,
    factors_path,
    interval_of,
    part_path,
    partitions_between,
    symbol_dir,
)
from engine.data.manifest import Manifest, ManifestError, Span
from engine.models import Candle

if TYPE_CHECKING:
    import pyarrow as pa

TZ = "Asia/Seoul"
_REGULAR_OPEN = time(9, 0)
_REGULAR_CLOSE = time(15, 30)


class StoreError(Exception):
    """A file of the store is missing, torn or unreadable; the message names it."""


def session_of(at: datetime, interval: str) -> str:
    """KRX session of a row: "pre" before 09:00, "regular" to 15:30 inclusive (the closing
    auction prints at 15:30), "post" after. A daily bar is "regular"."""
    if interval == "1d":
        return "regular"
    t = (at.astimezone(KST) if at.tzinfo else at).time()
    if t < _REGULAR_OPEN:
        return "pre"
    return "regular" if t <= _REGULAR_CLOSE else "post"


_EPOCH = datetime(1970, 1, 1)


def _ns(at: datetime) -> int:
    """Nanoseconds since the UTC epoch (exact integer arithmetic; naive means KST)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=KST)
    d = at.astimezone(KST).replace(tzinfo=None) - _EPOCH
    return ((d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds) * 1_000 - _KST_NS


_KST_NS = 9 * 3_600 * 1_000_000_000
"""KST is UTC+9 all year (no summer time)."""


def _kst(ns: int) -> datetime:
    """A stored time (ns since the UTC epoch) in KST, to the microsecond."""
    return datetime.fromtimestamp(ns // 1_000_000_000, KST).replace(
        microsecond=ns % 1_000_000_000 // 1_000
    )


def _pa() -> Any:
    import pyarrow as pa

    return pa


def bar_schema() -> pa.Schema:
    pa = _pa()
    ts = pa.timestamp("ns", tz=TZ)
    i64 = pa.int64()
    return pa.schema(
        [
            ("time", ts),
            ("symbol", pa.string()),
            ("open", i64),
            ("high", i64),
            ("low", i64),
            ("close", i64),
            ("volume", i64),
            ("session", pa.string()),
        ]
    )


def tick_schema() -> pa.Schema:
    pa = _pa()
    i64 = pa.int64()
    return pa.schema(
        [
            ("time", pa.timestamp("ns", tz=TZ)),
            ("symbol", pa.string()),
            ("seq", i64),
            ("price", i64),
            ("qty", i64),
            ("session", pa.string()),
        ]
    )


def factor_schema() -> pa.Schema:
    pa = _pa()
    return pa.schema([("date", pa.date32()), ("symbol", pa.string()), ("factor", pa.float64())])


def traded(c: Candle) -> bool:
    """False for a row of a day KRX did not trade: Kiwoom reports halts as OHLC 0."""
    return min(c.open, c.high, c.low, c.close) > 0


def _table(interval: str, symbol: str, rows: Sequence[Candle]) -> pa.Table:
    """`rows` (oldest first) as a table of the interval's schema."""
    pa = _pa()
    times = pa.array([_ns(c.at) for c in rows], pa.int64())
    if interval == "tick":
        schema = tick_schema()
        seqs: list[int] = []
        last = None
        for c in rows:
            seqs.append(seqs[-1] + 1 if last == c.at and seqs else 0)
            last = c.at
        cols = [
            times.cast(schema.field("time").type),
            pa.array([symbol] * len(rows), pa.string()),
            pa.array(seqs, pa.int64()),
            pa.array([c.close for c in rows], pa.int64()),
            pa.array([c.volume for c in rows], pa.int64()),
            pa.array([session_of(c.at, interval) for c in rows], pa.string()),
        ]
    else:
        schema = bar_schema()
        cols = [
            times.cast(schema.field("time").type),
            pa.array([symbol] * len(rows), pa.string()),
            *(
                pa.array([getattr(c, k) for c in rows], pa.int64())
                for k in ("open", "high", "low", "close", "volume")
            ),
            pa.array([session_of(c.at, interval) for c in rows], pa.string()),
        ]
    return pa.Table.from_arrays(cols, schema=schema)


def read_file(path: Path, schema: pa.Schema) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing") from None
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a torn footer
        raise StoreError(f"{path}: torn or unreadable Parquet file ({type(e).__name__})") from None
    if not table.schema.equals(schema):
        raise StoreError(f"{path}: unexpected columns {table.schema.names}")
    return table


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to a temporary name in the same directory, fsync, rename over `path`:
    a crash leaves the old file or the new one, never a torn one."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{TMP_PREFIX}*"):
        stale.unlink(missing_ok=True)  # left by a run killed before its rename
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    crash.point("before_rename")
    os.replace(tmp, path)
    crash.point("after_rename")


@dataclass(frozen=True, slots=True)
class Stored:
    """One line of `--list`."""

    dataset: str
    symbol: str
    covered: tuple[Span, ...]
    rows: int
    files: int


class Store:
    """The store under `root` ([data] dir). Blocking file I/O: run it off the event loop or
    between awaits of a command that owns its loop."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- writing --------------------------------------------------------------------------

    def manifest(self, interval: str, symbol: str) -> Manifest:
        try:
            return Manifest.load(symbol_dir(self.root, interval, symbol))
        except ManifestError as e:
            raise StoreError(str(e)) from None

    def write(
        self,
        interval: str,
        symbol: str,
        part: Partition,
        span: Span,
        rows: Sequence[Candle],
        *,
        whole_until: date,
    ) -> int:
        """Store `rows` (any order; halted rows dropped) as every row of `part` within
        `span`: rows of the file outside `span` are kept, those inside are replaced. Then
        record `span` (clipped to the part and to `whole_until`, the last day that can no
        longer change) as stored whole. A span with no rows and no file writes no file.
        Returns the rows in the file."""
        pa = _pa()
        import pyarrow.compute as pc

        first, last = max(span[0], part.first), min(span[1], part.last)
        inside = sorted(
            (c for c in rows if first <= c.at.date() <= last and traded(c)), key=lambda c: c.at
        )
        # A day's rows newest first from the source: the sort is stable, so ticks of one
        # second keep the source's order only if they came oldest first. Callers pass them so.
        new = _table(interval, symbol, inside)
        path = part_path(self.root, interval, symbol, part)
        schema = tick_schema() if interval == "tick" else bar_schema()
        m = self.manifest(interval, symbol)
        if not path.exists() and not inside:
            if min(last, whole_until) >= first:
                m.add((first, min(last, whole_until)))
                m.save()
            return 0
        if path.exists():
            old = read_file(path, schema)
            lo = pa.scalar(_ns(datetime.combine(first, time(0), KST)), pa.int64())
            hi = pa.scalar(
                _ns(datetime.combine(last + timedelta(days=1), time(0), KST)), pa.int64()
            )
            t = old.column("time").cast(pa.int64())
            keep = pc.or_(pc.less(t, lo), pc.greater_equal(t, hi))
            new = pa.concat_tables([old.filter(keep), new]).sort_by(
                [("time", "ascending"), *([("seq", "ascending")] if interval == "tick" else [])]
            )
        write_atomic(new, path)
        m.rows[part.key] = new.num_rows
        if min(last, whole_until) >= first:
            m.add((first, min(last, whole_until)))
        m.save()
        return int(new.num_rows)

    def write_factors(self, symbol: str, factors: dict[date, float]) -> None:
        """Merge `factors` into the symbol's factor file (the new value of a date wins)."""
        pa = _pa()
        path = factors_path(self.root, symbol)
        merged: dict[date, float] = {}
        if path.exists():
            old = read_file(path, factor_schema())
            merged.update(
                zip(old.column("date").to_pylist(), old.column("factor").to_pylist(), strict=True)
            )
        merged.update(factors)
        days = sorted(merged)
        table = pa.Table.from_arrays(
            [
                pa.array(days, pa.date32()),
                pa.array([symbol] * len(days), pa.string()),
                pa.array([merged[d] for d in days], pa.float64()),
            ],
            schema=factor_schema(),
        )
        write_atomic(table, path)

    # --- reading --------------------------------------------------------------------------

    def read(
        self,
        interval: str,
        symbol: str,
        start: date,
        end: date,
        *,
        adjusted: bool = False,
    ) -> pa.Table:
        """The stored rows of [start, end] for one symbol, in time order. Raises StoreError
        naming the file when a partition the manifest lists is gone or a file is torn, and
        when `adjusted` asks for a day without a factor."""
        pa = _pa()
        schema = tick_schema() if interval == "tick" else bar_schema()
        m = self.manifest(interval, symbol)
        tables = []
        for part in partitions_between(interval, start, end):
            path = part_path(self.root, interval, symbol, part)
            if not path.exists():
                if m.rows.get(part.key, 0) > 0:
                    raise StoreError(
                        f"{path}: missing: the manifest {m.path} lists {m.rows[part.key]} rows "
                        "there; pull the range again to restore it"
                    )
                continue
            tables.append(read_file(path, schema))
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        lo = _ns(datetime.combine(start, time(0), KST))
        hi = _ns(datetime.combine(end + timedelta(days=1), time(0), KST))
        import pyarrow.compute as pc

        t = table.column("time").cast(pa.int64())
        table = table.filter(pc.and_(pc.greater_equal(t, lo), pc.less(t, hi)))
        if adjusted:
            table = self._adjust(interval, symbol, table)
        return table

    def _adjust(self, interval: str, symbol: str, table: pa.Table) -> pa.Table:
        pa = _pa()
        path = factors_path(self.root, symbol)
        if table.num_rows == 0:
            return table
        if not path.exists():
            raise StoreError(f"{path}: missing: no adjustment factors stored for {symbol}")
        f = read_file(path, factor_schema())
        factor = dict(
            zip(f.column("date").to_pylist(), f.column("factor").to_pylist(), strict=True)
        )
        days = [_kst(ns).date() for ns in table.column("time").cast(pa.int64()).to_pylist()]
        missing = sorted({d for d in days if d not in factor})
        if missing:
            raise StoreError(f"{path}: no adjustment factor for {missing[0]} ({len(missing)} days)")
        mult = [factor[d] for d in days]
        cols = ("price",) if interval == "tick" else ("open", "high", "low", "close")
        for name in cols:
            i = table.schema.get_field_index(name)
            values = [
                int(v * m + 0.5) for v, m in zip(table.column(name).to_pylist(), mult, strict=True)
            ]
            table = table.set_column(i, name, pa.array(values, pa.int64()))
        return table

    def listing(self) -> list[Stored]:
        """What is stored: one entry per dataset and symbol, from the manifests."""
        out: list[Stored] = []
        if not self.root.is_dir():
            return out
        for ds in sorted(p for p in self.root.iterdir() if p.is_dir()):
            interval = interval_of(ds.name)
            if interval is None:
                continue
            for sym in sorted(p for p in ds.iterdir() if p.is_dir()):
                m = self.manifest(interval, sym.name)
                files = sum(1 for _ in sym.glob(f"*/{PART_FILE}"))
                out.append(Stored(ds.name, sym.name, tuple(m.covered), sum(m.rows.values()), files))
        return out

    def export_csv(
        self,
        interval: str,
        symbols: Iterable[str],
        start: date,
        end: date,
        out: Path,
        *,
        adjusted: bool = False,
    ) -> list[Path]:
        """One CSV per symbol (`<symbol>_<interval>.csv`, time in KST ISO form)."""
        import pyarrow.csv as pcsv

        pa = _pa()
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for symbol in symbols:
            table = self.read(interval, symbol, start, end, adjusted=adjusted)
            i = table.schema.get_field_index("time")
            text = pa.array(
                [_kst(ns).isoformat() for ns in table.column("time").cast(pa.int64()).to_pylist()],
                pa.string(),
            )
            table = table.set_column(i, "time", text)
            path = out / f"{symbol}_{interval}.csv"
            pcsv.write_csv(table, path)
            written.append(path)
        return written
