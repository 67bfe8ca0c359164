"""The order intents' append-only log: the one disk write on the order hot path.

An intent must be on disk before its POST leaves: in the kernel's page cache at least, so that
it outlives the process (kill -9, OOM kill, segfault). A SQLite commit gives that in about 30 us
on a warm CPU, but about 160 us in the running daemon, where SQLite's code and pages have gone
cold since the previous order (bench/tick_to_order.py, traced). One write(2) of a JSON line
gives the same guarantee in a few microseconds. The journal (engine/journal.py) moves the
pending intents into SQLite in its next transaction, off the hot path, then empties this log;
at open, it moves whatever a crash left here.

A line is one JSON array, the intent's row of the journal's `orders` table, ended by "\\n". A
write(2) of a few hundred bytes to a regular file is not cut short by the death of the process;
a line that is (a full disk, a power loss) is skipped when read, and counted.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)


class IntentLog:
    """One file of intent rows; single-threaded, as the journal that owns it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0
        self.unreadable_lines = 0
        """Lines skipped by `open` because they were cut short or garbled."""

    def open(self) -> list[list[Any]]:
        """Open (create, 0o600) the file and return the rows it holds, oldest first. Raises
        OSError."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with open(self._fd, "rb", closefd=False) as f:
            data = f.read()
        self._size = len(data)
        rows: list[list[Any]] = []
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                row = None
            if type(row) is not list:
                self.unreadable_lines += 1
                log.warning("intent_log_line_unreadable", path=str(self.path), size=len(line))
                continue
            rows.append(row)
        return rows

    def append(self, row: Sequence[Any]) -> None:
        """Write `row` as one line with one write(2). Raises OSError (the file is left as it
        was: a short write is cut back)."""
        fd = self._fd
        if fd is None:
            raise OSError(errno.EBADF, "intent log is not open")
        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        written = os.write(fd, line)
        if written != len(line):
            os.ftruncate(fd, self._size)
            raise OSError(errno.ENOSPC, f"short write to {self.path.name}")
        self._size += written

    def clear(self) -> None:
        """Empty the file: what it held is in SQLite now. Raises OSError."""
        if self._fd is not None and self._size:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
