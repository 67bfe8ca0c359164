"""iter_events: stored bars and ticks of several symbols come back as engine events in time
order, lazily (a torn file later in the range is met only when the merge gets there)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import KST
from engine.data.layout import part_path, partition_of
from engine.data.reader import iter_events
from engine.data.store import Store, StoreError
from engine.events import Bar, Trade
from engine.models import Candle

D1, D2 = date(2026, 10, 30), date(2026, 11, 2)


def minute(d: date, m: int, price: int) -> Candle:
    return Candle(
        datetime(d.year, d.month, d.day, 9, m, tzinfo=KST),
        price,
        price + 5,
        price - 5,
        price + 1,
        10 + m,
    )


def fill(store: Store) -> None:
    for sym, base in (("005930", 70_000), ("000660", 200_000)):
        for d in (D1, D2):
            rows = [minute(d, m, base + m) for m in range(0, 5)]
            store.write("1m", sym, partition_of("1m", d), (d, d), rows, whole_until=d)
    ticks = [
        Candle(
            datetime(2026, 11, 2, 9, 0, 30, tzinfo=KST) + timedelta(seconds=s // 2),
            500 + s,
            500 + s,
            500 + s,
            500 + s,
            1,
        )
        for s in range(6)
    ]
    store.write("tick", "005930", partition_of("tick", D2), (D2, D2), ticks, whole_until=D2)


def test_events_come_in_time_order_across_symbols_and_kinds(tmp_path: Path) -> None:
    store = Store(tmp_path)
    fill(store)
    events = list(iter_events(tmp_path, ["005930", "000660"], ["bars_1m", "ticks"], D1, D2))
    bars = [e for e in events if isinstance(e, Bar)]
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(bars) == 20
    assert len(trades) == 6
    stamps = [e.ts_recv for e in events]
    assert stamps == sorted(stamps)
    assert bars[0] == Bar(
        "000660",
        "1m",
        datetime(2026, 10, 30, 9, 0, tzinfo=KST),
        200_000,
        200_005,
        199_995,
        200_001,
        10,
    )
    # within one minute: the 005930 ticks of 09:00:30.. sit between the 09:00 and 09:01 bars
    day2 = [e for e in events if e.ts_recv >= trades[0].ts_recv - 60 * 10**9]
    kinds = [type(e).__name__ for e in day2[:9]]
    assert kinds == ["Bar", "Bar", "Trade", "Trade", "Trade", "Trade", "Trade", "Trade", "Bar"]
    assert [t.price for t in trades] == [500, 501, 502, 503, 504, 505]
    assert trades[0].time == 90030


def test_the_merge_is_lazy_and_names_a_torn_file_when_it_gets_there(tmp_path: Path) -> None:
    store = Store(tmp_path)
    fill(store)
    torn = part_path(tmp_path, "1m", "005930", partition_of("1m", D2))
    torn.write_bytes(torn.read_bytes()[:64])
    it = iter_events(tmp_path, ["005930"], ["bars_1m"], D1, D2)
    first = [next(it) for _ in range(5)]  # October's file is whole
    assert all(isinstance(e, Bar) and e.start.month == 10 for e in first)
    with pytest.raises(StoreError, match=r"month=2026-11/part\.parquet: torn"):
        next(it)
