"""Latency stamps of the simulator's side of the wire (`sim.stamp_file`; off by default).

When on, the simulator appends one line per REAL frame it writes and one per order request
it reads, so that an outside observer (bench/tick_to_order.py) can measure a client from the
moment a market frame left to the moment the order it caused arrived, without trusting the
client's own clock:

    F <ns> <sid> <n>            REAL frame n (1, 2, ...) of WebSocket session sid was written
    O <ns> <api_id> <ord_no>    an order request's headers were read; its answer's ord_no

`<ns>` is `time.monotonic_ns()`: CLOCK_MONOTONIC, the one clock every process on a Linux host
shares, and real time whatever clock the simulator runs on (a latency is never simulated).
Lines are buffered and reach the file at `close` (or when the buffer fills), so stamping
costs a formatted write in memory, not a syscall per frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

ORDER_API_IDS = frozenset({"kt10000", "kt10001", "kt10002", "kt10003"})
"""Requests stamped with `O`: the order-placing TRs (buy, sell, amend, cancel)."""


def now_ns() -> int:
    """The stamp clock (see the module docstring)."""
    return time.monotonic_ns()


class Stamps:
    """An open stamp file. Not thread-safe; the simulator's loop is its only writer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = self.path.open("a", encoding="ascii", buffering=1 << 16)
        self._frames: dict[int, int] = {}

    def frame(self, sid: int) -> None:
        """A REAL frame of session `sid` was just written to its socket."""
        if self._file is None:
            return
        n = self._frames.get(sid, 0) + 1
        self._frames[sid] = n
        self._file.write(f"F {time.monotonic_ns()} {sid} {n}\n")

    def order(self, read_ns: int, api_id: str, order_no: str) -> None:
        """An order request whose headers were read at `read_ns` was answered `order_no`
        ("-" when it was refused)."""
        if self._file is None:
            return
        self._file.write(f"O {read_ns} {api_id} {order_no or '-'}\n")

    def close(self) -> None:
        """Write out what is buffered; later stamps are ignored. Idempotent."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
