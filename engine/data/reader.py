"""Streaming reads of the store for the backtest: `iter_events` yields engine.events objects
in time order through a k-way merge over one stream per dataset and symbol, each reading its
files partition by partition in batches. Memory holds a batch per stream, never a range.

Order: chart data (ticks, bars) by its `time`; recorded data (trades, quotes, books, VI
notices) by `recv_time`, the order the engine heard it in. Ties go by dataset (books, quotes,
trades, vi, ticks, bars), then symbol, then file order: the same store always gives the same
sequence.

Condition search (the "conditions" dataset, engine/data/recorded.py) is read per condition:
`condition_list` names what the store holds, `iter_conditions` streams one condition's hits
and search starts as `ConditionRecord`s for the backtest's universe feed.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.clock import KST
from engine.data.layout import PART_FILE, interval_of, partitions_between
from engine.data.manifest import Manifest, ManifestError
from engine.data.recorded import CONDITIONS, condition_dir
from engine.data.store import StoreError
from engine.events import (
    Bar,
    Exchange,
    MarketSession,
    OrderBook,
    Quote,
    Trade,
    ViEvent,
    ViKind,
    maker,
)

BATCH_ROWS = 8_192
CHUNK_ROWS = 256
"""Events are built this many at a time: a batch's worth alive at once would outlive the
collector's youngest generation and be promoted, and collecting the older generations costs
more than the events themselves (twice the floor's time at 8,192)."""
RECORDED = ("books", "quotes", "trades", "vi")
_RANK = {"books": 0, "quotes": 1, "trades": 2, "vi": 3, "ticks": 4}
_LEVELS = 10
_KST_NS = 9 * 3_600 * 1_000_000_000
_DAY_NS = 86_400 * 1_000_000_000

StoreEvent = Trade | Quote | OrderBook | ViEvent | Bar


@dataclass(frozen=True, slots=True)
class ConditionRecord:
    """A stored condition-search row: a hit (`members` None: `symbol` entered or left at
    `time`, HHMMSS) or a realtime search's start (`members`: what it started with)."""

    condition_seq: str
    symbol: str
    entered: bool
    time: int
    members: tuple[str, ...] | None
    ts_recv: int


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


_trade = maker(Trade)
_quote = maker(Quote)
_bar = maker(Bar)
_EXCHANGES: dict[Any, Any] = {e.value: e for e in Exchange}
_SESSIONS: dict[Any, Any] = {s.value: s for s in MarketSession}
_SESSIONS.update({None: None, "": None})


def _enums(table: dict[Any, Any], cls: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """Each value as its enum member (None and "" as None for sessions): `table`'s, and
    `cls(value)` for one it lacks, which raises as the enum does."""
    get = table.get
    return [m if (m := get(v, table)) is not table else cls(v) for v in values]


def _hhmmss_all(times: list[int]) -> list[int]:
    """`_hhmmss` of each time, computed once per second."""
    out: list[int] = []
    last = -1
    hms = 0
    for t in times:
        s = (t + _KST_NS) // 1_000_000_000
        if s != last:
            last = s
            d = s % 86_400
            hms = d // 3600 * 10_000 + d % 3600 // 60 * 100 + d % 60
        out.append(hms)
    return out


def _events(dataset: str, interval: str | None, c: dict[str, list[Any]]) -> list[StoreEvent]:
    """The batch's rows as events: what `_event` builds row by row, built column by column
    (no column lookup per row, enum members from a table)."""
    if dataset == "ticks":
        times = c["time"]
        krx, trade = Exchange.KRX, _trade
        return [
            trade(sym, krx, hms, price, qty, 0, 0, 0, 0, 0, 0, 0, session, t, 0)
            for sym, hms, price, qty, session, t in zip(
                c["symbol"], _hhmmss_all(times), c["price"], c["qty"],
                _enums(_SESSIONS, MarketSession, c["session"]), times,
                strict=True,
            )
        ]  # fmt: skip
    if dataset == "trades":
        trade = _trade
        return [
            trade(*row, 0)
            for row in zip(
                c["symbol"], _enums(_EXCHANGES, Exchange, c["exchange"]),
                _hhmmss_all(c["time"]), c["price"], c["qty"], c["cum_volume"], c["change"],
                c["best_ask"], c["best_bid"], c["open"], c["high"], c["low"],
                _enums(_SESSIONS, MarketSession, c["session"]), c["recv_time"],
                strict=True,
            )
        ]  # fmt: skip
    if dataset == "quotes":
        quote = _quote
        return [
            quote(*row, 0)
            for row in zip(
                c["symbol"], _enums(_EXCHANGES, Exchange, c["exchange"]), c["best_ask"],
                c["best_bid"], c["recv_time"],
                strict=True,
            )
        ]  # fmt: skip
    if dataset in RECORDED:  # books, vi: fewer, and wider
        return [_event(dataset, interval, c, i) for i in range(len(c["symbol"]))]
    assert interval is not None
    bar, at = _bar, datetime.fromtimestamp
    return [
        bar(sym, interval, at(t // 1_000_000_000, KST), o, h, lo, cl, v, t, 0)
        for sym, t, o, h, lo, cl, v in zip(
            c["symbol"], c["time"], c["open"], c["high"], c["low"], c["close"], c["volume"],
            strict=True,
        )
    ]  # fmt: skip


def _batched(
    root: Path, dataset: str, symbol: str, start: date, end: date
) -> Iterator[tuple[list[int], list[StoreEvent]]]:
    """(time keys, events) of each batch of the stream's rows in [start, end], file order."""
    lo = int(datetime.combine(start, datetime.min.time(), KST).timestamp()) * 1_000_000_000
    hi = lo + ((end - start).days + 1) * _DAY_NS
    interval = interval_of(dataset)
    key_col = "recv_time" if dataset in RECORDED else "time"
    for path in _files(root, dataset, symbol, start, end):
        for c in _batches(path):
            keys = c[key_col]
            if not keys:
                continue
            if min(keys) < lo or max(keys) >= hi:
                keep = [i for i, key in enumerate(keys) if lo <= key < hi]
                if not keep:
                    continue
                c = {name: [col[i] for i in keep] for name, col in c.items()}
                keys = c[key_col]
            n = len(keys)
            if n <= CHUNK_ROWS:
                yield keys, _events(dataset, interval, c)
                continue
            for i in range(0, n, CHUNK_ROWS):
                part = {name: col[i : i + CHUNK_ROWS] for name, col in c.items()}
                yield part[key_col], _events(dataset, interval, part)


def dataset_rank(dataset: str) -> int:
    """Where `dataset`'s rows go among those of the same instant and symbol."""
    return _RANK.get(dataset, 5)


def _stream(
    root: Path, dataset: str, symbol: str, start: date, end: date, index: int
) -> Iterator[tuple[int, int, str, int, int, StoreEvent]]:
    """(time key, dataset rank, symbol, row number, `index`, event) of each row: tuples that
    order as the merge wants them and never tie (`index` is the stream's own)."""
    rank = _RANK.get(dataset, 5)
    n = 0
    for keys, evs in _batched(root, dataset, symbol, start, end):
        for key, ev in zip(keys, evs, strict=True):
            n += 1
            yield key, rank, symbol, n, index, ev


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
    for evs in iter_event_lists(root, symbols, kinds, start, end):
        yield from evs


def iter_event_lists(
    root: Path,
    symbols: Iterable[str],
    kinds: Iterable[str],
    start: date,
    end: date,
) -> Iterator[list[StoreEvent]]:
    """`iter_events` a short list at a time (CHUNK_ROWS events at most): a consumer that
    iterates them itself (`itertools.chain.from_iterable`) saves a generator's resumption
    per event."""
    pairs = [(k, s) for k in kinds for s in symbols]
    root = Path(root)
    if len(pairs) == 1:  # nothing to merge
        for _, evs in _batched(root, *pairs[0], start, end):
            yield evs
        return
    streams = [_stream(root, k, s, start, end, i) for i, (k, s) in enumerate(pairs)]
    # Ties of (time, rank, symbol, row) go by stream index, as heapq.merge's own would.
    merged = heapq.merge(*streams)
    while chunk := [x[5] for x in itertools.islice(merged, CHUNK_ROWS)]:
        yield chunk


def _condition_files(root: Path, seq: str | None, start: date, end: date) -> Iterator[Path]:
    base = Path(root) / CONDITIONS
    if not base.is_dir():
        return
    dirs = [base / condition_dir(seq)] if seq is not None else sorted(base.iterdir())
    for d in dirs:
        for day in _days(start, end):
            path = d / f"day={day.isoformat()}" / PART_FILE
            if path.exists():
                yield path


def condition_list(root: Path, start: date, end: date) -> list[tuple[str, str]]:
    """The conditions the store has rows of over [start, end], as (seq, name): the name the
    recorded login listed, "" when none was recorded. By seq (numbers as numbers)."""
    names: dict[str, str] = {}
    for path in _condition_files(root, None, start, end):
        for c in _batches(path):
            for seq, kind, name in zip(c["seq"], c["kind"], c["name"], strict=True):
                if kind == "listed" or seq not in names:
                    names[seq] = name if kind == "listed" else names.get(seq, "")
    return sorted(names.items(), key=lambda r: (not r[0].isdigit(), r[0].zfill(12)))


def iter_conditions(root: Path, seq: str, start: date, end: date) -> Iterator[ConditionRecord]:
    """Condition `seq`'s hits and search starts over the KST days [start, end] in the order
    the engine heard them, a batch of rows at a time."""
    for path in _condition_files(root, seq, start, end):
        for c in _batches(path):
            rows = zip(
                c["seq"], c["kind"], c["symbol"], c["entered"], c["hit_time"], c["members"],
                c["recv_time"],
                strict=True,
            )  # fmt: skip
            for s, kind, symbol, entered, hms, members, recv in rows:
                if s != seq or kind == "listed":
                    continue
                if kind == "members":
                    syms = tuple(m for m in (members or "").split(",") if m)
                    yield ConditionRecord(seq, "", True, 0, syms, recv)
                else:
                    yield ConditionRecord(seq, symbol, bool(entered), hms or 0, None, recv)
