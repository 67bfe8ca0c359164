"""A recording (engine/kiwoom/recorder.py's NDJSON) read back as the engine's events, for the
history store's import (`kiwoom-engine history --import`).

Trades, quotes, books and VI notices (1h) come out as engine.events objects; every other
realtime type, and
the account's own notices (00 order execution, 04 balance) come out as `RawEntry`, their
values untouched, the latter marked `account` so the store keeps them apart from market data.
Lines that are not records and REAL frames that are not JSON are counted and skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import orjson

from engine.data.recorded import ImportCounts, RawEntry, Recorded
from engine.events import OrderBook, Quote, Trade, ViEvent
from engine.kiwoom.codec import CodecStats, _decode_entry
from engine.kiwoom.fids import ACCOUNT_TYPES


def recorded_events(path: str | Path, counts: ImportCounts) -> Iterator[Recorded]:
    """Every REAL entry of the recording in file order, as (receive time in ns, the entry's
    index in its frame, the event or raw entry). Raises OSError when the file cannot be read;
    never for its content (counted in `counts`)."""
    stats = CodecStats()
    with Path(path).open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            counts.lines += 1
            try:
                rec = orjson.loads(line)
                ts = float(rec["ts"])
                frame = orjson.loads(rec["frame"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                counts.malformed_lines += 1
                continue
            if not math.isfinite(ts) or not isinstance(frame, dict):
                counts.malformed_lines += 1
                continue
            if frame.get("trnm") != "REAL":
                continue
            data = frame.get("data")
            if not isinstance(data, list):
                counts.malformed_lines += 1
                continue
            counts.frames += 1
            recv = round(ts * 1_000_000_000)
            for i, entry in enumerate(data):
                counts.entries += 1
                rtype = entry.get("type") if isinstance(entry, dict) else None
                if not isinstance(rtype, str):
                    counts.bad_entries += 1
                    continue
                if rtype in ACCOUNT_TYPES or not isinstance(
                    ev := _decode_entry(entry, stats, recv, None),
                    Trade | Quote | OrderBook | ViEvent,
                ):
                    if rtype not in ACCOUNT_TYPES and ev is None:
                        counts.bad_entries += 1
                        continue
                    raw = RawEntry(
                        rtype,
                        str(entry.get("name", "")),
                        str(entry.get("item", "")),
                        orjson.dumps(entry.get("values")).decode(),
                        account=rtype in ACCOUNT_TYPES,
                    )
                    yield recv, i, raw
                    continue
                yield recv, i, ev
