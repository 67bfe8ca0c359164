"""Replay of a recorded WebSocket session as the simulator's market source.

Reads the NDJSON that engine/kiwoom/recorder.py writes (one object per line, receive wall time
under "ts" (or "t") and the raw frame text, or an already-parsed object, under "frame") and
yields the REAL data entries with their offsets from the first frame, in recorded order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from engine.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    offset_s: float
    """Seconds after the first recorded frame (never negative, never decreasing)."""
    entry: dict[str, Any]
    """A REAL data entry: {"type", "name", "item", "values"}."""


def _frame_obj(frame: Any) -> dict[str, Any] | None:
    if isinstance(frame, str | bytes):
        try:
            frame = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return None
    return frame if isinstance(frame, dict) else None


def replay_entries(path: str | Path, types: Collection[str] | None = None) -> Iterator[ReplayEntry]:
    """Yield every REAL entry in the recording (optionally only `types`), lazily.

    Non-REAL frames (LOGIN, PING, REG acks, SYSTEM) are skipped; malformed lines and entries are
    logged and skipped. Timestamps that go backwards are clamped so offsets never decrease.
    Reads the file as it goes; raises OSError if it cannot be opened.
    """
    first: float | None = None
    last = 0.0
    bad = 0
    with Path(path).open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                ts = float(rec["ts"] if "ts" in rec else rec["t"])
                frame = _frame_obj(rec["frame"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                bad += 1
                log.warning("replay_line_bad", path=str(path), line=lineno)
                continue
            if frame is None or frame.get("trnm") != "REAL":
                continue
            if first is None:
                first = ts
            last = max(last, ts - first)
            data = frame.get("data")
            if not isinstance(data, list):
                continue
            for e in data:
                if (
                    isinstance(e, dict)
                    and isinstance(e.get("type"), str)
                    and isinstance(e.get("values"), dict)
                    and (types is None or e["type"] in types)
                ):
                    yield ReplayEntry(last, e)
    if bad:
        log.info("replay_done_with_bad_lines", path=str(path), bad=bad)


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
