"""The history store on disk: schema, idempotent writes, halts left out, the checks that
name a missing or torn file, adjustment on read, and readers that open it directly."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from engine.clock import KST
from engine.data.layout import part_path, partition_of
from engine.data.manifest import gaps, normalise
from engine.data.store import Store, StoreError
from engine.models import Candle

D = date(2026, 11, 2)


def bar(day: date, hh: int, mm: int, price: int, volume: int = 100) -> Candle:
    return Candle(
        datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST),
        price,
        price + 100,
        price - 100,
        price + 50,
        volume,
    )


def day_bars(day: date) -> list[Candle]:
    return [bar(day, 9, m, 70_000 + m * 100) for m in range(1, 4)]


def write_month(store: Store, rows: list[Candle], span: tuple[date, date]) -> int:
    part = partition_of("1m", span[0])
    return store.write("1m", "005930", part, span, rows, whole_until=span[1])


def test_schema_is_int64_prices_and_kst_nanoseconds(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_month(store, day_bars(D), (D, D))
    t = store.read("1m", "005930", D, D)
    assert t.schema.field("time").type == pa.timestamp("ns", tz="Asia/Seoul")
    for name in ("open", "high", "low", "close", "volume"):
        assert t.schema.field(name).type == pa.int64()
    assert t.column("close").to_pylist() == [70_150, 70_250, 70_350]
    # the epoch underneath is UTC: 09:01 KST is 00:01 UTC
    first = t.column("time").cast(pa.int64())[0].as_py()
    utc = datetime(2026, 11, 2, 0, 1) - datetime(1970, 1, 1)
    assert first == int(utc.total_seconds()) * 1_000_000_000
    assert t.column("session").to_pylist() == ["regular"] * 3


def test_writing_the_same_rows_twice_stores_them_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    rows = day_bars(D) + day_bars(D + timedelta(days=1))
    write_month(store, rows, (D, D + timedelta(days=1)))
    write_month(store, rows, (D, D + timedelta(days=1)))
    write_month(store, day_bars(D), (D, D))  # a narrower span replaces only its own days
    t = store.read("1m", "005930", D, D + timedelta(days=1))
    assert t.num_rows == 6
    assert len(set(t.column("time").to_pylist())) == 6


def test_a_halted_day_is_missing_never_a_price_of_zero(tmp_path: Path) -> None:
    store = Store(tmp_path)
    halted = Candle(datetime(2026, 11, 3, tzinfo=KST), 0, 0, 0, 0, 0)
    traded = Candle(datetime(2026, 11, 4, tzinfo=KST), 100, 110, 90, 105, 7)
    part = partition_of("1d", D)
    store.write(
        "1d",
        "005930",
        part,
        (D, date(2026, 11, 4)),
        [halted, traded],
        whole_until=date(2026, 11, 4),
    )
    t = store.read("1d", "005930", D, date(2026, 11, 30))
    assert t.column("close").to_pylist() == [105]
    assert store.manifest("1d", "005930").covered == [(D, date(2026, 11, 4))]


def test_a_missing_month_is_named(tmp_path: Path) -> None:
    store = Store(tmp_path)
    oct_day = date(2026, 10, 5)
    write_month(store, day_bars(oct_day), (oct_day, oct_day))
    write_month(store, day_bars(D), (D, D))
    gone = part_path(tmp_path, "1m", "005930", partition_of("1m", oct_day))
    gone.unlink()
    with pytest.raises(StoreError, match=r"month=2026-10/part\.parquet: missing"):
        store.read("1m", "005930", oct_day, D)


def test_a_torn_file_is_named(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_month(store, day_bars(D), (D, D))
    path = part_path(tmp_path, "1m", "005930", partition_of("1m", D))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"month=2026-11/part\.parquet: torn"):
        store.read("1m", "005930", D, D)


def test_adjusted_applies_factors_on_read_and_the_store_keeps_raw(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_month(store, day_bars(D), (D, D))
    store.write_factors("005930", {D: 0.5})
    adj = store.read("1m", "005930", D, D, adjusted=True)
    raw = store.read("1m", "005930", D, D)
    assert adj.column("close").to_pylist() == [35_075, 35_125, 35_175]
    assert raw.column("close").to_pylist() == [70_150, 70_250, 70_350]


def test_adjusted_without_a_factor_names_the_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_month(store, day_bars(D), (D, D))
    with pytest.raises(StoreError, match=r"factors/005930/part\.parquet"):
        store.read("1m", "005930", D, D, adjusted=True)


def test_hive_readers_open_the_dataset_directly(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_month(store, day_bars(D), (D, D))
    oct_day = date(2026, 10, 5)
    write_month(store, day_bars(oct_day), (oct_day, oct_day))
    # what pandas.read_parquet("var/data/bars_1m") does underneath
    t = ds.dataset(tmp_path / "bars_1m", partitioning="hive").to_table()
    assert t.num_rows == 6
    assert set(t.column("symbol").to_pylist()) == {"005930"}  # a string, not 5930
    assert sorted(set(t.column("month").to_pylist())) == ["2026-10", "2026-11"]


def test_gaps_are_what_the_manifest_lacks() -> None:
    a, b = date(2026, 1, 1), date(2026, 1, 31)
    covered = normalise(
        [(date(2026, 1, 5), date(2026, 1, 9)), (date(2026, 1, 10), date(2026, 1, 12))]
    )
    assert covered == [(date(2026, 1, 5), date(2026, 1, 12))]
    assert gaps(covered, a, b) == [(a, date(2026, 1, 4)), (date(2026, 1, 13), b)]
    assert gaps([(a, b)], a, b) == []
