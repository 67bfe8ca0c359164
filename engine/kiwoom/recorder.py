"""NDJSON recording of raw WebSocket frames with receive timestamps, and reading it back.

One line per frame: {"ts": <wall seconds>, "frame": "<the frame text as received>"}. The frame
is kept as text, byte for byte, so a replay feeds the codec exactly what Kiwoom sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
import structlog

from engine.clock import SYSTEM_CLOCK, Clock

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

    def __init__(self, path: str | Path, clock: Clock = SYSTEM_CLOCK, flush_every: int = 256):
        self.path = Path(path)
        self._clock = clock
        self._flush_every = flush_every
        self._pending = 0
        self.frames = 0
        self._fh: IO[bytes] | None = self.path.open("ab")

    def record(self, raw: str | bytes) -> None:
        fh = self._fh
        if fh is None:
            return
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            fh.write(orjson.dumps({"ts": self._clock.wall(), "frame": text}))
            fh.write(b"\n")
            self.frames += 1
            self._pending += 1
            if self._pending >= self._flush_every:
                fh.flush()
                self._pending = 0
        except OSError as exc:
            log.error("recorder_write_failed", path=str(self.path), error=str(exc))
            self.close()

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError as exc:
                log.error("recorder_close_failed", path=str(self.path), error=str(exc))


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
