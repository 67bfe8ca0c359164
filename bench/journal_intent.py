"""Benchmark: the journal's synchronous intent write, the one disk write on the order hot path.

Compares, in one run on the same disk, rounds interleaved so that disk and CPU noise hit all:
- `Journal.record_intent`: a JSON line appended to intents.log with write(2) (moved into SQLite
  later, off the hot path: done here between rounds, untimed);
- a bare sqlite3 INSERT + commit of the same row into a table of the same shape, with the
  journal's pragmas (WAL, synchronous=NORMAL): what record_intent did before;
- a bare os.write of a line of the same size to an O_APPEND file: the floor.
Run: `uv run python -m bench.journal_intent`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.results import emit
from engine import logs
from engine.clock import Clock
from engine.events import OrderState, Side
from engine.journal import _INSERT_INTENT, _SCHEMA, Journal
from engine.trading.orders import Order

GOAL_P50_US = 50.0


def _orders(prefix: str, n: int) -> list[Order]:
    return [
        Order(
            client_id=f"{prefix}{i}",
            strategy="momentum",
            symbol="005930",
            side=Side.BUY,
            qty=10,
            price=70_000,
            state=OrderState.SUBMITTING,
            created_ns=time.time_ns(),
        )
        for i in range(n)
    ]


def _bare(path: Path) -> Callable[[Order], None]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_SCHEMA[0])  # the orders table
    conn.execute(_SCHEMA[1])  # and its index

    def insert(o: Order) -> None:
        conn.execute(
            _INSERT_INTENT,
            (
                o.client_id,
                "20260105",
                o.strategy,
                o.symbol,
                o.side.value,
                o.qty,
                o.price,
                o.tif.value,
                o.state.value,
                o.prev_state.value,
                o.order_no,
                o.filled_qty,
                o.fill_amount,
                o.reason,
                o.created_ns,
                o.external,
                o.created_ns,
            ),
        )

    return insert


def _bare_write(path: Path) -> Callable[[Order], None]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    line = b"x" * 120 + b"\n"  # an intent line is about as long

    def write(_o: Order) -> None:
        os.write(fd, line)

    return write


def _time(fn: Callable[[Order], None], orders: list[Order], out: list[int]) -> None:
    clock = time.perf_counter_ns
    for o in orders:
        t0 = clock()
        fn(o)
        out.append(clock() - t0)


def _pct(samples: list[int], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] / 1_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-round", type=int, default=2_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    args = ap.parse_args()
    logs.setup("warning", "console")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        journal = Journal(Path(tmp) / "journal", Clock())
        journal.open()
        bare = _bare(Path(tmp) / "bare.sqlite3")
        floor = _bare_write(Path(tmp) / "bare.log")
        # Warm all: statement caches, file growth.
        _time(journal.record_intent, _orders("wj", 200), [])
        _time(bare, _orders("wb", 200), [])
        _time(floor, _orders("wf", 200), [])
        ours: list[int] = []
        base: list[int] = []
        writes: list[int] = []
        for r in range(args.rounds):
            _time(bare, _orders(f"b{r}-", args.per_round), base)
            _time(journal.record_intent, _orders(f"j{r}-", args.per_round), ours)
            _time(floor, _orders(f"f{r}-", args.per_round), writes)
            journal.load_orders()  # what the writer does in the daemon: moves them to SQLite
        journal.close()

    n = args.rounds * args.per_round
    print(f"{n} inserts per side, {args.rounds} interleaved rounds, WAL + synchronous=NORMAL")
    print(
        f"bare INSERT+commit   : p50 {_pct(base, 0.5):7.1f} us   p99 {_pct(base, 0.99):7.1f} us"
        f"   mean {statistics.fmean(base) / 1000:7.1f} us"
    )
    print(
        f"Journal.record_intent: p50 {_pct(ours, 0.5):7.1f} us   p99 {_pct(ours, 0.99):7.1f} us"
        f"   mean {statistics.fmean(ours) / 1000:7.1f} us"
    )
    print(
        f"bare os.write, O_APPEND: p50 {_pct(writes, 0.5):5.1f} us   p99 {_pct(writes, 0.99):7.1f} us"
        f"   mean {statistics.fmean(writes) / 1000:7.1f} us"
    )
    print(f"p50 ratio to INSERT  : {_pct(ours, 0.5) / _pct(base, 0.5):.2f}x")
    print(f"p50 ratio to write   : {_pct(ours, 0.5) / _pct(writes, 0.5):.2f}x")
    print(f"p50 goal             : <= {GOAL_P50_US:.0f} us")
    emit(
        "journal record_intent p50",
        _pct(ours, 0.5),
        "us",
        _pct(base, 0.5),
        "bare INSERT+commit",
        f"<= {GOAL_P50_US:.0f} us",
    )
    emit(
        "journal record_intent p50 vs write(2)",
        _pct(ours, 0.5),
        "us",
        _pct(writes, 0.5),
        "bare os.write of a line",
        f"<= {GOAL_P50_US:.0f} us",
    )


if __name__ == "__main__":
    main()
