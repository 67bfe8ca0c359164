"""Replay of a recorded WebSocket session as the simulator's market source.

Reads what engine/kiwoom/recorder.py writes (through its `read_recording`) and yields the REAL
data entries with their offsets from the first REAL frame, in recorded order. The condition
searches' answers are not REAL frames: `recorded_conditions` reads what the recorded login
listed (CNSRLST) and what its searches first answered (CNSRREQ), so that the replaying
simulator lists the recorded conditions and starts them with the recorded members; the 02
pushes that follow are REAL entries, replayed like the rest.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from engine.clock import SYSTEM_CLOCK, Clock
from engine.kiwoom.fids import ACCOUNT_TYPES
from engine.kiwoom.recorder import read_recording

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    offset_s: float
    """Seconds after the first recorded REAL frame (never negative, never decreasing)."""
    entry: dict[str, Any]
    """A REAL data entry: {"type", "name", "item", "values"}."""


@dataclass(frozen=True, slots=True)
class RecordedConditions:
    listed: tuple[tuple[str, str], ...]
    """(seq, name) as the recording's last successful CNSRLST answer listed them, seq stripped."""
    members: dict[str, list[str]]
    """seq -> the symbols its first complete CNSRREQ answer held (realtime or one-shot)."""


STATE_TYPES: Final = frozenset({"0s", "0g"})
"""Realtime types that tell a state a registration starts with (the session, a symbol's day
parameters): a replay whose recording has them serves the recorded ones, not generated ones."""


@dataclass(frozen=True, slots=True)
class RecordingScan:
    conditions: RecordedConditions | None
    """The recorded login's conditions; None when the recording has no CNSRLST answer."""
    state_types: frozenset[str]
    """The STATE_TYPES among the recording's REAL entries."""


def scan_recording(path: str | Path) -> RecordingScan:
    """What a replay needs before it starts: the recorded conditions and which state types
    the recording carries. Reads the whole file but parses only the lines that mention a
    condition search or a state type; a malformed condition answer is skipped (and counted
    in one warning), never fatal. Raises OSError if the file cannot be read."""
    listed: tuple[tuple[str, str], ...] | None = None
    members: dict[str, list[str]] = {}
    types: set[str] = set()
    bad = 0
    with Path(path).open("rb") as fh:
        for line in fh:
            cnsr = b"CNSRLST" in line or b"CNSRREQ" in line
            if not cnsr and (types >= STATE_TYPES or not any(t in line for t in _STATE_BYTES)):
                continue
            try:
                frame = orjson.loads(orjson.loads(line)["frame"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                bad += cnsr
                continue
            if not isinstance(frame, dict):
                continue
            trnm, data = frame.get("trnm"), frame.get("data")
            if trnm == "REAL" and isinstance(data, list):
                types.update(
                    e["type"] for e in data if _well_formed(e) and e["type"] in STATE_TYPES
                )
            elif frame.get("return_code") != 0:
                continue
            elif trnm == "CNSRLST":
                rows = _listed(data)
                if rows is None:
                    bad += 1
                else:
                    listed = rows
            elif trnm == "CNSRREQ" and frame.get("cont_yn") != "Y":
                seq = frame.get("seq")
                codes = _codes(data)
                if not isinstance(seq, str) or codes is None:
                    bad += 1
                elif seq.strip() not in members:
                    members[seq.strip()] = codes
    if bad:
        log.warning("replay_conditions_bad", path=str(path), bad=bad)
    conditions = None if listed is None else RecordedConditions(listed, members)
    return RecordingScan(conditions, frozenset(types))


_STATE_BYTES: Final = tuple(t.encode() for t in STATE_TYPES)


def _listed(data: object) -> tuple[tuple[str, str], ...] | None:
    """CNSRLST's `data`: [[seq, name], ...]."""
    if not isinstance(data, list):
        return None
    out = []
    for row in data:
        if not (isinstance(row, list) and len(row) >= 2 and all(isinstance(v, str) for v in row)):
            return None
        out.append((row[0].strip(), row[1]))
    return tuple(out)


def _codes(data: object) -> list[str] | None:
    """The symbols of a CNSRREQ answer's rows: {"jmcode": "A005930"} (realtime) or
    {"9001": "A005930", ...} (one-shot), without the A."""
    if data is None or data == "":
        return []
    if not isinstance(data, list):
        return None
    out = []
    for row in data:
        code = row.get("jmcode", row.get("9001")) if isinstance(row, dict) else None
        if not isinstance(code, str):
            return None
        out.append(code.strip().removeprefix("A"))
    return out


def check_readable(path: str | Path) -> None:
    """Raise OSError (missing, a directory, no permission, ...) unless `path` can be opened
    and read; reads one byte. For start-up, so that a bad path is named before anything runs."""
    with Path(path).open("rb") as fh:
        fh.read(1)


def replay_entries(path: str | Path, types: Collection[str] | None = None) -> Iterator[ReplayEntry]:
    """Yield every REAL entry in the recording (optionally only `types`), lazily.

    The recorded account's own notices (00 order execution, 04 balance) are never replayed:
    they are that account's orders, not market data, and a replaying client would book fills
    for orders it never placed; they are counted in one log line.
    Non-REAL frames (LOGIN, PING, REG acks, SYSTEM) are skipped; lines that are not records,
    frames that are not JSON objects or have a timestamp that is not a finite number (it would
    hold the replay forever) are skipped and counted in one warning, as are malformed entries
    (which would break the publisher). Timestamps that go backwards are clamped so offsets
    never decrease. Reads the file as it goes; raises OSError if it cannot be read.
    """
    first: float | None = None
    last = 0.0
    bad = 0
    account = 0
    for rec in read_recording(path):
        try:
            frame = orjson.loads(rec.frame)
        except orjson.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict) or not math.isfinite(rec.ts):
            bad += 1
            continue
        if frame.get("trnm") != "REAL":
            continue
        if first is None:
            first = rec.ts
        last = max(last, rec.ts - first)
        data = frame.get("data")
        if not isinstance(data, list):
            bad += 1
            continue
        for e in data:
            if not _well_formed(e):
                bad += 1
            elif e["type"] in ACCOUNT_TYPES:
                account += 1
            elif types is None or e["type"] in types:
                yield ReplayEntry(last, e)
    if bad:
        log.warning("replay_frames_bad", path=str(path), bad=bad)
    if account:
        log.info("replay_account_notices_skipped", path=str(path), entries=account)


def _well_formed(entry: object) -> bool:
    """The shape SimRealtime.publish routes on: string type and item, a values object."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("type"), str)
        and isinstance(entry.get("item", ""), str)
        and isinstance(entry.get("values"), dict)
    )


async def play(
    path: str | Path,
    publish: Callable[[dict[str, Any]], None],
    *,
    speed: float = 1.0,
    clock: Clock = SYSTEM_CLOCK,
    types: Collection[str] | None = None,
) -> int:
    """Publish the recording's REAL entries with their recorded spacing; returns the count.

    `speed` > 1 plays faster; 0 or less plays as fast as possible (yielding to the loop between
    frames' entries). Sleeps with asyncio.sleep; cancel the task to stop.
    """
    start = clock.monotonic()
    count = 0
    for item in replay_entries(path, types):
        if speed > 0:
            due = start + item.offset_s / speed
            wait = due - clock.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        elif count % 1000 == 0:
            await asyncio.sleep(0)
        publish(item.entry)
        count += 1
    return count
