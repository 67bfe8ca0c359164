"""A recording normalised into the store (`kiwoom-engine history --import FILE`): trades,
best quotes, books and VI notices (1h, dataset "vi") as datasets of their own; condition
search (dataset "conditions", one directory per condition seq): the hits, the members each
realtime search started with, and the names the login listed; every other realtime type as
`other_<type>`, and the account's own notices (00, 04) as `account_<type>`, apart from the
market data so that nothing replays them as prices.

Each dataset is partitioned by symbol and day. A row's identity is (recv_time, entry: its
index in the recorded frame), so importing a file twice, or two files that overlap, stores
each entry once. The reader of the recording (Kiwoom's frames) is engine/kiwoom/
recording_import.py; this module never sees a frame.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from engine.clock import KST
from engine.data.layout import PART_FILE
from engine.data.store import TZ, read_file, write_atomic
from engine.events import ConditionHit, OrderBook, Quote, Trade, ViEvent

CONDITIONS = "conditions"
"""The dataset of condition search; its directories are condition seqs, not symbols."""


@dataclass(frozen=True, slots=True)
class RawEntry:
    """A recorded entry kept as the broker sent it."""

    type: str
    name: str
    item: str
    values_json: str
    account: bool = False


@dataclass(frozen=True, slots=True)
class ConditionMembers:
    """The members a realtime condition search started with (the answer to its request)."""

    condition_seq: str
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConditionListed:
    """A condition the login listed, with its name."""

    condition_seq: str
    name: str


Item = Trade | Quote | OrderBook | ViEvent | ConditionHit | ConditionMembers | ConditionListed
Recorded = tuple[int, int, Item | RawEntry]
"""(receive time ns, index in its frame (in the list, for a listed condition), what it was)."""


@dataclass
class ImportCounts:
    lines: int = 0
    malformed_lines: int = 0
    frames: int = 0
    entries: int = 0
    bad_entries: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    """Rows stored per dataset."""


_LEVELS = 10
_DAY_NS = 86_400 * 1_000_000_000
_KST_NS = 9 * 3_600 * 1_000_000_000


def _kst_day(ns: int) -> date:
    return date(1970, 1, 1) + timedelta(days=(ns + _KST_NS) // _DAY_NS)


def _exchange_time(recv_ns: int, hhmmss: int) -> int:
    """The exchange's HHMMSS stamp on the receive day (KST), in ns; the receive time when the
    stamp is missing or would lie more than an hour after it (a wrap past midnight)."""
    h, rest = divmod(hhmmss, 10_000)
    m, s = divmod(rest, 100)
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60) or hhmmss == 0:
        return recv_ns
    day = _kst_day(recv_ns)
    at = datetime.combine(day, time(h, m, s), KST)
    ns = int(at.timestamp()) * 1_000_000_000
    return recv_ns if ns - recv_ns > 3_600 * 1_000_000_000 else ns


def _dir(name: str) -> str:
    return "".join(c for c in name if c.isalnum()) or "all"


def condition_dir(seq: str) -> str:
    """The directory of condition `seq` in the "conditions" dataset."""
    return _dir(seq)


def _condition_row(
    recv: int, idx: int, item: Item | RawEntry
) -> tuple[str, str, dict[str, Any]] | None:
    row: dict[str, Any] = {"time": recv, "recv_time": recv, "entry": idx}
    if isinstance(item, ConditionHit):
        seq = item.condition_seq
        row |= {"symbol": item.symbol, "kind": "hit", "name": item.condition}
        row |= {"entered": item.entered, "hit_time": item.time, "members": None}
    elif isinstance(item, ConditionMembers):
        seq = item.condition_seq
        row |= {"symbol": "", "kind": "members", "name": ""}
        row |= {"entered": None, "hit_time": 0, "members": ",".join(item.symbols)}
    elif isinstance(item, ConditionListed):
        seq = item.condition_seq
        row |= {"symbol": "", "kind": "listed", "name": item.name}
        row |= {"entered": None, "hit_time": 0, "members": None}
    else:
        return None
    row["seq"] = seq
    return CONDITIONS, _dir(seq), row


def _row(recv: int, idx: int, item: Item | RawEntry) -> tuple[str, str, dict[str, Any]]:
    """(dataset, symbol directory, row)."""
    cond = _condition_row(recv, idx, item)
    if cond is not None:
        return cond
    if isinstance(item, ViEvent):
        return (
            "vi",
            item.symbol,
            {
                "time": _exchange_time(recv, item.time),
                "recv_time": recv,
                "entry": idx,
                "symbol": item.symbol,
                "exchange": item.exchange.value,
                "active": item.active,
                "kind": item.kind.value if item.kind is not None else None,
                "trigger_price": item.trigger_price,
                "static_ref": item.static_ref,
                "dynamic_ref": item.dynamic_ref,
                "release_time": item.release_time,
                "count": item.count,
            },
        )
    if isinstance(item, Trade):
        return (
            "trades",
            item.symbol,
            {
                "time": _exchange_time(recv, item.time),
                "recv_time": recv,
                "entry": idx,
                "symbol": item.symbol,
                "exchange": item.exchange.value,
                "price": item.price,
                "qty": item.qty,
                "cum_volume": item.cum_volume,
                "change": item.change,
                "best_ask": item.best_ask,
                "best_bid": item.best_bid,
                "open": item.open,
                "high": item.high,
                "low": item.low,
                "session": item.session.value if item.session is not None else None,
            },
        )
    if isinstance(item, Quote):
        return (
            "quotes",
            item.symbol,
            {
                "time": recv,
                "recv_time": recv,
                "entry": idx,
                "symbol": item.symbol,
                "exchange": item.exchange.value,
                "best_ask": item.best_ask,
                "best_bid": item.best_bid,
            },
        )
    if isinstance(item, OrderBook):
        row: dict[str, Any] = {
            "time": _exchange_time(recv, item.time),
            "recv_time": recv,
            "entry": idx,
            "symbol": item.symbol,
            "exchange": item.exchange.value,
        }
        for side, levels in (("ask", item.asks), ("bid", item.bids)):
            for n in range(_LEVELS):
                price, qty = levels[n] if n < len(levels) else (0, 0)
                row[f"{side}_price_{n + 1}"] = price
                row[f"{side}_qty_{n + 1}"] = qty
        row["total_ask_qty"] = item.total_ask_qty
        row["total_bid_qty"] = item.total_bid_qty
        return "books", item.symbol, row
    assert isinstance(item, RawEntry)
    prefix = "account" if item.account else "other"
    symbol = _dir(item.item)
    return (
        f"{prefix}_{item.type}",
        symbol,
        {
            "time": recv,
            "recv_time": recv,
            "entry": idx,
            "symbol": item.item,
            "name": item.name,
            "values": item.values_json,
        },
    )


def _schema(dataset: str) -> Any:
    import pyarrow as pa

    ts = pa.timestamp("ns", tz=TZ)
    i64 = pa.int64()
    head = [("time", ts), ("recv_time", ts), ("entry", i64), ("symbol", pa.string())]
    if dataset == "trades":
        rest = (
            [("exchange", pa.string())]
            + [
                (k, i64)
                for k in (
                    "price",
                    "qty",
                    "cum_volume",
                    "change",
                    "best_ask",
                    "best_bid",
                    "open",
                    "high",
                    "low",
                )
            ]
            + [("session", pa.string())]
        )
    elif dataset == "quotes":
        rest = [("exchange", pa.string()), ("best_ask", i64), ("best_bid", i64)]
    elif dataset == "vi":
        rest = [("exchange", pa.string()), ("active", pa.bool_()), ("kind", pa.string())]
        rest += [
            (k, i64)
            for k in ("trigger_price", "static_ref", "dynamic_ref", "release_time", "count")
        ]
    elif dataset == "books":
        rest = [("exchange", pa.string())]
        for side in ("ask", "bid"):
            for n in range(1, _LEVELS + 1):
                rest += [(f"{side}_price_{n}", i64), (f"{side}_qty_{n}", i64)]
        rest += [("total_ask_qty", i64), ("total_bid_qty", i64)]
    elif dataset == CONDITIONS:
        # kind: "hit" (symbol entered or left, at the exchange's hit_time HHMMSS), "members"
        # (comma-joined: what a realtime search started with), "listed" (the login's name).
        rest = [("seq", pa.string()), ("kind", pa.string()), ("name", pa.string())]
        rest += [("entered", pa.bool_()), ("hit_time", i64), ("members", pa.string())]
    else:
        rest = [("name", pa.string()), ("values", pa.string())]
    return pa.schema(head + rest)


def import_recording(root: Path, events: Iterable[Recorded], counts: ImportCounts) -> None:
    """Store every entry of `events` (see the module docstring). Holds one recording's rows in
    memory per dataset, symbol and day until the end (a recording is one day when the
    recorder rotates daily). Raises StoreError naming a file it cannot merge with."""
    import pyarrow as pa

    buckets: dict[tuple[str, str, date], list[dict[str, Any]]] = {}
    for recv, idx, item in events:
        dataset, symbol, row = _row(recv, idx, item)
        buckets.setdefault((dataset, symbol, _kst_day(row["time"])), []).append(row)
    for (dataset, symbol, day), rows in sorted(buckets.items()):
        schema = _schema(dataset)
        ts = schema.field("time").type
        cols = []
        for f in schema:
            values = [r[f.name] for r in rows]
            if f.type == ts:
                cols.append(pa.array(values, pa.int64()).cast(ts))
            else:
                cols.append(pa.array(values, f.type))
        new = pa.Table.from_arrays(cols, schema=schema)
        path = root / dataset / symbol / f"day={day.isoformat()}" / PART_FILE
        if path.exists():
            new = pa.concat_tables([read_file(path, schema), new])
        # one row per (recv_time, entry): the first seen
        new = new.append_column("_i", pa.array(range(new.num_rows), pa.int64()))
        keep = new.group_by(["recv_time", "entry"]).aggregate([("_i", "min")])
        new = new.take(keep.column("_i_min")).drop_columns(["_i"])  # sorted below
        # in the order the engine heard them: the reader merges on recv_time
        new = new.sort_by([("recv_time", "ascending"), ("entry", "ascending")])
        write_atomic(new, path)
        counts.rows[dataset] += len(rows)
