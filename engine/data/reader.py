"""Streaming reads of the store for the backtest: `iter_events` yields engine.events objects
in time order through a k-way merge over one stream per dataset and symbol, each reading its
files partition by partition in batches. Memory holds a batch per stream, never a range.

Order: chart data (ticks, bars) by its `time`; recorded data (trades, quotes, books, VI
notices) by `recv_time`, the order the engine heard it in. Ties go by dataset (books, quotes,
trades, vi, ticks, bars), then symbol, then file order: the same store always gives the same
sequence.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.clock import KST
from engine.data.layout import PART_FILE, interval_of, partitions_between
from engine.data.manifest import Manifest, ManifestError
from engine.data.store import StoreError
from engine.events import Bar, Exchange, MarketSession, OrderBook, Quote, Trade, ViEvent, ViKind

BATCH_ROWS = 8_192
RECORDED = ("books", "quotes", "trades", "vi")
_RANK = {"books": 0, "quotes": 1, "trades": 2, "vi": 3, "ticks": 4}
_LEVELS = 10
_KST_NS = 9 * 3_600 * 1_000_000_000
_DAY_NS = 86_400 * 1_000_000_000

StoreEvent = Trade | Quote | OrderBook | ViEvent | Bar


def _hhmmss(ns: int) -> int:
    s = (ns + _KST_NS) % _DAY_NS // 1_000_000_000
    return s // 3600 * 10_000 + s % 3600 // 60 * 100 + s % 60


def _days(start: date, end: date) -> Iterator[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def _files(root: Path, dataset: str, symbol: str, start: date, end: date) -> Iterator[Path]:
    """The dataset's files for [start, end] in time order; a file its manifest lists but that
    is gone raises StoreError naming it."""
    base = root / dataset / symbol
    interval = interval_of(dataset)
    if interval is None:  # recorded: one file a day, no manifest
        for d in _days(start, end):
            path = base / f"day={d.isoformat()}" / PART_FILE
            if path.exists():
                yield path
        return
    try:
        m = Manifest.load(base)
    except ManifestError as e:
        raise StoreError(str(e)) from None
    for part in partitions_between(interval, start, end):
        path = base / part.key / PART_FILE
        if path.exists():
            yield path
        elif m.rows.get(part.key, 0) > 0:
            raise StoreError(f"{path}: missing: the manifest {m.path} lists it")


def _batches(path: Path) -> Iterator[dict[str, list[Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        for batch in f.iter_batches(batch_size=BATCH_ROWS):
            cols: dict[str, list[Any]] = {}
            for name, col in zip(batch.schema.names, batch.columns, strict=True):
                if pa.types.is_timestamp(col.type):
                    col = col.cast(pa.int64())
                cols[name] = col.to_pylist()
            yield cols
    except StoreError:
        raise
    except Exception as e:  # a torn footer or page: ArrowInvalid, OSError
        raise StoreError(f"{path}: torn or unreadable Parquet file ({type(e).__name__})") from None


def _stream(
    root: Path, dataset: str, symbol: str, start: date, end: date
) -> Iterator[tuple[int, int, str, int, StoreEvent]]:
    lo = int(datetime.combine(start, datetime.min.time(), KST).timestamp()) * 1_000_000_000
    hi = lo + ((end - start).days + 1) * _DAY_NS
    rank = _RANK.get(dataset, 5)
    interval = interval_of(dataset)
    n = 0
    for path in _files(root, dataset, symbol, start, end):
        for c in _batches(path):
            keys = c["recv_time"] if dataset in RECORDED else c["time"]
            for i, key in enumerate(keys):
                if not lo <= key < hi:
                    continue
                ev = _event(dataset, interval, c, i)
                n += 1
                yield key, rank, symbol, n, ev


def _event(dataset: str, interval: str | None, c: dict[str, list[Any]], i: int) -> StoreEvent:
    sym = c["symbol"][i]
    if dataset == "trades":
        session = c["session"][i]
        return Trade(
            sym,
            Exchange(c["exchange"][i]),
            _hhmmss(c["time"][i]),
            c["price"][i],
            c["qty"][i],
            c["cum_volume"][i],
            c["change"][i],
            c["best_ask"][i],
            c["best_bid"][i],
            c["open"][i],
            c["high"][i],
            c["low"][i],
            MarketSession(session) if session else None,
            ts_recv=c["recv_time"][i],
        )
    if dataset == "quotes":
        return Quote(
            sym,
            Exchange(c["exchange"][i]),
            c["best_ask"][i],
            c["best_bid"][i],
            ts_recv=c["recv_time"][i],
        )
    if dataset == "vi":
        kind = c["kind"][i]
        return ViEvent(
            sym,
            Exchange(c["exchange"][i]),
            c["active"][i],
            ViKind(kind) if kind else None,
            c["trigger_price"][i],
            c["static_ref"][i],
            c["dynamic_ref"][i],
            _hhmmss(c["time"][i]),
            c["release_time"][i],
            c["count"][i],
            ts_recv=c["recv_time"][i],
        )
    if dataset == "books":
        asks = tuple((c[f"ask_price_{n}"][i], c[f"ask_qty_{n}"][i]) for n in range(1, _LEVELS + 1))
        bids = tuple((c[f"bid_price_{n}"][i], c[f"bid_qty_{n}"][i]) for n in range(1, _LEVELS + 1))
        return OrderBook(
            sym,
            Exchange(c["exchange"][i]),
            _hhmmss(c["time"][i]),
            asks,
            bids,
            c["total_ask_qty"][i],
            c["total_bid_qty"][i],
            ts_recv=c["recv_time"][i],
        )
    t = c["time"][i]
    if dataset == "ticks":
        session = c["session"][i]
        price = c["price"][i]
        return Trade(
            sym,
            Exchange.KRX,
            _hhmmss(t),
            price,
            c["qty"][i],
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            MarketSession(session) if session else None,
            ts_recv=t,
        )
    assert interval is not None
    start = datetime.fromtimestamp(t // 1_000_000_000, KST)
    return Bar(
        sym,
        interval,
        start,
        c["open"][i],
        c["high"][i],
        c["low"][i],
        c["close"][i],
        c["volume"][i],
        ts_recv=t,
    )


def iter_events(
    root: Path,
    symbols: Iterable[str],
    kinds: Iterable[str],
    start: date,
    end: date,
) -> Iterator[StoreEvent]:
    """Every stored event of `kinds` (dataset names: "trades", "quotes", "books", "ticks",
    "bars_1m", ...) for `symbols` over the KST days [start, end], in time order (see the
    module docstring). Lazy: files are opened as the merge reaches them. Raises StoreError
    naming a file that is missing or torn, when the merge reaches it."""
    streams = [_stream(Path(root), k, s, start, end) for k in kinds for s in symbols]
    for *_, ev in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2], x[3])):
        yield ev
