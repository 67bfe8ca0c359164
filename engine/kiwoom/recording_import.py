"""A recording (engine/kiwoom/recorder.py's NDJSON) read back as the engine's events, for the
history store's import (`kiwoom-engine history --import`).

Trades, quotes, books and VI notices (1h) come out as engine.events objects; condition search
as the engine's words too: a 02 push as its ConditionHit, a realtime search's answer (CNSRREQ
without paging) as the members it started with, the login's list (CNSRLST) as the names. Every
other realtime type, and the account's own notices (00 order execution, 04 balance) come out as `RawEntry`, their
values untouched, the latter marked `account` so the store keeps them apart from market data.
Lines that are not records and REAL frames that are not JSON are counted and skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from engine.data.recorded import (
    ConditionListed,
    ConditionMembers,
    ImportCounts,
    RawEntry,
    Recorded,
)
from engine.events import ConditionHit, OrderBook, Quote, Trade, ViEvent
from engine.kiwoom.codec import CodecStats, _decode_entry
from engine.kiwoom.fids import ACCOUNT_TYPES
from engine.kiwoom.wsproto import answer_seq, parse_condition_list, parse_search_page


def _condition_answer(frame: dict[str, Any], recv: int) -> Iterator[Recorded]:
    """A condition-search answer the recorded login got: its list (CNSRLST), or the members a
    realtime search started with (CNSRREQ answered without `cont_yn`: a one-shot search pages,
    a realtime one does not). Refusals and one-shot pages say nothing a replay needs."""
    if frame.get("return_code") != 0:
        return
    trnm = frame.get("trnm")
    if trnm == "CNSRLST":
        for i, (seq, name) in enumerate(parse_condition_list(frame)):
            yield recv, i, ConditionListed(seq, name)
    elif trnm == "CNSRREQ" and "cont_yn" not in frame:
        seq = answer_seq(frame)
        if seq:
            symbols, _more = parse_search_page(frame)
            yield recv, 0, ConditionMembers(seq, tuple(symbols))


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
                yield from _condition_answer(frame, round(ts * 1_000_000_000))
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
                    Trade | Quote | OrderBook | ViEvent | ConditionHit,
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
