"""A day of the journal, read read-only beside a running daemon: its fills (and every
earlier day's, for the cost of what was sold), orders by final state, risk rejections, and
equity snapshots.

Opened with SQLite's `mode=ro`: no lock taken (the daemon's `journal.lock` is left alone),
nothing written to the journal; SQLite's WAL lets it read a consistent snapshot while the
daemon writes. What the daemon has not committed yet (a batch in its queue, the last
seconds of intents in `intents.log`) is not in it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from engine.events import Side
from engine.journal_file import FILE_NAME

EXTERNAL = "(external)"
"""The strategy name a report gives orders and fills no strategy placed (by hand, another
program)."""


class ReportInputError(Exception):
    """No journal, no such day in it, or a journal that cannot be read: the message names the
    file and what to do."""


@dataclass(frozen=True, slots=True)
class DayFill:
    trading_day: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    fee: int
    tax: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class DayOrder:
    strategy: str
    state: str
    reason: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Rejection:
    strategy: str
    reason: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    ts_ns: int
    cash: int
    positions_value: int
    realized: int
    unrealized: int
    fees: int
    strategies: dict[str, dict[str, int]]

    @property
    def equity(self) -> int:
        return self.cash + self.positions_value


@dataclass
class DayRecord:
    """What the journal holds of `day`."""

    day: date
    earlier_fills: list[DayFill] = field(default_factory=list)
    fills: list[DayFill] = field(default_factory=list)
    orders: list[DayOrder] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)


def _key(day: date) -> str:
    return day.strftime("%Y%m%d")


def connect(state_dir: Path) -> sqlite3.Connection:
    """The journal in `state_dir`, read-only. Raises ReportInputError when there is none or
    it is not a journal SQLite can read."""
    path = state_dir / FILE_NAME
    if not path.is_file():
        raise ReportInputError(
            f"no journal at {path}: the daemon writes it in its state directory "
            "(daemon.state_dir; in mode sim, its builtin-sim/ directory)"
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from exc
    if version == 0:
        conn.close()
        raise ReportInputError(f"journal {path} has no schema: not a journal")
    return conn


def _unreadable(path: Path, exc: Exception) -> ReportInputError:
    return ReportInputError(
        f"journal {path} cannot be read ({type(exc).__name__}: {exc}); a torn or damaged file: "
        "nothing was changed. The daemon's next start says how to recover it"
    )


def read_day(state_dir: Path, day: date) -> DayRecord:
    """`day` as the journal holds it. Raises ReportInputError when the journal is missing
    or unreadable, or holds nothing for `day` (no order, fill or snapshot)."""
    conn = connect(state_dir)
    path = state_dir / FILE_NAME
    try:
        rec = _read(conn, day)
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from exc
    finally:
        conn.close()
    if not (rec.fills or rec.orders or rec.snapshots or rec.rejections):
        raise ReportInputError(
            f"journal {path} holds nothing for {day.isoformat()} (no order, fill or equity "
            "snapshot): was the daemon running that day, on this state directory?"
        )
    return rec


def _read(conn: sqlite3.Connection, day: date) -> DayRecord:
    key = _key(day)
    rec = DayRecord(day)
    for r in conn.execute(
        "SELECT f.trading_day, COALESCE(f.strategy, o.strategy), f.symbol, f.side, f.qty,"
        " f.price, f.fee, f.tax, f.ts_recv FROM fills f"
        " LEFT JOIN orders o ON o.client_id = f.client_id"
        " WHERE f.trading_day <= ? ORDER BY f.trading_day, f.rowid",
        (key,),
    ):
        fill = DayFill(r[0], r[1] or EXTERNAL, r[2], Side(r[3]), r[4], r[5], r[6], r[7], r[8])
        (rec.fills if r[0] == key else rec.earlier_fills).append(fill)
    rec.orders = [
        DayOrder(r[0] or EXTERNAL, r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT strategy, state, reason, client_id FROM orders WHERE trading_day = ?"
            " ORDER BY rowid",
            (key,),
        )
    ]
    for (payload,) in conn.execute(
        "SELECT payload FROM audit WHERE trading_day = ? AND type = 'RiskRejected' ORDER BY id",
        (key,),
    ):
        ev: dict[str, Any] = orjson.loads(payload)
        rec.rejections.append(
            Rejection(ev.get("strategy") or EXTERNAL, str(ev["reason"]), str(ev["client_id"]))
        )
    has_equity = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'equity'"
    ).fetchone()
    if has_equity:  # a journal of schema 2 (an older engine) has none
        rec.snapshots = [
            Snapshot(r[0], r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6]))
            for r in conn.execute(
                "SELECT ts_ns, cash, positions_value, realized, unrealized, fees, strategies"
                " FROM equity WHERE trading_day = ? ORDER BY ts_ns, rowid",
                (key,),
            )
        ]
    return rec
