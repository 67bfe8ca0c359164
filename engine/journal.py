"""The journal: orders, fills, risk decisions and counters on disk, for recovery and audit.

One SQLite file, `<daemon.state_dir>/journal.sqlite3`, written by one process (an advisory
lock on `journal.lock` refuses a second engine on the same state directory); its schema, its
creation and its migrations are engine/journal_file.py's. Only the order
intent is written on the hot path, synchronously, before its POST: one line appended to
`intents.log` (engine/intent_log.py), which the next transaction moves into SQLite. Everything
else comes from the bus through a `ConsumerQueue` and is written in batches by `Journal.run`.
Every read and write of SQLite first moves the pending intents, so no reader ever misses one.

Durability: the intent line is written with write(2), and SQLite runs in WAL mode with
`synchronous=NORMAL`, whose commits append to the WAL with write(2) before returning. So once
`record_intent` returns, the intent survives a crash of the process (kill -9, OOM kill,
segfault): the data is in the kernel's page cache, and the next open moves what the log holds
into SQLite and recovers the WAL. What neither survives is a power loss or kernel crash before
the next fsync: the newest intents and commits may be lost, never half-applied. That is the
trade made for the hot path (an fsync costs milliseconds on a disk, per intent). It is safe
because the journal is never the authority on what the broker holds: start-up reconciles with
the broker, nothing is resubmitted from the journal, and a broker order whose intent was lost
is tracked as external rather than sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from engine import journal_file
from engine.bus import ConsumerQueue
from engine.clock import KST, Clock
from engine.events import (
    Event,
    Exchange,
    Fill,
    OrderState,
    OrderUpdate,
    PositionDivergence,
    Reconciled,
    RiskRejected,
    Side,
    StrategyDisabled,
    TimeInForce,
    TradingStateChanged,
)
from engine.intent_log import IntentLog
from engine.journal_file import FILE_NAME, SCHEMA_VERSION, JournalError
from engine.trading.orders import OPEN, Order
from engine.trading.portfolio import EquityMark

log = structlog.get_logger(__name__)

__all__ = ["FILE_NAME", "JOURNALED", "SCHEMA_VERSION", "Journal", "JournalError"]

LOCK_NAME = "journal.lock"
INTENTS_NAME = "intents.log"
PROBE_NAME = "journal.probe"
PROBE_BYTES = 4_096
"""What `probe` writes (and removes) to learn that the state directory has room again."""

AUDITED: tuple[type, ...] = (
    RiskRejected,
    TradingStateChanged,
    StrategyDisabled,
    PositionDivergence,
    Reconciled,
)
JOURNALED: tuple[type, ...] = (OrderUpdate, Fill, *AUDITED)

CLIENT_SEQ_BLOCK = 1_000
"""Client sequence numbers reserved per commit: `next_client_seq` stays off the disk for the
next 1,000 orders, and a restart skips what was reserved but not used (gaps, never reuse)."""
_CLIENT_SEQ_KEY = "client_seq_reserved"

RECORDED_WINDOW = 4_096
"""Client ids `record_intent` remembers to refuse a second intent under one of them."""
LINKED_MAX = 4_096
"""Order numbers `Journal._linked` remembers before it starts again (under 1 MB: an order's
updates come close together, and a number it forgot costs a statement, not a wrong row;
held for a whole day, they grew RSS by 0.27 MB per 1,000 orders in bench/order_growth.py)."""

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
BATCH_LIMIT = 500


def tif_column(tif: TimeInForce, venue: Exchange) -> str:
    """The `orders.tif` column holds the venue too, as "day@NXT" ("day" alone: KRX, as every
    row written before venues existed): a column of its own would take a schema migration
    for a value that is read only with the time in force."""
    return tif.value if venue is Exchange.KRX else f"{tif.value}@{venue.value}"


_HALTS_KEY = "halts_saved_ns"
"""In `meta` once halts were saved: before that (a journal migrated from version 1), the
halts in force are not known from the journal."""

_PENDING = frozenset({OrderState.PENDING_CANCEL, OrderState.PENDING_REPLACE})
_OPEN_STATES = tuple(s.value for s in OPEN)

_INSERT_INTENT = (
    "INSERT INTO orders (client_id, trading_day, strategy, symbol, side, qty, price, tif,"
    " state, prev_state, order_no, filled_qty, fill_amount, reason, created_ns, external,"
    " updated_ns, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
# Moving logged intents: one already there (moved, then a crash before the log was emptied)
# stays as it is.
_MOVE_INTENT = _INSERT_INTENT.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)

# An update older than the row (a lower bus seq) never overwrites it; seq 0 (not stamped by a
# bus) always applies. An external order's first sighting inserts the row.
_UPSERT_ORDER = """
INSERT INTO orders (client_id, trading_day, strategy, symbol, side, qty, price, tif, state,
    prev_state, order_no, filled_qty, fill_amount, reason, created_ns, external, updated_ns, seq)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'day', ?8,
    COALESCE(?9, 'new'), ?10, ?11, ?12, ?13, ?17,
    ?15, ?14, ?16)
ON CONFLICT (client_id) DO UPDATE SET
    qty = excluded.qty,
    price = excluded.price,
    state = excluded.state,
    prev_state = COALESCE(?9, orders.prev_state),
    order_no = COALESCE(excluded.order_no, orders.order_no),
    filled_qty = excluded.filled_qty,
    fill_amount = excluded.fill_amount,
    reason = excluded.reason,
    updated_ns = excluded.updated_ns,
    seq = excluded.seq
WHERE excluded.seq = 0 OR excluded.seq > orders.seq
"""
"""Parameters by position (a tuple binds faster than a dict, on every order update): client
id, day, strategy, symbol, side, qty, price, state, pending_from, order number, filled qty,
fill amount, reason, time, external, seq, creation time (an insert's)."""

_INSERT_FILL = (
    "INSERT OR IGNORE INTO fills (trading_day, fill_no, order_no, client_id, strategy, symbol,"
    " side, qty, price, fee, tax, ts_recv, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class JournaledFill:
    """A fill as the journal holds it, for rebuilding positions (`Journal.fills_in_order`).
    `fee` is fee and tax together, 0 when the fill carried none."""

    trading_day: str
    strategy: str | None
    symbol: str
    side: Side
    qty: int
    price: int
    fee: int


def _pending_from(u: OrderUpdate) -> str | None:
    """The state to return to if a pending cancel/amend is refused: the same rule as
    Order.apply, so a restored order's prev_state matches the live one."""
    return u.prev_state.value if u.state in _PENDING and u.prev_state not in _PENDING else None


def _transient(exc: BaseException) -> bool:
    """Whether a write that failed with `exc` may succeed later (disk full, I/O error,
    locked, closed) rather than never (a value SQLite cannot store)."""
    return (
        isinstance(exc, OSError | sqlite3.OperationalError | JournalError)
        or type(exc) is sqlite3.DatabaseError
    )


class Journal:
    """Append-mostly store of orders, fills, risk decisions and counters; recovery reads it.

    Single-threaded: every method runs in the event loop's thread. Stats for metrics:
    `intents`, `intents_refused`, `rows_written`, `batches`, `write_errors`,
    `failed_events`, `duplicate_fills`, `faulty`, `last_error`.
    """

    def __init__(
        self, state_dir: str | Path, clock: Clock, *, busy_timeout_ms: int = 1_000
    ) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._intent_log = IntentLog(self.state_dir / INTENTS_NAME)
        self._pending: list[tuple[Any, ...]] = []
        """Intents in the log and not yet in SQLite, oldest first."""
        self._recorded: dict[str, None] = {}
        """The last RECORDED_WINDOW client ids whose intent this journal took, oldest first:
        a second intent under one of them is refused. Client ids are never reused by
        construction (`next_client_seq`); this catches a bug near the order that shows it,
        and an older id taken again is still kept out of SQLite by its primary key (logged
        as `journal_intent_already_there`). Bounded, so a long day does not grow it."""
        self._linked_day = ""
        self._linked: dict[tuple[str, str], str] = {}
        """(trading day, order number) -> the client id order_nos holds for it: every update
        of an order names its number again, and a number linked already needs no statement.
        Cleared at a rollback (what it added may not be stored), at a new day and past
        LINKED_MAX."""
        self._seq_next = 0
        self._seq_limit = 0
        self._day = ""
        self._day_from_ns = 0
        self._day_until_ns = 0
        self.counters_source: Callable[[], tuple[str, Mapping[str, int]]] | None = None
        """(trading day, counters) to store with every batch that holds fills (the engine's
        risk counters): see `write`."""
        self.intents = 0
        self.rows_written = 0
        self.batches = 0
        self.write_errors = 0
        self.failed_events = 0
        """Events that could never be written (a value SQLite refuses); logged one by one."""
        self.last_error: str | None = None
        self.intents_refused = 0
        """Intents `record_intent` could not store (the order was not sent)."""
        self.equity_snapshots = 0
        """Equity snapshots written (`record_equity`)."""
        self.duplicate_fills = 0
        """Fills written again under a key already stored (a true replay): never stored twice."""
        self.faulty = False
        """True from a write that failed for a reason that may pass (disk full, I/O error,
        locked) until a transaction commits again."""
        self.on_fault: Callable[[str | None], None] | None = None
        """Told the error when writes start failing, and None when they succeed again: the
        engine halts trading in between (reason JOURNAL)."""

    # --- life ------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory (0o700) and, when there is none, a complete journal
        (engine/journal_file.py); take the lock; check the schema and migrate an older one. Raises
        JournalError when another process holds the journal, when its schema is newer than
        this engine knows, or when the file is not a complete journal (zero bytes, no
        creation marker, not SQLite): the message says how to recover. A no-op when open."""
        if self._conn is not None:
            return
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = self._take_lock()
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        try:
            if not self.path.exists():
                journal_file.create(self.path, self._clock.time_ns())
            conn = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._release_lock()
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        try:
            journal_file.prepare(conn, self.path, self._busy_timeout_ms, self._clock.time_ns())
            self._recover_intents(conn)
        except BaseException:
            conn.close()
            self._intent_log.close()
            self._release_lock()
            raise
        self._conn = conn
        self._seq_next = self._seq_limit = 0
        self._recorded = {}
        self._linked = {}
        log.info("journal_opened", path=str(self.path), schema_version=SCHEMA_VERSION)

    def _recover_intents(self, conn: sqlite3.Connection) -> None:
        """Move into SQLite the intents a previous process logged and did not move."""
        try:
            rows = self._intent_log.open()
            if rows:
                with self._transaction(conn):
                    conn.executemany(_MOVE_INTENT, rows)
                log.warning("journal_intents_recovered", intents=len(rows))
            self._intent_log.clear()
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(
                f"cannot recover intents from {self._intent_log.path}: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the file (SQLite checkpoints the WAL into it) and release the lock.
        Idempotent. Cancel `run` first: its drain is what flushes queued events."""
        if self._conn is not None and self._pending:
            try:
                self._move_pending(self._conn)
            except (OSError, sqlite3.Error) as exc:
                # Still in the log: the next open moves them.
                log.warning(
                    "journal_intents_left_in_log", intents=len(self._pending), error=str(exc)
                )
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._intent_log.close()
        self._release_lock()

    def _take_lock(self) -> int:
        fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(
                f"journal {self.path} is in use by another process (lock {LOCK_NAME})"
            ) from None
        return fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, with every pending intent moved into SQLite first. Raises
        JournalError (not open), sqlite3.Error or OSError."""
        conn = self._conn
        if conn is None:
            raise JournalError("journal is not open")
        if self._pending:
            self._move_pending(conn)
        return conn

    def _move_pending(self, conn: sqlite3.Connection) -> None:
        rows = self._pending
        with self._transaction(conn):
            moved = conn.executemany(_MOVE_INTENT, rows).rowcount
        self._pending = []
        if moved != len(rows):
            # Client ids come from next_client_seq, never twice: a row that was there already
            # is a bug to hear about, not an order to lose (the older row is kept).
            log.error("journal_intent_already_there", intents=len(rows), moved=moved)
        self._intent_log.clear()

    # --- the hot path ----------------------------------------------------------------------

    def record_intent(self, order: Order) -> None:
        """Store `order` as it stands, before its POST: one line appended to the intent log
        with write(2), moved into SQLite by the next transaction (see the module docstring for
        what that survives). An order that already has broker numbers (an external one) goes
        straight into SQLite with them.

        Raises JournalError when it could not be stored (disk error, a client id already
        journaled): the caller must then not send the order.
        """
        if self._conn is None:
            raise JournalError("journal is not open")
        cid = order.client_id
        if cid in self._recorded:
            self.intents_refused += 1
            self.last_error = f"client id {cid} already journaled"
            raise JournalError(f"intent {cid} not journaled: {self.last_error}")
        day = self._day_of(0)
        row = (
            order.client_id,
            day,
            order.strategy,
            order.symbol,
            order.side.value,
            order.qty,
            order.price,
            tif_column(order.tif, order.venue),
            order.state.value,
            order.prev_state.value,
            order.order_no,
            order.filled_qty,
            order.fill_amount,
            order.reason,
            order.created_ns,
            order.external,
            order.created_ns,
        )
        try:
            if not order.order_nos:
                self._intent_log.append(row)
                self._pending.append(row)
            else:
                conn = self._db
                with self._transaction(conn):
                    conn.execute(_INSERT_INTENT, row)
                    for no in order.order_nos:
                        self._link(conn, day, no, cid)
        except (OSError, sqlite3.Error) as exc:
            self.intents_refused += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if _transient(exc):
                self._set_faulty(self.last_error)
            raise JournalError(f"intent {cid} not journaled: {exc}") from exc
        recorded = self._recorded
        recorded[cid] = None
        if len(recorded) > RECORDED_WINDOW:
            del recorded[next(iter(recorded))]
        self.intents += 1

    # --- batched writes --------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        """Write `events` in one transaction: all or nothing. Order updates upsert the order's
        row, fills are inserted once per (trading day, order number, fill number), risk and
        state events go to the audit table; other types are ignored. Raises sqlite3.Error (rolled back) or
        JournalError when the journal is not open."""
        conn = self._db
        written = 0
        fills = 0
        duplicates = 0
        with self._transaction(conn):
            # Consecutive updates of one order are written as one (`_write_run`): an order
            # moves through three or four states within a batch as often as not.
            run: list[OrderUpdate] = []
            for ev in events:
                tp = type(ev)
                if tp is OrderUpdate:
                    assert isinstance(ev, OrderUpdate)
                    if run and not self._continues(run[-1], ev):
                        self._write_run(conn, run)
                        run = []
                    run.append(ev)
                elif tp is Fill:
                    assert isinstance(ev, Fill)
                    if run and ev.client_id is None:
                        # Its order is found by number: the run's numbers go in first.
                        self._write_run(conn, run)
                        run = []
                    duplicates += not self._write_fill(conn, ev)
                    fills += 1
                elif isinstance(ev, AUDITED):
                    self._write_audit(conn, ev)
                else:
                    continue
                written += 1
            if run:
                self._write_run(conn, run)
            if fills and self.counters_source is not None:
                # The day's realised PnL moves with fills: stored in the same transaction as
                # the fills that moved it, a kill -9 keeps both or neither, and reconciliation
                # books a lost fill (and its PnL) exactly once at the restart.
                day, counters = self.counters_source()
                self._put_counters(conn, day, counters)
        self.rows_written += written
        self.batches += 1
        if duplicates:
            self.duplicate_fills += duplicates
            log.info("journal_fill_duplicates", fills=duplicates)

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One transaction; a failure that may pass (see `_transient`) marks the journal
        faulty, and a commit clears that."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._linked.clear()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except Exception as exc:
            if _transient(exc):
                self._set_faulty(f"{type(exc).__name__}: {exc}")
            raise
        if self.faulty and self._has_room():
            self._set_faulty(None)

    def _has_room(self) -> bool:
        """Whether a block can be written in the state directory. A commit alone does not
        say so: the WAL reuses the space it already holds, while the next intent needs a
        new block for the intent log."""
        probe = self.state_dir / PROBE_NAME
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, bytes(PROBE_BYTES))
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def probe(self) -> bool:
        """While `faulty`: try a commit and a block in the state directory, and clear the
        fault when both succeed (the engine calls this every second, so that the JOURNAL
        halt lifts even when nothing else is written). Returns whether the journal writes.
        Never raises."""
        if not self.faulty:
            return True
        try:
            conn = self._db
            with self._transaction(conn):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    ("probed_ns", str(self._clock.time_ns())),
                )
        except (OSError, sqlite3.Error, JournalError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
        return not self.faulty

    def _set_faulty(self, error: str | None) -> None:
        was, self.faulty = self.faulty, error is not None
        if was == self.faulty:
            return
        if error is None:
            log.warning("journal_writes_again")
        else:
            log.error("journal_cannot_write", error=error)
        if self.on_fault is not None:
            self.on_fault(error)

    def _continues(self, last: OrderUpdate, u: OrderUpdate) -> bool:
        """Whether `u` may be written together with `last` and the run before it: the same
        order, on the same trading day, newer. Each update of a run would pass the upsert's
        seq guard when written one by one (the bus numbers them in order, and after a restart
        from above the journal's highest number), so the run's last update, with the
        earliest creation time and the latest state to return to and number, leaves the row
        as the updates one by one would."""
        return (
            u.client_id == last.client_id
            and u.seq > last.seq > 0
            and self._day_of(u.ts_recv) == self._day_of(last.ts_recv)
        )

    def _write_run(self, conn: sqlite3.Connection, run: list[OrderUpdate]) -> None:
        """Write consecutive updates of one order (`_continues`) as their one row, and link
        each number they named, in order."""
        if len(run) == 1:
            self._write_update(conn, run[0])
            return
        pending_from: str | None = None
        order_nos: list[str] = []
        for u in run:
            pending_from = _pending_from(u) or pending_from
            if u.order_no and u.order_no not in order_nos:
                order_nos.append(u.order_no)
        last = run[-1]
        day = self._day_of(last.ts_recv)
        self._upsert(
            conn,
            last,
            day,
            pending_from,
            order_nos[-1] if order_nos else None,
            run[0].ts_recv,
        )
        for no in order_nos:
            self._link(conn, day, no, last.client_id)

    def _write_update(self, conn: sqlite3.Connection, u: OrderUpdate) -> None:
        day = self._day_of(u.ts_recv)
        self._upsert(conn, u, day, _pending_from(u), u.order_no, u.ts_recv)
        if u.order_no:
            self._link(conn, day, u.order_no, u.client_id)

    def _upsert(
        self,
        conn: sqlite3.Connection,
        u: OrderUpdate,
        day: str,
        pending_from: str | None,
        order_no: str | None,
        created_ns: int,
    ) -> None:
        ts = u.ts_recv or self._clock.time_ns()
        conn.execute(
            _UPSERT_ORDER,
            (
                u.client_id,
                day,
                u.strategy,
                u.symbol,
                u.side.value,
                u.qty,
                u.price or None,
                u.state.value,
                pending_from,
                order_no,
                u.filled_qty,
                u.fill_amount,
                u.reason,
                ts,
                u.strategy is None,
                u.seq,
                created_ns or ts,
            ),
        )

    def _link(self, conn: sqlite3.Connection, day: str, order_no: str, client_id: str) -> None:
        """Record that `order_no` belongs to `client_id`, and attach the fills that came in
        before the link was known (a 00 push can overtake the REST answer).

        A number already held by an external order moves to an engine order that claims it:
        that is recovery attributing a broker order to its journaled intent. Between two
        engine orders the first keeps it and the conflict is logged."""
        key = (day, order_no)
        linked = self._linked
        if linked.get(key) == client_id:
            return
        if len(linked) >= LINKED_MAX or day != self._linked_day:
            linked.clear()  # numbers restart daily: yesterday's are never asked for again
            self._linked_day = day
        cur = conn.execute(
            "INSERT OR IGNORE INTO order_nos (trading_day, order_no, client_id) VALUES (?, ?, ?)",
            (day, order_no, client_id),
        )
        if cur.rowcount:
            conn.execute(
                "UPDATE fills SET client_id = ? "
                "WHERE trading_day = ? AND order_no = ? AND client_id IS NULL",
                (client_id, day, order_no),
            )
            linked[key] = client_id
            return
        owner, owner_external = conn.execute(
            "SELECT n.client_id, COALESCE(o.external, 1) FROM order_nos n"
            " LEFT JOIN orders o ON o.client_id = n.client_id"
            " WHERE n.trading_day = ? AND n.order_no = ?",
            (day, order_no),
        ).fetchone()
        if owner == client_id:
            linked[key] = client_id
            return
        claimant = conn.execute(
            "SELECT external FROM orders WHERE client_id = ?", (client_id,)
        ).fetchone()
        if owner_external and claimant is not None and not claimant[0]:
            conn.execute(
                "UPDATE order_nos SET client_id = ? WHERE trading_day = ? AND order_no = ?",
                (client_id, day, order_no),
            )
            conn.execute(
                "UPDATE fills SET client_id = ? WHERE trading_day = ? AND order_no = ?"
                " AND (client_id IS NULL OR client_id = ?)",
                (client_id, day, order_no, owner),
            )
            log.info("journal_order_attributed", order_no=order_no, client_id=client_id, was=owner)
            linked[key] = client_id
            return
        log.error(
            "journal_order_no_conflict",
            order_no=order_no,
            client_id=client_id,
            journaled_client_id=owner,
        )

    def _write_fill(self, conn: sqlite3.Connection, f: Fill) -> bool:
        """Insert `f` once per (trading day, order number, fill number); False when that key
        was stored already (a replay of the same fill)."""
        day = self._day_of(f.ts_recv)
        client_id = f.client_id
        if client_id is None:
            row = conn.execute(
                "SELECT client_id FROM order_nos WHERE trading_day = ? AND order_no = ?",
                (day, f.order_no),
            ).fetchone()
            client_id = row[0] if row else None
        cur = conn.execute(
            _INSERT_FILL,
            (
                day,
                f.fill_no,
                f.order_no,
                client_id,
                f.strategy,
                f.symbol,
                f.side.value,
                f.qty,
                f.price,
                f.fee,
                f.tax,
                f.ts_recv,
                f.seq,
            ),
        )
        return bool(cur.rowcount)

    def _write_audit(self, conn: sqlite3.Connection, ev: Event) -> None:
        conn.execute(
            "INSERT INTO audit (trading_day, type, ts_recv, seq, payload) VALUES (?, ?, ?, ?, ?)",
            (self._day_of(ev.ts_recv), type(ev).__name__, ev.ts_recv, ev.seq, orjson.dumps(ev)),
        )

    def _day_of(self, ts_ns: int) -> str:
        """The KST date ("YYYYMMDD") of `ts_ns`, or of the clock's now for 0. Cached for the
        day: the intent path pays an int comparison, not a datetime."""
        ns = ts_ns or self._clock.time_ns()
        if self._day_from_ns <= ns < self._day_until_ns:
            return self._day
        when = datetime.fromtimestamp(ns // 1_000_000_000, KST)
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        self._day = when.strftime("%Y%m%d")
        self._day_from_ns = int(midnight.timestamp()) * 1_000_000_000
        self._day_until_ns = self._day_from_ns + 86_400 * 1_000_000_000
        return self._day

    # --- the writer task -------------------------------------------------------------------

    async def run(self, queue: ConsumerQueue, *, batch_limit: int = BATCH_LIMIT) -> None:
        """Write what `queue` delivers until cancelled; then write what is left and re-raise.

        A batch that fails for a reason that may pass (disk full, locked, I/O error, journal
        closed) is kept and retried, with backoff on the clock, before anything newer: an
        order event is never dropped while the process lives. An event SQLite can never
        store is written alone, logged and counted in `failed_events`, so it cannot hold up
        the rest.
        """
        pending: list[Event] = []
        delay = RETRY_MIN_S
        try:
            while True:
                if not pending:
                    pending = await queue.get(batch_limit)
                pending = self._flush(pending)
                if pending:
                    await self._clock.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                else:
                    delay = RETRY_MIN_S
        except asyncio.CancelledError:
            while queue.depth:
                pending.extend(queue.take(10_000))
            left = self._flush(pending)
            if left:
                log.error("journal_events_lost", events=len(left), error=self.last_error)
            raise

    def _flush(self, batch: list[Event]) -> list[Event]:
        """Write `batch`; returns the events still to write (empty when done)."""
        if not batch:
            return batch
        try:
            self.write(batch)
            return []
        except Exception as exc:
            if self._failed(exc, batch):
                return batch
        # Something in the batch can never be stored: find it, keep the rest.
        for i, ev in enumerate(batch):
            try:
                self.write([ev])
            except Exception as exc:
                if self._failed(exc, [ev]):
                    return batch[i:]
                self.failed_events += 1
                log.error(
                    "journal_event_failed",
                    event_type=type(ev).__name__,
                    seq=ev.seq,
                    error=self.last_error,
                    exc_info=exc,
                )
        return []

    def _failed(self, exc: Exception, batch: list[Event]) -> bool:
        """Count and log a failed write; True when it may pass on a retry."""
        self.write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        transient = _transient(exc)
        if transient:
            log.warning("journal_write_failed", events=len(batch), error=self.last_error)
        return transient

    # --- recovery --------------------------------------------------------------------------

    def load_orders(self, *, open_only: bool = False) -> list[Order]:
        """The current trading day's orders (the clock's KST date), in journaling order, with
        every field restored; `open_only` keeps those not FILLED, CANCELED or REJECTED."""
        conn = self._db
        day = self._day_of(0)
        where = "trading_day = ?"
        args: list[Any] = [day]
        if open_only:
            where += f" AND state IN ({', '.join('?' * len(_OPEN_STATES))})"
            args.extend(_OPEN_STATES)
        rows = conn.execute(
            "SELECT client_id, strategy, symbol, side, qty, price, tif, state, prev_state,"
            " order_no, filled_qty, fill_amount, reason, created_ns, external"
            f" FROM orders WHERE {where} ORDER BY rowid",
            args,
        ).fetchall()
        if not rows:
            return []
        numbers: dict[str, list[str]] = {}
        for client_id, no in conn.execute(
            "SELECT n.client_id, n.order_no FROM order_nos n"
            " JOIN orders o ON o.client_id = n.client_id"
            " WHERE o.trading_day = ? ORDER BY n.rowid",
            (day,),
        ):
            numbers.setdefault(client_id, []).append(no)
        fills: dict[str, set[tuple[str, str]]] = {}
        by_no: dict[str, dict[str, int]] = {}
        # What each number was charged as booked (a broker's figure or the estimate a fill
        # without one was given): the broker's next running totals are taken against it.
        fees: dict[str, dict[str, tuple[int, int]]] = {}
        for client_id, fill_no, order_no, qty, fee, tax in conn.execute(
            "SELECT f.client_id, f.fill_no, f.order_no, f.qty, f.fee, f.tax FROM fills f"
            " JOIN orders o ON o.client_id = f.client_id WHERE o.trading_day = ?",
            (day,),
        ):
            fills.setdefault(client_id, set()).add((order_no, fill_no))
            mine = by_no.setdefault(client_id, {})
            mine[order_no] = mine.get(order_no, 0) + qty
            if fee or tax:
                charged = fees.setdefault(client_id, {})
                was_fee, was_tax = charged.get(order_no, (0, 0))
                charged[order_no] = (was_fee + fee, was_tax + tax)
        return [
            Order(
                client_id=r[0],
                strategy=r[1],
                symbol=r[2],
                side=Side(r[3]),
                qty=r[4],
                price=r[5],
                tif=TimeInForce(r[6].partition("@")[0]),
                venue=Exchange(r[6].partition("@")[2] or Exchange.KRX.value),
                state=OrderState(r[7]),
                prev_state=OrderState(r[8]),
                order_no=r[9],
                order_nos=numbers.get(r[0], []),
                filled_qty=r[10],
                fill_amount=r[11],
                reason=r[12],
                created_ns=r[13],
                external=bool(r[14]),
                fill_nos=fills.get(r[0], set()),
                filled_by_no=by_no.get(r[0], {}),
                fees_by_no=fees.get(r[0], {}),
            )
            for r in rows
        ]

    def strategy_positions(self) -> dict[str, dict[str, int]]:
        """strategy -> symbol -> net shares (buys +, sells -) from every journaled fill, all
        days. A fill counts for the strategy it names, else its order's; fills with neither
        (external orders have no strategy) are left out, and so are flat positions."""
        rows = self._db.execute(
            "SELECT COALESCE(f.strategy, o.strategy) AS owner, f.symbol,"
            " SUM(CASE f.side WHEN 'buy' THEN f.qty ELSE -f.qty END) AS net"
            " FROM fills f LEFT JOIN orders o ON o.client_id = f.client_id"
            " GROUP BY owner, f.symbol HAVING owner IS NOT NULL AND net != 0"
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for strategy, symbol, net in rows:
            out.setdefault(strategy, {})[symbol] = net
        return out

    def fills_in_order(self) -> list[JournaledFill]:
        """Every journaled fill, all days, oldest first (by trading day, then as journaled),
        with the strategy it counts for (its own, else its order's; None for an external
        order's): what rebuilds each strategy's positions and cost after a restart."""
        rows = self._db.execute(
            "SELECT f.trading_day, COALESCE(f.strategy, o.strategy), f.symbol, f.side, f.qty,"
            " f.price, f.fee + f.tax FROM fills f LEFT JOIN orders o ON o.client_id = f.client_id"
            " ORDER BY f.trading_day, f.rowid"
        ).fetchall()
        return [JournaledFill(r[0], r[1], r[2], Side(r[3]), r[4], r[5], r[6]) for r in rows]

    # --- equity snapshots ----------------------------------------------------------------

    def record_equity(self, mark: EquityMark, ts_ns: int = 0) -> None:
        """Append one equity snapshot (`ts_ns`, default the clock's now), committed before it
        returns: one row, written a minute apart (`report.equity_interval_s`), never on the
        order path. Raises sqlite3.Error, OSError or JournalError (not open)."""
        ts = ts_ns or self._clock.time_ns()
        conn = self._db
        with self._transaction(conn):
            conn.execute(
                "INSERT INTO equity (trading_day, ts_ns, cash, positions_value, realized,"
                " unrealized, fees, strategies) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._day_of(ts),
                    ts,
                    mark.cash,
                    mark.positions_value,
                    mark.realized,
                    mark.unrealized,
                    mark.fees,
                    orjson.dumps(mark.strategies),
                ),
            )
        self.equity_snapshots += 1

    def equity_of_day(self, day: str) -> list[tuple[int, int]]:
        """Trading day `day`'s ("YYYYMMDD") equity snapshots, oldest first: (ts_ns, cash plus
        the positions' value), what the status page's equity line starts with after a
        restart in the day. A day at one snapshot a second is 86,400 small rows."""
        rows = self._db.execute(
            "SELECT ts_ns, cash + positions_value FROM equity WHERE trading_day = ?"
            " ORDER BY ts_ns, rowid",
            (day,),
        ).fetchall()
        return [(int(ts), int(value)) for ts, value in rows]

    def fills_of_day(self, day: str, limit: int) -> tuple[int, list[Fill]]:
        """Trading day `day`'s ("YYYYMMDD") count of fills, and its newest `limit` fills,
        oldest first, with the strategy they count for (their own, else their order's) and
        their receive time: what the status page shows of the day after a restart."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM fills WHERE trading_day = ?", (day,)
        ).fetchone()
        rows = self._db.execute(
            "SELECT f.client_id, COALESCE(f.strategy, o.strategy), f.order_no, f.fill_no,"
            " f.symbol, f.side, f.qty, f.price, f.fee, f.tax, f.ts_recv"
            " FROM fills f LEFT JOIN orders o ON o.client_id = f.client_id"
            " WHERE f.trading_day = ? ORDER BY f.rowid DESC LIMIT ?",
            (day, limit),
        ).fetchall()
        fills = [
            Fill(r[0], r[1], r[2], r[3], r[4], Side(r[5]), r[6], r[7], r[8], r[9], ts_recv=r[10])
            for r in reversed(rows)
        ]
        return int(count), fills

    # --- halts ---------------------------------------------------------------------------

    def save_halts(self, halts: Mapping[str, str]) -> None:
        """Replace the journaled halts with `halts` (kind -> detail, in the order they came),
        committed before it returns: a halt outlives any restart, kill -9 included."""
        conn = self._db
        with self._transaction(conn):
            conn.execute("DELETE FROM halts")
            conn.executemany("INSERT INTO halts (kind, detail) VALUES (?, ?)", list(halts.items()))
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_HALTS_KEY, str(self._clock.time_ns())),
            )

    def load_halts(self) -> dict[str, str] | None:
        """The journaled halts (kind -> detail, in the order they came); None when this
        journal never saved any (one migrated from version 1)."""
        conn = self._db
        if conn.execute("SELECT 1 FROM meta WHERE key = ?", (_HALTS_KEY,)).fetchone() is None:
            return None
        return dict(conn.execute("SELECT kind, detail FROM halts ORDER BY rowid").fetchall())

    # --- counters and meta -----------------------------------------------------------------

    def save_counters(self, trading_day: str, counters: Mapping[str, int]) -> None:
        """Replace `trading_day`'s counters with `counters` (ints: counts, KRW), committed
        before it returns. Raises TypeError for a value that is not an int."""
        for name, value in counters.items():
            if type(value) is not int:
                raise TypeError(f"counter {name!r} must be an int, not {type(value).__name__}")
        conn = self._db
        with self._transaction(conn):
            self._put_counters(conn, trading_day, counters)

    @staticmethod
    def _put_counters(
        conn: sqlite3.Connection, trading_day: str, counters: Mapping[str, int]
    ) -> None:
        conn.execute("DELETE FROM counters WHERE trading_day = ?", (trading_day,))
        conn.executemany(
            "INSERT INTO counters (trading_day, name, value) VALUES (?, ?, ?)",
            [(trading_day, name, value) for name, value in counters.items()],
        )

    def load_counters(self, trading_day: str) -> dict[str, int]:
        """`trading_day`'s counters as last saved; empty for a day never saved."""
        rows = self._db.execute(
            "SELECT name, value FROM counters WHERE trading_day = ?", (trading_day,)
        )
        return dict(rows.fetchall())

    def last_seq(self) -> int:
        """The highest bus sequence number journaled, 0 for a new journal: the bus of a
        restarted engine numbers on from it (see `_UPSERT_ORDER`)."""
        row = self._db.execute(
            "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM orders"
            " UNION ALL SELECT MAX(seq) FROM fills UNION ALL SELECT MAX(seq) FROM audit)"
        ).fetchone()
        return int(row[0] or 0)

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store `value` under `key`, committed before it returns."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def next_client_seq(self) -> int:
        """1, 2, 3, ...: never the same number twice for this journal, across restarts and
        crashes. Numbers are reserved on disk CLIENT_SEQ_BLOCK at a time, so this commits once
        per block and a restart leaves a gap."""
        if self._seq_next >= self._seq_limit:
            conn = self._db
            with self._transaction(conn):
                row = conn.execute(
                    "SELECT value FROM meta WHERE key = ?", (_CLIENT_SEQ_KEY,)
                ).fetchone()
                reserved = int(row[0]) if row else 0
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_CLIENT_SEQ_KEY, str(reserved + CLIENT_SEQ_BLOCK)),
                )
            self._seq_next = reserved + 1
            self._seq_limit = reserved + CLIENT_SEQ_BLOCK + 1
        n = self._seq_next
        self._seq_next += 1
        return n

    def stats(self) -> dict[str, int]:
        return {
            "intents": self.intents,
            "rows_written": self.rows_written,
            "batches": self.batches,
            "write_errors": self.write_errors,
            "failed_events": self.failed_events,
            "intents_pending": len(self._pending),
            "intents_refused": self.intents_refused,
            "duplicate_fills": self.duplicate_fills,
            "equity_snapshots": self.equity_snapshots,
            "faulty": int(self.faulty),
            "intent_lines_unreadable": self._intent_log.unreadable_lines,
        }
