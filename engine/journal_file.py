"""The journal's file: its schema, a new file created whole, an existing one checked and
migrated. engine/journal.py reads and writes it.

A new journal is written in one transaction (schema and creation marker) into a file beside
the journal's name, made durable, then renamed into place: a file at that name is complete or
it is not a journal, and one that is not (zero bytes, no schema, no marker, not SQLite) is
refused with how to recover, never taken for a first start (which would begin the day's risk
counters and halts from nothing). An older schema is migrated in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

FILE_NAME = "journal.sqlite3"
SCHEMA_VERSION = 3
"""1: the first. 2: fills keyed by (trading day, order number, fill number); the halts
table; the creation marker in `meta`. 3: the equity snapshots (the daily report's line)."""

CREATED_KEY = "journal_created_ns"
"""The creation marker: in `meta`, committed with the schema in the journal's first
transaction. A file without it was never a complete journal."""


class JournalError(Exception):
    """The journal cannot be opened or written (locked by another engine, newer schema,
    disk error). From `record_intent` it means the order must not be sent."""


# Fill numbers are not promised unique per day (a broker may number them per order or per
# symbol): with the order number, the key that deduplicates a replayed fill.
FILLS_DDL = """CREATE TABLE {table} (
    trading_day TEXT NOT NULL,
    fill_no     TEXT NOT NULL,
    order_no    TEXT NOT NULL,
    client_id   TEXT,
    strategy    TEXT,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL,
    qty         INTEGER NOT NULL,
    price       INTEGER NOT NULL,
    fee         INTEGER NOT NULL,
    tax         INTEGER NOT NULL,
    ts_recv     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (trading_day, order_no, fill_no)
)"""

# The halts a person must lift (engine/trading/risk.py RESUMABLE), kind -> detail, in the
# order they came (rowid).
HALTS_DDL = "CREATE TABLE halts (kind TEXT PRIMARY KEY, detail TEXT NOT NULL)"

# Equity snapshots through the day (engine/trading/portfolio.py `EquityMark`), one row every
# `report.equity_interval_s`: KRW ints; `strategies` JSON {name: {realized, unrealized, fees,
# value}}. Read by the daily report (engine/reports/).
EQUITY_DDL = (
    """CREATE TABLE equity (
        trading_day     TEXT NOT NULL,
        ts_ns           INTEGER NOT NULL,
        cash            INTEGER NOT NULL,
        positions_value INTEGER NOT NULL,
        realized        INTEGER NOT NULL,
        unrealized      INTEGER NOT NULL,
        fees            INTEGER NOT NULL,
        strategies      BLOB NOT NULL
    )""",
    "CREATE INDEX equity_by_day ON equity (trading_day, ts_ns)",
)

SCHEMA = (
    """CREATE TABLE orders (
        client_id   TEXT PRIMARY KEY,
        trading_day TEXT NOT NULL,
        strategy    TEXT,
        symbol      TEXT NOT NULL,
        side        TEXT NOT NULL,
        qty         INTEGER NOT NULL,
        price       INTEGER,
        tif         TEXT NOT NULL,
        state       TEXT NOT NULL,
        prev_state  TEXT NOT NULL,
        order_no    TEXT,
        filled_qty  INTEGER NOT NULL,
        fill_amount INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        created_ns  INTEGER NOT NULL,
        external    INTEGER NOT NULL,
        updated_ns  INTEGER NOT NULL,
        seq         INTEGER NOT NULL
    )""",
    "CREATE INDEX orders_by_day ON orders (trading_day)",
    # Every broker number an order has had (an amend gets a new one), oldest first by rowid.
    """CREATE TABLE order_nos (
        trading_day TEXT NOT NULL,
        order_no    TEXT NOT NULL,
        client_id   TEXT NOT NULL,
        UNIQUE (trading_day, order_no)
    )""",
    "CREATE INDEX order_nos_by_client ON order_nos (client_id)",
    FILLS_DDL.format(table="fills"),
    "CREATE INDEX fills_by_client ON fills (client_id)",
    """CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        trading_day TEXT NOT NULL,
        type        TEXT NOT NULL,
        ts_recv     INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        payload     BLOB NOT NULL
    )""",
    """CREATE TABLE counters (
        trading_day TEXT NOT NULL,
        name        TEXT NOT NULL,
        value       INTEGER NOT NULL,
        PRIMARY KEY (trading_day, name)
    ) WITHOUT ROWID""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    HALTS_DDL,
    *EQUITY_DDL,
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: the fill key gains the order number (a broker may number fills per order or
    # per symbol: the day's fill number alone dropped fills), and halts are journaled.
    1: (
        FILLS_DDL.format(table="fills_v2"),
        "INSERT INTO fills_v2 (trading_day, fill_no, order_no, client_id, strategy, symbol,"
        " side, qty, price, fee, tax, ts_recv, seq) SELECT trading_day, fill_no, order_no,"
        " client_id, strategy, symbol, side, qty, price, fee, tax, ts_recv, seq FROM fills"
        " ORDER BY rowid",
        "DROP TABLE fills",
        "ALTER TABLE fills_v2 RENAME TO fills",
        "CREATE INDEX fills_by_client ON fills (client_id)",
        HALTS_DDL,
    ),
    # 2 -> 3: equity snapshots for the daily report.
    2: EQUITY_DDL,
}
"""version -> the statements that take a journal of that version to the next."""


def create(path: Path, now_ns: int) -> None:
    """Write a new journal whole: schema and creation marker in one transaction, in a
    file beside it, made durable, then renamed into place. A crash leaves either no
    journal (the next start creates one) or a complete one, never a file that a later
    start could take for a new journal while today's orders are lost."""
    tmp = path.with_name(path.name + ".new")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
        conn.execute("BEGIN IMMEDIATE")
        for ddl in SCHEMA:
            conn.execute(ddl)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            (CREATED_KEY, str(now_ns)),
        )
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    finally:
        conn.close()  # the last connection checkpoints the WAL into the file
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("journal_created", path=str(path), schema_version=SCHEMA_VERSION)


def _refuse(path: Path, why: str) -> JournalError:
    return JournalError(
        f"journal {path} {why}, so it is not a complete journal and today's orders, "
        "fills, risk counters and halts cannot be read from it. Nothing was changed. To "
        f"start a new journal, move it aside (mv {path} {path}.bad; and its "
        "-wal file if there is one) and start again: start-up rebuilds open orders and "
        "the account's positions from the broker, but today's risk counters, the halts "
        "in force and the strategies' shares of the positions start from nothing"
    )


def prepare(conn: sqlite3.Connection, path: Path, busy_timeout_ms: int, now_ns: int) -> None:
    """Check that `conn` holds a complete journal of a version this engine knows, set its
    pragmas (WAL, synchronous=NORMAL, busy timeout), and migrate an older one. Raises
    JournalError: for a file that is not a complete journal (zero bytes, no schema, no
    creation marker, not SQLite), with how to recover; for a newer schema; for I/O errors."""
    try:
        if path.stat().st_size == 0:
            raise _refuse(path, "is empty (zero bytes)")
        # Read before anything writes: WAL mode on an empty file would make it a database.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {path} has schema version {version}, newer than this "
                f"engine's {SCHEMA_VERSION}: run a newer kiwoom-engine, or move the file "
                "away to start a new journal"
            )
        if version == 0:
            raise _refuse(path, "has no schema")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"journal {path}: WAL mode refused (got {mode})")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if version < SCHEMA_VERSION:
            _migrate(conn, path, version, now_ns)
        elif not _has_marker(conn):
            raise _refuse(path, "has no creation marker")
    except (OSError, sqlite3.OperationalError) as exc:
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise _refuse(path, f"cannot be read as SQLite ({exc})") from exc


def _has_marker(conn: sqlite3.Connection) -> bool:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    return bool(
        has_meta and conn.execute("SELECT 1 FROM meta WHERE key = ?", (CREATED_KEY,)).fetchone()
    )


def _migrate(conn: sqlite3.Connection, path: Path, version: int, now_ns: int) -> None:
    """Take a journal of `version` (1 or later) to SCHEMA_VERSION in one transaction:
    all of it or none. A version-1 journal got its schema and version in one
    transaction, so its version is its marker; the migration adds the marker."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for v in range(version, SCHEMA_VERSION):
            for ddl in MIGRATIONS[v]:
                conn.execute(ddl)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            (CREATED_KEY, f"migrated {now_ns}"),
        )
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    log.warning("journal_migrated", path=str(path), old=version, new=SCHEMA_VERSION)
