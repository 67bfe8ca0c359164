"""The journal file itself: created whole or refused (issue 14 item 12), the fill key
(trading day, order number, fill number) (item 7), halts that outlive a kill -9 (item 1), and
the migration of a journal written by the engine before (schema version 1)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.clock import KST, ManualClock
from engine.events import Fill, OrderState, Side
from engine.journal import FILE_NAME, RECORDED_WINDOW, SCHEMA_VERSION, Journal, JournalError
from engine.trading.order_events import Acked, Filled, Replaced, ReplaceRequested, apply
from engine.trading.orders import Order

S = OrderState
DAY0 = datetime(2026, 1, 5, 10, 0, tzinfo=KST)
FIXTURE_V1 = Path(__file__).parent / "fixtures" / "journal_v1.sqlite3"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(DAY0)


def fill(fill_no: str, order_no: str, client_id: str | None, qty: int, **kw: Any) -> Fill:
    base: dict[str, Any] = {
        "client_id": client_id,
        "strategy": "momentum" if client_id else None,
        "order_no": order_no,
        "fill_no": fill_no,
        "symbol": "005930",
        "side": Side.BUY,
        "qty": qty,
        "price": 70_000,
        "fee": 0,
        "tax": 0,
        "ts_recv": 1_767_574_800_000_000_000,
    }
    base.update(kw)
    return Fill(**base)


def order(client_id: str, order_no: str, qty: int) -> Order:
    o = Order(client_id, "momentum", "005930", Side.BUY, qty, 70_000, state=S.SUBMITTING)
    apply(o, Acked(order_no=order_no))
    assert (o.state, o.order_no) == (S.ACCEPTED, order_no)
    return o


# --- created whole, or refused -----------------------------------------------------------------


def test_a_zero_byte_journal_is_refused_and_says_how_to_recover(
    tmp_path: Path, clock: ManualClock
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_bytes(b"")
    with pytest.raises(JournalError) as err:
        Journal(state, clock).open()
    text = str(err.value)
    assert "zero bytes" in text
    assert f"mv {state / FILE_NAME} {state / FILE_NAME}.bad" in text
    assert (state / FILE_NAME).stat().st_size == 0  # nothing was changed
    # Moved aside as told, the next start makes a new journal.
    (state / FILE_NAME).rename(state / f"{FILE_NAME}.bad")
    j = Journal(state, clock)
    j.open()
    assert j.load_counters("20260105") == {}
    j.close()


def test_a_journal_without_its_schema_or_marker_is_refused(
    tmp_path: Path, clock: ManualClock
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    con = sqlite3.connect(state / FILE_NAME)
    con.execute("CREATE TABLE t (x)")  # SQLite, not empty, and no journal
    con.close()
    with pytest.raises(JournalError, match="has no schema"):
        Journal(state, clock).open()
    con = sqlite3.connect(state / FILE_NAME)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    con.close()
    with pytest.raises(JournalError, match="has no creation marker"):
        Journal(state, clock).open()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(JournalError, match=r"cannot be read as SQLite.*mv "):
        Journal(state, clock).open()


def test_a_new_journal_is_complete_and_a_crashed_creation_leaves_nothing_to_trust(
    tmp_path: Path, clock: ManualClock
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # A creation cut off by a crash: its temporary file, never renamed into place.
    (state / f"{FILE_NAME}.new").write_bytes(b"half")
    j = Journal(state, clock)
    j.open()
    j.close()
    assert sorted(p.name for p in state.iterdir()) == ["intents.log", "journal.lock", FILE_NAME]
    con = sqlite3.connect(f"file:{state / FILE_NAME}?mode=ro", uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("SELECT value FROM meta WHERE key = 'journal_created_ns'").fetchone() == (
        str(1_767_574_800_000_000_000),
    )
    con.close()


# --- the fill key (item 7) ---------------------------------------------------------------------


def test_fills_numbered_per_order_are_all_stored_and_positions_survive_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    # A broker that numbers fills per order: both orders' first fill is "1".
    j = Journal(tmp_path / "state", clock)
    j.open()
    first, second = order("c1", "0000010", 1), order("c2", "0000011", 5)
    j.record_intent(first)
    j.record_intent(second)
    j.write(
        [
            fill("1", "0000010", "c1", 1),
            fill("1", "0000011", "c2", 3),
            fill("2", "0000011", "c2", 2),
        ]
    )
    j.close()
    again = Journal(tmp_path / "state", clock)
    again.open()
    try:
        assert again.strategy_positions() == {"momentum": {"005930": 6}}
        by_id = {o.client_id: o for o in again.load_orders()}
        assert by_id["c1"].fill_nos == {("0000010", "1")}
        assert by_id["c2"].fill_nos == {("0000011", "1"), ("0000011", "2")}
        assert by_id["c2"].filled_by_no == {"0000011": 5}
    finally:
        again.close()


def test_a_replayed_fill_is_counted_as_a_duplicate_and_stored_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    j = Journal(tmp_path / "state", clock)
    j.open()
    try:
        j.record_intent(order("c1", "0000010", 5))
        f = fill("7", "0000010", "c1", 2)
        j.write([f])
        j.write([f, fill("8", "0000010", "c1", 3)])
        assert j.stats()["duplicate_fills"] == 1
        assert j.strategy_positions() == {"momentum": {"005930": 5}}
    finally:
        j.close()


def test_an_amended_orders_fills_under_each_number_count_once_each() -> None:
    # An amend gets a new number; a broker numbering per order starts again at "1".
    o = order("c1", "0000010", 5)
    assert apply(o, Filled(order_no="0000010", fill_no="1", qty=2, price=70_000)).fill
    apply(o, ReplaceRequested())
    apply(o, Replaced(order_no="0000011", price=70_100))
    assert o.order_no == "0000011"
    assert apply(o, Filled(order_no="0000011", fill_no="1", qty=3, price=70_100)).fill
    assert apply(o, Filled(order_no="0000011", fill_no="1", qty=3, price=70_100)).duplicate
    assert (o.filled_qty, o.fill_amount) == (5, 350_300)


# --- halts (item 1) ----------------------------------------------------------------------------


def test_halts_are_on_disk_when_save_returns_even_through_a_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime
        from engine.clock import KST, ManualClock
        from engine.journal import Journal
        j = Journal({str(state)!r}, ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=KST)))
        j.open()
        j.save_halts({{"OPERATOR": "OPERATOR_HALT: lunch", "DIVERGENCE": "POSITION_DIVERGENCE"}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    j = Journal(state, ManualClock(DAY0))
    j.open()
    try:
        assert j.load_halts() == {
            "OPERATOR": "OPERATOR_HALT: lunch",
            "DIVERGENCE": "POSITION_DIVERGENCE",
        }
        j.save_halts({})
        assert j.load_halts() == {}
    finally:
        j.close()


def test_a_new_journal_has_no_halts_and_knows_it(tmp_path: Path, clock: ManualClock) -> None:
    j = Journal(tmp_path / "state", clock)
    j.open()
    try:
        assert j.load_halts() is None  # never saved: the engine infers them once
    finally:
        j.close()


# --- migration from version 1 ------------------------------------------------------------------


def test_a_journal_written_by_the_engine_before_migrates_to_the_new_schema(
    tmp_path: Path, clock: ManualClock
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(FIXTURE_V1, state / FILE_NAME)  # see tests/fixtures/make_journal_v1.py
    j = Journal(state, clock)
    j.open()
    try:
        assert j.strategy_positions() == {"momentum": {"005930": 7}}
        assert j.load_counters("20260105") == {
            "orders_sent": 2,
            "realized_pnl": 2_071,
            "rejected": 1,
        }
        assert j.load_halts() is None
        buy, sell = j.load_orders()
        assert (buy.client_id, buy.state, buy.filled_qty, buy.fill_amount) == (
            "1.1",
            S.FILLED,
            10,
            700_600,
        )
        assert buy.fill_nos == {("0000010", "1"), ("0000010", "2")}
        assert sell.fill_nos == {("0000011", "3")}
        assert j.next_client_seq() == 1_001
        # The new key: fill "1" of another order is a fill of its own; a replay is not.
        j.record_intent(order("2.1", "0000012", 4))
        j.write([fill("1", "0000012", "2.1", 4), fill("1", "0000010", "1.1", 4)])
        assert j.strategy_positions() == {"momentum": {"005930": 11}}
        assert j.stats()["duplicate_fills"] == 1
    finally:
        j.close()
    con = sqlite3.connect(f"file:{state / FILE_NAME}?mode=ro", uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    # Version 3's equity snapshots (the daily report's line), empty after the migration.
    assert con.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 0
    pk = [r[1] for r in con.execute("PRAGMA table_info(fills)") if r[5]]
    assert pk == ["trading_day", "fill_no", "order_no"]  # columns in table order
    assert [r[0] for r in con.execute("PRAGMA index_list(fills)") if "by_client" in r[1]] != []
    con.close()
    # Reopened: migrated once, nothing to do the second time.
    j = Journal(state, clock)
    j.open()
    assert j.strategy_positions() == {"momentum": {"005930": 11}}
    j.close()


def test_the_fixture_is_a_version_1_journal_left_as_it_was() -> None:
    con = sqlite3.connect(f"file:{FIXTURE_V1}?immutable=1", uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    con.close()
    assert not os.path.exists(f"{FIXTURE_V1}-wal")


# --- bounded per-order state (item 24) ----------------------------------------------------------


def test_the_duplicate_intent_guard_is_a_bounded_window(tmp_path: Path, clock: ManualClock) -> None:
    j = Journal(tmp_path / "state", clock)
    j.open()
    try:
        for n in range(RECORDED_WINDOW + 100):
            j.record_intent(Order(f"1.{n}", "momentum", "005930", Side.BUY, 1, 70_000))
        assert len(j._recorded) == RECORDED_WINDOW
        newest = Order(f"1.{RECORDED_WINDOW + 99}", "momentum", "005930", Side.BUY, 1, 70_000)
        with pytest.raises(JournalError, match="already journaled"):
            j.record_intent(newest)
        # Outside the window the guard forgets; the orders table still holds the first row.
        j.record_intent(Order("1.0", "momentum", "005930", Side.SELL, 9, 1))
        first = next(o for o in j.load_orders() if o.client_id == "1.0")
        assert (first.side, first.qty) == (Side.BUY, 1)
    finally:
        j.close()


# --- equity snapshots (schema 3, issue 17) -----------------------------------------------------


def test_an_equity_snapshot_is_one_committed_row_of_its_kst_day(
    tmp_path: Path, clock: ManualClock
) -> None:
    from engine.trading.portfolio import EquityMark, StrategyMark

    j = Journal(tmp_path / "state", clock)
    j.open()
    mark = EquityMark(1_000, 2_000, 30, -40, 5, {"momentum": StrategyMark(30, -40, 5, 2_000)})
    j.record_equity(mark)  # the clock's now: 2026-01-05 10:00 KST
    late = int(datetime(2026, 1, 5, 23, 59, 59, tzinfo=KST).timestamp()) * 1_000_000_000
    j.record_equity(mark, late + 2 * 1_000_000_000)  # 00:00:01 KST the next day
    assert j.stats()["equity_snapshots"] == 2
    # Committed when it returns: another connection sees both, the journal still open.
    con = sqlite3.connect(f"file:{tmp_path / 'state' / FILE_NAME}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT trading_day, cash, positions_value, realized, unrealized, fees, strategies"
        " FROM equity ORDER BY rowid"
    ).fetchall()
    con.close()
    j.close()
    assert [r[0] for r in rows] == ["20260105", "20260106"]
    assert rows[0][1:6] == (1_000, 2_000, 30, -40, 5)
    assert orjson.loads(rows[0][6]) == {
        "momentum": {"realized": 30, "unrealized": -40, "fees": 5, "value": 2_000}
    }
