"""NDJSON recording of raw WebSocket frames with receive timestamps, and reading it back.

One line per frame: {"ts": <wall seconds>, "frame": "<the frame text as received>"}. The frame
is kept as text, byte for byte, so a replay feeds the codec exactly what Kiwoom sent.

With `rotate_daily`, the file holds one KST day: the first frame of a new day closes it and
renames it `<stem>.<YYYY-MM-DD><suffix>` (the day it holds) beside the live path, which goes
on with the new day; `on_rotate` is told the closed file (the daemon imports it into the
history store, in a subprocess). A file left from an earlier day (the daemon was down at
midnight) is closed the same way when the recorder opens it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO

import orjson
import structlog

from engine.clock import KST, SYSTEM_CLOCK, Clock

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    ts: float
    frame: str


class FrameRecorder:
    """Appends frames to an NDJSON file.

    `record` does a buffered write (no await, no fsync): the OS buffer absorbs bursts, and the
    file is flushed every `flush_every` frames and on `close`. A write error disables the
    recorder (logged once) rather than breaking the feed.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock = SYSTEM_CLOCK,
        flush_every: int = 256,
        *,
        rotate_daily: bool = False,
        on_rotate: Callable[[Path], None] | None = None,
    ):
        self.path = Path(path)
        self._clock = clock
        self._flush_every = flush_every
        self._pending = 0
        self.frames = 0
        self._rotate_daily = rotate_daily
        self._on_rotate = on_rotate
        self._day = clock.now().astimezone(KST).date()
        self._roll_at = _next_midnight(self._day) if rotate_daily else math.inf
        if rotate_daily:
            self._close_stale()
        self._fh: IO[bytes] | None = self.path.open("ab")

    def record(self, raw: str | bytes) -> None:
        fh = self._fh
        if fh is None:
            return
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        ts = self._clock.wall()
        if ts >= self._roll_at:
            fh = self._rotate(ts)
            if fh is None:
                return
        try:
            fh.write(orjson.dumps({"ts": ts, "frame": text}))
            fh.write(b"\n")
            self.frames += 1
            self._pending += 1
            if self._pending >= self._flush_every:
                fh.flush()
                self._pending = 0
        except OSError as exc:
            log.error("recorder_write_failed", path=str(self.path), error=str(exc))
            self.close()

    def _rotate(self, ts: float) -> IO[bytes] | None:
        """Close the day's file under its dated name and go on in a new one at `path`."""
        closed_day = self._day
        self._day = datetime.fromtimestamp(ts, KST).date()
        self._roll_at = _next_midnight(self._day)
        self.close()
        closed = self._set_aside(closed_day)
        try:
            self._fh = self.path.open("ab")
        except OSError as exc:
            log.error("recorder_open_failed", path=str(self.path), error=str(exc))
            return None
        self._pending = 0
        self._announce(closed)
        return self._fh

    def _close_stale(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        day = datetime.fromtimestamp(st.st_mtime, KST).date()
        if st.st_size > 0 and day < self._day:
            self._announce(self._set_aside(day))

    def _set_aside(self, day: date) -> Path | None:
        """Rename the file at `path` to its day's name (never over another); None when it
        could not be (logged: recording goes on in the same file)."""
        target = self.path.with_name(f"{self.path.stem}.{day.isoformat()}{self.path.suffix}")
        n = 0
        while target.exists():
            n += 1
            target = self.path.with_name(
                f"{self.path.stem}.{day.isoformat()}.{n}{self.path.suffix}"
            )
        try:
            self.path.rename(target)
        except OSError as exc:
            log.error("recorder_rotate_failed", path=str(self.path), error=str(exc))
            return None
        log.info("recording_rotated", path=str(target), day=day.isoformat())
        return target

    def _announce(self, closed: Path | None) -> None:
        if closed is not None and self._on_rotate is not None:
            self._on_rotate(closed)

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError as exc:
                log.error("recorder_close_failed", path=str(self.path), error=str(exc))


def _next_midnight(day: date) -> float:
    """Wall seconds of the KST midnight that ends `day`."""
    return datetime.combine(day + timedelta(days=1), time(0), KST).timestamp()


def read_recording(path: str | Path) -> Iterator[RecordedFrame]:
    """Yield the recorded frames in order; lines that are not valid records are skipped."""
    with Path(path).open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                yield RecordedFrame(float(rec["ts"]), str(rec["frame"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("recording_line_bad", path=str(path), line=lineno)
