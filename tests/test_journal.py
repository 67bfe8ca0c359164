"""The journal on real files: schema and lock, intents, batched writes, recovery reads, the
writer task on a real ConsumerQueue, and a writer process killed with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.bus import ConsumerQueue, EventBus
from engine.clock import KST, ManualClock
from engine.events import (
    Balance,
    Exchange,
    Fill,
    OrderBook,
    OrderState,
    OrderUpdate,
    PositionDivergence,
    Quote,
    Reconciled,
    RiskRejected,
    Side,
    StrategyDisabled,
    TimeInForce,
    Trade,
    TradingState,
    TradingStateChanged,
)
from engine.journal import (
    CLIENT_SEQ_BLOCK,
    FILE_NAME,
    INTENTS_NAME,
    JOURNALED,
    RETRY_MIN_S,
    SCHEMA_VERSION,
    Journal,
    JournalError,
)
from engine.trading.order_events import (
    Acked,
    CancelRefused,
    CancelRequested,
    Filled,
    OrderEvent,
    Replaced,
    ReplaceRequested,
    apply,
)
from engine.trading.orders import Order
from tests.support import until

S = OrderState
DAY0 = datetime(2026, 1, 5, 10, 0, tzinfo=KST)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(DAY0)


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Any:
    j = Journal(tmp_path / "state", clock)
    j.open()
    yield j
    j.close()


def reopen(j: Journal) -> Journal:
    j.close()
    again = Journal(j.state_dir, j._clock)
    again.open()
    return again


def make_order(client_id: str, **kw: Any) -> Order:
    base: dict[str, Any] = {
        "client_id": client_id,
        "strategy": "momentum",
        "symbol": "005930",
        "side": Side.BUY,
        "qty": 10,
        "price": 70_000,
        "state": S.SUBMITTING,
        "created_ns": 1_767_574_800_000_000_000,
    }
    base.update(kw)
    return Order(**base)


def step(o: Order, ev: OrderEvent) -> OrderUpdate:
    """Apply `ev` as the OMS would; the update it publishes."""
    up = apply(o, ev).update
    assert up is not None
    return up


def as_tuple(o: Order) -> tuple[Any, ...]:
    return tuple(getattr(o, f.name) for f in fields(o))


def make_fill(fill_no: str, order_no: str, **kw: Any) -> Fill:
    base: dict[str, Any] = {
        "client_id": None,
        "strategy": None,
        "order_no": order_no,
        "fill_no": fill_no,
        "symbol": "005930",
        "side": Side.BUY,
        "qty": 1,
        "price": 70_000,
        "fee": 0,
        "tax": 0,
    }
    base.update(kw)
    return Fill(**base)


def update(client_id: str, state: OrderState, seq: int, **kw: Any) -> OrderUpdate:
    base: dict[str, Any] = {
        "client_id": client_id,
        "strategy": "momentum",
        "symbol": "005930",
        "side": Side.BUY,
        "qty": 10,
        "price": 70_000,
        "state": state,
        "prev_state": S.SUBMITTING,
        "order_no": None,
        "filled_qty": 0,
        "avg_fill_price": 0,
        "seq": seq,
    }
    base.update(kw)
    return OrderUpdate(**base)


def trade(symbol: str = "005930") -> Trade:
    return Trade(symbol, Exchange.KRX, 93005, 70_000, 5, 100, 0, 70_100, 70_000, 0, 0, 0)


def raw(j: Journal) -> sqlite3.Connection:
    """A second, plain connection: what another reader of the file sees."""
    return sqlite3.connect(j.path)


# --- file, schema, lock ------------------------------------------------------------------------


def test_open_creates_private_dir_wal_file_and_schema(tmp_path: Path, clock: ManualClock) -> None:
    j = Journal(tmp_path / "a" / "state", clock)
    j.open()
    try:
        assert j.path == tmp_path / "a" / "state" / FILE_NAME
        assert stat.S_IMODE(os.stat(j.state_dir).st_mode) == 0o700
        con = raw(j)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        con.close()
    finally:
        j.close()


def test_newer_schema_is_refused_with_both_versions(tmp_path: Path, clock: ManualClock) -> None:
    (tmp_path / "s").mkdir()
    con = sqlite3.connect(tmp_path / "s" / FILE_NAME)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    j = Journal(tmp_path / "s", clock)
    with pytest.raises(JournalError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        j.open()
    # The refusal released the lock: with the file moved away, a new journal opens at once.
    (tmp_path / "s" / FILE_NAME).rename(tmp_path / "s" / "newer.sqlite3")
    j.open()
    j.close()


def test_a_state_dir_that_is_a_file_is_a_journal_error(tmp_path: Path, clock: ManualClock) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "state", clock).open()


def test_second_engine_on_the_same_state_dir_is_refused(journal: Journal) -> None:
    other = Journal(journal.state_dir, journal._clock)
    with pytest.raises(JournalError, match="in use by another process"):
        other.open()
    journal.close()
    other.open()
    other.close()


def test_close_is_idempotent_and_a_closed_journal_refuses_work(journal: Journal) -> None:
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="not open"):
        journal.record_intent(make_order("c1"))
    with pytest.raises(JournalError, match="not open"):
        journal.write([])


# --- intents -----------------------------------------------------------------------------------


def test_intent_is_on_disk_when_record_intent_returns(journal: Journal) -> None:
    o = make_order("c1", tif=TimeInForce.IOC, price=None)
    journal.record_intent(o)
    # One line in the intent log, written before record_intent returned (a kill -9 now keeps
    # it: see the SIGKILL tests below) ...
    (line,) = (journal.state_dir / INTENTS_NAME).read_bytes().splitlines()
    assert orjson.loads(line)[:9] == [
        "c1",
        "20260105",
        "momentum",
        "005930",
        "buy",
        10,
        None,
        "ioc",
        "submitting",
    ]
    # ... moved into SQLite by the journal's next use of it, and the log emptied.
    assert [x.client_id for x in journal.load_orders()] == ["c1"]
    con = raw(journal)  # no close, no checkpoint: another connection sees it
    assert con.execute("SELECT client_id, state, price, tif FROM orders").fetchall() == [
        ("c1", "submitting", None, "ioc")
    ]
    con.close()
    assert (journal.state_dir / INTENTS_NAME).read_bytes() == b""
    assert journal.intents == 1


def test_an_orders_venue_is_journaled_with_its_tif(journal: Journal) -> None:
    # Issue 15: cancels and amends go to the venue the order went to, also after a restart.
    journal.record_intent(make_order("c1", venue=Exchange.NXT, tif=TimeInForce.IOC))
    journal.record_intent(make_order("c2", venue=Exchange.SOR))
    journal.record_intent(make_order("c3"))
    loaded = {o.client_id: (o.venue, o.tif) for o in journal.load_orders()}
    assert loaded == {
        "c1": (Exchange.NXT, TimeInForce.IOC),
        "c2": (Exchange.SOR, TimeInForce.DAY),
        "c3": (Exchange.KRX, TimeInForce.DAY),
    }
    con = raw(journal)
    rows = con.execute("SELECT client_id, tif FROM orders ORDER BY client_id").fetchall()
    con.close()
    assert rows == [("c1", "ioc@NXT"), ("c2", "day@SOR"), ("c3", "day")]  # KRX rows as before


def test_intents_left_in_the_log_are_moved_at_open_once(tmp_path: Path, clock: ManualClock) -> None:
    state = tmp_path / "state"
    j = Journal(state, clock)
    j.open()
    j.record_intent(make_order("c1"))
    j.record_intent(make_order("c2"))
    log_text = (state / INTENTS_NAME).read_bytes()
    # The process dies: nothing is moved or closed cleanly (the lock goes with the process).
    j._pending = []
    j.close()
    (state / INTENTS_NAME).write_bytes(log_text + b'["c3", "2026')  # a line cut short
    again = Journal(state, clock)
    again.open()
    try:
        assert again.stats()["intent_lines_unreadable"] == 1
        assert [o.client_id for o in again.load_orders()] == ["c1", "c2"]
        assert (state / INTENTS_NAME).read_bytes() == b""
    finally:
        again.close()
    # Moved, then killed before the log was emptied: moving again adds nothing.
    (state / INTENTS_NAME).write_bytes(log_text)
    third = Journal(state, clock)
    third.open()
    try:
        assert [o.client_id for o in third.load_orders()] == ["c1", "c2"]
    finally:
        third.close()


def test_intent_round_trips_every_field(journal: Journal) -> None:
    o = make_order(
        "c7",
        strategy="meanrev",
        side=Side.SELL,
        qty=3,
        price=69_900,
        tif=TimeInForce.FOK,
        state=S.NEW,
        reason="",
        created_ns=123,
    )
    journal.record_intent(o)
    j2 = reopen(journal)
    try:
        (back,) = j2.load_orders()
        assert as_tuple(back) == as_tuple(o)
    finally:
        j2.close()


def test_external_order_recorded_with_its_numbers(journal: Journal) -> None:
    o = make_order("ext-1", strategy=None, external=True, state=S.ACCEPTED, order_no="0000077")
    o.order_nos = ["0000077"]
    journal.record_intent(o)
    (back,) = journal.load_orders()
    assert back.external is True
    assert back.strategy is None
    assert back.order_nos == ["0000077"]


def test_duplicate_intent_raises_so_the_order_is_not_sent(journal: Journal) -> None:
    journal.record_intent(make_order("c1"))
    with pytest.raises(JournalError, match="c1 not journaled"):
        journal.record_intent(make_order("c1", qty=99))
    assert journal.last_error is not None
    (back,) = journal.load_orders()
    assert back.qty == 10


# --- order updates and fills -------------------------------------------------------------------


def test_order_life_restores_state_numbers_fills_and_exact_amount(
    journal: Journal, clock: ManualClock
) -> None:
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", types=JOURNALED))
    o = make_order("c1", qty=4, price=101)
    journal.record_intent(o)
    bus.publish(step(o, Acked(order_no="0000010")))
    for fill_no, price in (("F1", 100), ("F2", 100), ("F3", 100)):
        up = step(o, Filled(order_no="0000010", fill_no=fill_no, qty=1, price=price))
        bus.publish(make_fill(fill_no, "0000010", client_id="c1", strategy="momentum", price=price))
        bus.publish(up)
    bus.publish(step(o, ReplaceRequested()))
    bus.publish(step(o, Replaced(order_no="0000011", price=101)))  # the amend's new number
    up = step(o, Filled(order_no="0000011", fill_no="F4", qty=1, price=101))
    bus.publish(make_fill("F4", "0000011", client_id="c1", strategy="momentum", price=101))
    bus.publish(up)
    journal.write(q.take())

    j2 = reopen(journal)
    try:
        (back,) = j2.load_orders()
        assert back.state is S.FILLED
        assert back.order_no == "0000011"
        assert back.order_nos == ["0000010", "0000011"]
        assert back.fill_nos == {
            ("0000010", "F1"),
            ("0000010", "F2"),
            ("0000010", "F3"),
            ("0000011", "F4"),
        }
        assert back.filled_qty == 4
        assert back.fill_amount == 401  # avg_fill_price alone would say 100 x 4 = 400
        assert back.filled_by_no == {"0000010": 3, "0000011": 1}
        assert as_tuple(back) == as_tuple(o)
        assert j2.load_orders(open_only=True) == []
    finally:
        j2.close()


def _order_lives(clock: ManualClock) -> list[Any]:
    """Two orders' updates and fills as the bus would number them (interleaved in part):
    pending cancel refused, pending amend to a new number, fills under both numbers, an
    external order, and a fill that names only a number."""
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", types=JOURNALED))
    a = make_order("c1", qty=4, price=101)
    b = make_order("c2", qty=2, price=99, side=Side.SELL)
    bus.publish(step(a, Acked(order_no="0000010")))
    bus.publish(step(a, CancelRequested()))
    clock.advance(1)
    bus.publish(step(a, CancelRefused()))
    bus.publish(step(b, Acked(order_no="0000012")))
    bus.publish(make_fill("F1", "0000010", client_id="c1", strategy="momentum", price=101))
    bus.publish(step(a, Filled(order_no="0000010", fill_no="F1", qty=1, price=101)))
    bus.publish(step(a, ReplaceRequested()))
    bus.publish(step(a, Replaced(order_no="0000011", price=100)))
    bus.publish(make_fill("F2", "0000011"))  # by number only
    bus.publish(step(a, Filled(order_no="0000011", fill_no="F2", qty=3, price=100)))
    bus.publish(step(b, CancelRequested()))
    bus.publish(update("ext-9", S.ACCEPTED, seq=0, strategy=None, order_no="0000013"))
    clock.advance(1)
    bus.publish(step(b, Filled(order_no="0000012", fill_no="F3", qty=2, price=99)))
    bus.publish(update("ext-8", S.ACCEPTED, seq=0, strategy=None, order_no="0000014"))
    clock.advance(1)  # its row is created by the first, updated by the second
    bus.publish(update("ext-8", S.CANCELED, seq=0, strategy=None, order_no="0000014"))
    # Amended at once: two numbers in one run.
    bus.publish(update("ext-7", S.ACCEPTED, seq=0, strategy=None, order_no="0000015"))
    bus.publish(update("ext-7", S.ACCEPTED, seq=0, strategy=None, order_no="0000016"))
    return q.take()


def _tables(j: Journal) -> dict[str, list[Any]]:
    with raw(j) as c:
        return {
            t: c.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
            for t in ("orders", "order_nos", "fills")
        }


def test_updates_written_in_one_batch_leave_the_rows_of_one_by_one(
    tmp_path: Path, clock: ManualClock
) -> None:
    # A batch writes an order's consecutive updates as one statement: the rows must be those
    # the updates leave written one at a time.
    events = _order_lives(clock)
    assert sum(type(e) is OrderUpdate for e in events) == 15
    rows = []
    for name, batches in (("one", [events]), ("each", [[e] for e in events])):
        j = Journal(tmp_path / name, clock)
        j.open()
        try:
            j.record_intent(make_order("c1", qty=4, price=101))
            j.record_intent(make_order("c2", qty=2, price=99, side=Side.SELL))
            for batch in batches:
                j.write(batch)
            rows.append(_tables(j))
            assert j.rows_written == len(events)
        finally:
            j.close()
    one, each = rows
    assert one == each
    # Not vacuous: what the lives above were built to leave.
    orders = {r[0]: r for r in each["orders"]}
    assert orders["c1"][8:11] == ("filled", "partially_filled", "0000011")
    assert orders["c2"][8:10] == ("filled", "accepted")
    assert [r[1:] for r in each["order_nos"]] == [
        ("0000010", "c1"),
        ("0000012", "c2"),
        ("0000011", "c1"),
        ("0000013", "ext-9"),
        ("0000014", "ext-8"),
        ("0000015", "ext-7"),
        ("0000016", "ext-7"),
    ]
    assert orders["ext-8"][14] < orders["ext-8"][16]  # created before it was updated
    assert {r[1]: r[3] for r in each["fills"]} == {"F1": "c1", "F2": "c1"}


def test_pending_cancel_restores_the_state_to_return_to(journal: Journal) -> None:
    o = make_order("c1")
    journal.record_intent(o)
    ups = [step(o, Acked(order_no="0000010")), step(o, CancelRequested())]
    ups.append(dataclasses.replace(ups[-1], prev_state=S.PENDING_CANCEL))  # asked again
    journal.write([u for u in ups])
    (back,) = journal.load_orders(open_only=True)
    assert back.state is S.PENDING_CANCEL
    assert back.prev_state is S.ACCEPTED
    # The broker refuses the cancel: the restored order can go back where the live one would.
    assert step(back, CancelRefused()).state is S.ACCEPTED


def test_a_market_order_stays_a_market_order(journal: Journal) -> None:
    o = make_order("c1", price=None)
    journal.record_intent(o)
    journal.write([step(o, Acked(order_no="0000010"))])  # says price 0: a market order
    # Seen first on the feed: an external market order.
    journal.write([update("ext-1", S.ACCEPTED, seq=0, strategy=None, price=0)])
    assert [o.price for o in journal.load_orders()] == [None, None]


def test_an_older_update_never_overwrites_a_newer_one(journal: Journal) -> None:
    journal.record_intent(make_order("c1"))
    journal.write([update("c1", S.FILLED, seq=9, order_no="1", filled_qty=10, fill_amount=7)])
    journal.write([update("c1", S.ACCEPTED, seq=5, order_no="1")])
    (back,) = journal.load_orders()
    assert back.state is S.FILLED
    assert back.filled_qty == 10


def test_fill_is_stored_once_per_day_order_no_and_fill_no(
    journal: Journal, clock: ManualClock
) -> None:
    journal.record_intent(make_order("c1"))
    journal.write([update("c1", S.ACCEPTED, seq=1, order_no="0000010")])
    f = make_fill("F1", "0000010", ts_recv=clock.time_ns(), qty=3)
    journal.write([f, f])
    assert journal.strategy_positions() == {"momentum": {"005930": 3}}
    assert journal.stats()["duplicate_fills"] == 1
    # Fill numbers restart each day at the broker: tomorrow's F1 is a new fill.
    clock.advance(86_400)
    journal.record_intent(make_order("c2"))
    journal.write([update("c2", S.ACCEPTED, seq=2, order_no="0000010", ts_recv=clock.time_ns())])
    journal.write([make_fill("F1", "0000010", ts_recv=clock.time_ns(), qty=2)])
    assert journal.strategy_positions() == {"momentum": {"005930": 5}}
    (back,) = journal.load_orders()
    assert back.client_id == "c2"
    assert back.fill_nos == {("0000010", "F1")}


def test_fill_before_the_order_number_is_known_is_attached_later(journal: Journal) -> None:
    journal.record_intent(make_order("c1"))
    # The 00 push overtook the REST answer: its fill names only the broker's number.
    journal.write([make_fill("F1", "0000042", qty=10)])
    assert journal.strategy_positions() == {}
    journal.write([update("c1", S.FILLED, seq=3, order_no="0000042", filled_qty=10)])
    (back,) = journal.load_orders()
    assert back.fill_nos == {("0000042", "F1")}
    assert journal.strategy_positions() == {"momentum": {"005930": 10}}


def test_recovery_attributes_an_external_order_to_its_intent(journal: Journal) -> None:
    journal.record_intent(make_order("c1"))  # its POST timed out: no number learnt
    journal.record_intent(make_order("c2"))
    # Seen on the feed before anything matched it to c1: tracked as external.
    journal.write(
        [
            update("ext-42", S.FILLED, seq=1, strategy=None, order_no="0000042", filled_qty=10),
            make_fill("F1", "0000042", qty=10),
        ]
    )
    assert journal.strategy_positions() == {}
    # Reconciliation matches it to c1's intent.
    journal.write([update("c1", S.FILLED, seq=2, order_no="0000042", filled_qty=10)])
    assert journal.strategy_positions() == {"momentum": {"005930": 10}}
    # Another engine order cannot take a number an engine order holds.
    journal.write([update("c2", S.ACCEPTED, seq=3, order_no="0000042")])
    by_id = {o.client_id: o for o in journal.load_orders()}
    assert by_id["c1"].order_nos == ["0000042"]
    assert by_id["c1"].fill_nos == {("0000042", "F1")}
    assert by_id["c2"].order_nos == []
    assert by_id["ext-42"].fill_nos == set()


def test_positions_net_buys_and_sells_and_leave_out_external_and_flat(journal: Journal) -> None:
    journal.record_intent(make_order("b1", qty=10))
    journal.record_intent(make_order("s1", side=Side.SELL, qty=4))
    journal.record_intent(make_order("b2", strategy="other", symbol="000660", qty=2))
    journal.record_intent(make_order("s2", strategy="other", symbol="000660", side=Side.SELL))
    journal.write(
        [
            make_fill("F1", "1", client_id="b1", qty=10),
            make_fill("F2", "2", client_id="s1", side=Side.SELL, qty=4),
            make_fill("F3", "3", client_id="b2", symbol="000660", qty=2),
            make_fill("F4", "4", client_id="s2", symbol="000660", side=Side.SELL, qty=2),
            # Seen on the feed, placed outside the engine.
            update("ext-9", S.FILLED, seq=5, strategy=None, order_no="9", filled_qty=7),
            make_fill("F9", "9", qty=7),
            make_fill("F10", "10", qty=1),  # no order, no strategy
        ]
    )
    assert journal.strategy_positions() == {"momentum": {"005930": 6}}
    ext = next(o for o in journal.load_orders() if o.client_id == "ext-9")
    assert ext.external is True
    assert ext.fill_nos == {("9", "F9")}


def test_load_orders_is_todays_and_open_only_filters(journal: Journal, clock: ManualClock) -> None:
    journal.record_intent(make_order("old"))
    clock.advance(86_400)
    journal.record_intent(make_order("open"))
    journal.record_intent(make_order("done"))
    journal.write([update("done", S.REJECTED, seq=1, reason="MAX_NOTIONAL")])
    assert [o.client_id for o in journal.load_orders()] == ["open", "done"]
    assert [o.client_id for o in journal.load_orders(open_only=True)] == ["open"]
    assert journal.load_orders()[1].reason == "MAX_NOTIONAL"


def test_risk_and_state_events_go_to_the_audit_table(journal: Journal, clock: ManualClock) -> None:
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", types=JOURNALED))
    audited = [
        RiskRejected("c1", "momentum", "005930", Side.BUY, 10, 70_000, "MAX_NOTIONAL", 5, 7),
        TradingStateChanged(TradingState.HALTED, TradingState.ACTIVE, "kill_switch"),
        StrategyDisabled("momentum", "errors", 10, 0),
        PositionDivergence("005930", 10, 9),
        Reconciled(3, 1, 1),
    ]
    for ev in audited:
        bus.publish(ev)
    journal.write(q.take())
    assert journal.rows_written == 5
    con = raw(journal)
    rows = con.execute("SELECT type, seq, ts_recv, payload FROM audit ORDER BY id").fetchall()
    con.close()
    assert [(r[0], r[1]) for r in rows] == [(type(e).__name__, e.seq) for e in audited]
    assert all(r[2] == clock.time_ns() for r in rows)
    first = orjson.loads(rows[0][3])
    assert (first["reason"], first["limit"], first["value"]) == ("MAX_NOTIONAL", 5, 7)


def test_the_queue_filter_takes_journaled_events_only(clock: ManualClock) -> None:
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", types=JOURNALED))
    bus.publish(trade())
    bus.publish(Quote("005930", Exchange.KRX, 70_100, 70_000))
    bus.publish(OrderBook("005930", Exchange.KRX, 93005, (), (), 0, 0))
    bus.publish(Balance(*([""] * 3), *([0] * 11), 0.0, 0, 0.0, 0.0, 0, 0, 0, "", "", "", ""))
    assert q.depth == 0
    bus.publish(update("c1", S.ACCEPTED, seq=0))
    bus.publish(make_fill("F1", "1"))
    bus.publish(Reconciled(0, 0, 0))
    assert q.depth == 3


def test_write_ignores_other_events_and_is_all_or_nothing(journal: Journal) -> None:
    journal.write([trade()])
    assert journal.rows_written == 0
    with pytest.raises(OverflowError):
        journal.write([update("c1", S.ACCEPTED, seq=1), make_fill("F1", "1", qty=2**70)])
    assert journal.load_orders() == []


def test_a_number_linked_in_a_rolled_back_batch_is_linked_again(journal: Journal) -> None:
    # The journal remembers which numbers it linked, so an order's later updates skip the
    # statement; a link made in a batch that rolled back was never stored.
    journal.record_intent(make_order("c1"))
    with pytest.raises(OverflowError):
        journal.write(
            [update("c1", S.ACCEPTED, seq=1, order_no="0000042"), make_fill("F0", "1", qty=2**70)]
        )
    journal.write([update("c1", S.FILLED, seq=2, order_no="0000042", filled_qty=10)])
    journal.write([make_fill("F1", "0000042", qty=10)])
    (back,) = journal.load_orders()
    assert back.order_nos == ["0000042"]
    assert back.fill_nos == {("0000042", "F1")}
    assert journal.strategy_positions() == {"momentum": {"005930": 10}}


# --- counters, meta, client ids ----------------------------------------------------------------


def test_counters_survive_a_restart_and_a_save_replaces_the_day(journal: Journal) -> None:
    journal.save_counters("20260105", {"orders": 3, "realized_pnl": -12_345})
    journal.save_counters("20260106", {"orders": 1})
    j2 = reopen(journal)
    try:
        assert j2.load_counters("20260105") == {"orders": 3, "realized_pnl": -12_345}
        j2.save_counters("20260105", {"orders": 4})
        assert j2.load_counters("20260105") == {"orders": 4}
        assert j2.load_counters("20260106") == {"orders": 1}
        assert j2.load_counters("20260107") == {}
        with pytest.raises(TypeError, match="'pnl' must be an int"):
            j2.save_counters("20260105", {"pnl": 1.5})  # type: ignore[dict-item]
        assert j2.load_counters("20260105") == {"orders": 4}
    finally:
        j2.close()


def test_meta_round_trips(journal: Journal) -> None:
    assert journal.get_meta("reconciled_day") is None
    journal.set_meta("reconciled_day", "20260105")
    journal.set_meta("reconciled_day", "20260106")
    j2 = reopen(journal)
    try:
        assert j2.get_meta("reconciled_day") == "20260106"
    finally:
        j2.close()


def test_client_seq_never_repeats_across_restarts(journal: Journal) -> None:
    first = [journal.next_client_seq() for _ in range(CLIENT_SEQ_BLOCK + 5)]
    assert first == list(range(1, CLIENT_SEQ_BLOCK + 6))  # crosses a reservation
    j2 = reopen(journal)
    try:
        assert j2.next_client_seq() > first[-1]
    finally:
        j2.close()


# --- the writer task ---------------------------------------------------------------------------


async def test_writer_drains_the_queue_and_flushes_on_cancel(
    journal: Journal, clock: ManualClock
) -> None:
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", max_market=10, types=JOURNALED))
    task = asyncio.create_task(journal.run(q))
    for i in range(20):
        journal.record_intent(make_order(f"c{i}"))
        bus.publish(update(f"c{i}", S.ACCEPTED, seq=0, order_no=f"{i:07d}"))
        bus.publish(trade())  # market data never reaches the journal's queue
    await until(lambda: journal.rows_written == 20)
    assert q.depth == 0
    assert all(o.state is S.ACCEPTED for o in journal.load_orders())

    # Published and cancelled before the writer ran again: the drain writes them.
    for i in range(5):
        bus.publish(update(f"c{i}", S.CANCELED, seq=0, order_no=f"{i:07d}"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.rows_written == 25
    assert [o.client_id for o in journal.load_orders(open_only=True)] == [
        f"c{i}" for i in range(5, 20)
    ]


async def test_writer_keeps_a_failed_batch_and_retries_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    j = Journal(tmp_path, clock, busy_timeout_ms=0)
    j.open()
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", types=JOURNALED))
    task = asyncio.create_task(j.run(q))
    blocker = raw(j)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: SQLITE_BUSY
    try:
        bus.publish(update("c1", S.ACCEPTED, seq=0, order_no="0000001"))
        bus.publish(make_fill("F1", "0000001", strategy="momentum", qty=2))
        await until(lambda: j.write_errors >= 1)
        assert "locked" in (j.last_error or "")
        assert q.depth == 0  # taken by the writer, held there
        assert j.rows_written == 0
        blocker.execute("ROLLBACK")
        clock.advance(RETRY_MIN_S)
        await until(lambda: j.rows_written == 2)
        assert j.strategy_positions() == {"momentum": {"005930": 2}}
        assert j.failed_events == 0
    finally:
        blocker.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        j.close()


async def test_writer_sets_aside_an_event_sqlite_cannot_store(
    journal: Journal, clock: ManualClock
) -> None:
    bus = EventBus(clock)
    q = bus.attach(ConsumerQueue("journal", types=JOURNALED))
    task = asyncio.create_task(journal.run(q))
    bus.publish(update("c1", S.ACCEPTED, seq=0))
    bus.publish(make_fill("F1", "1", qty=2**70))  # no SQLite integer holds it
    bus.publish(update("c2", S.ACCEPTED, seq=0))
    await until(lambda: journal.rows_written == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.failed_events == 1
    assert [o.client_id for o in journal.load_orders()] == ["c1", "c2"]


# --- a writer killed with SIGKILL ----------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import os
    import sys
    from datetime import datetime
    from engine.clock import KST, ManualClock
    from engine.events import OrderState, Side
    from engine.journal import Journal
    from engine.trading.order_events import Acked, apply
    from engine.trading.orders import Order

    def say(*words):
        # One write(2) of under PIPE_BUF bytes: a kill never leaves half a line.
        os.write(1, (" ".join(words) + "\\n").encode())

    j = Journal(sys.argv[1], ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=KST)))
    j.open()
    live = []
    while True:
        n = j.next_client_seq()
        o = Order(client_id=f"c{n}", strategy="s", symbol="005930", side=Side.BUY, qty=1,
                  price=70000, state=OrderState.SUBMITTING, created_ns=n)
        j.record_intent(o)
        say("intent", o.client_id)
        live.append(o)
        if len(live) == 7:
            ups = []
            for x in live:
                ups.append(apply(x, Acked(order_no=f"{n:04d}{x.client_id}")).update)
            j.write(ups)
            say("accepted", *(x.client_id for x in live))
            live = []
    """
)


def test_a_killed_writer_leaves_every_committed_intent(tmp_path: Path, clock: ManualClock) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while len(lines) < 400:
            line = proc.stdout.readline()
            assert line, f"writer ended early: {proc.stderr.read()}"
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    lines += proc.stdout.readlines()  # whatever it printed before it died
    proc.stdout.close()
    proc.stderr.close()
    assert all(ln.endswith("\n") for ln in lines)
    intents = {ln.split()[1] for ln in lines if ln.startswith("intent")}
    accepted = {cid for ln in lines if ln.startswith("accepted") for cid in ln.split()[1:]}
    assert len(intents) >= 300
    assert len(accepted) >= 300

    j = Journal(state, clock)
    j.open()  # the dead writer's lock is gone with it
    try:
        con = raw(j)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        orders = {o.client_id: o for o in j.load_orders()}
        assert intents <= set(orders)
        assert all(orders[c].state is S.ACCEPTED and orders[c].order_no for c in accepted)
        # A batch is all or nothing: an order is accepted only with its number linked.
        assert all(o.order_nos == [o.order_no] for o in orders.values() if o.order_no)
        highest = max(int(c[1:]) for c in orders)
        assert j.next_client_seq() > highest
    finally:
        j.close()


def test_order_update_carries_the_exact_fill_amount() -> None:
    o = make_order("c1", qty=2)
    step(o, Filled(order_no="0000001", fill_no="F1", qty=1, price=100))
    snap = step(o, Filled(order_no="0000001", fill_no="F2", qty=1, price=101))
    assert snap.state is S.FILLED
    assert (snap.avg_fill_price, snap.fill_amount) == (100, 201)


def test_counters_are_stored_in_the_same_transaction_as_the_fills_that_moved_them(
    journal: Journal, clock: ManualClock
) -> None:
    day = "20260105"
    pnl = {"realized_pnl": 0}
    journal.counters_source = lambda: (day, {"realized_pnl": pnl["realized_pnl"]})
    o = make_order("c1")
    journal.record_intent(o)
    pnl["realized_pnl"] = -500
    journal.write([make_fill("F1", "0000010", client_id="c1", strategy="momentum")])
    assert journal.load_counters(day) == {"realized_pnl": -500}
    # A batch that fails rolls the counters back with its fills: both or neither.
    pnl["realized_pnl"] = -900
    bad = make_fill("F2", "0000010", client_id="c1", strategy="momentum")
    journal.counters_source = lambda: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[assignment,misc]
    with pytest.raises(RuntimeError):
        journal.write([bad])
    journal.counters_source = lambda: (day, {"realized_pnl": pnl["realized_pnl"]})
    assert journal.load_counters(day) == {"realized_pnl": -500}
    assert ("0000010", "F2") not in {f for o2 in journal.load_orders() for f in o2.fill_nos}
    # A batch with no fill leaves them alone.
    journal.write([step(o, Acked(order_no="0000010"))])
    assert journal.load_counters(day) == {"realized_pnl": -500}
