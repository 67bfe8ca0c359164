"""The recorder keeps one KST day a file: the first frame after midnight closes the day's file
under its dated name and goes on at the configured path; a file left from an earlier day is
closed when the recorder opens it. The daemon imports each closed file into the history store
in a subprocess (the daemon itself never imports engine.data: lint-imports holds that line)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest

from engine import config, daemon
from engine.clock import KST, ManualClock, OffsetClock
from engine.kiwoom.recorder import FrameRecorder
from tests.integration.test_daemon import Ready, sim_config
from tests.support import until


def frames(path: Path) -> list[str]:
    return [orjson.loads(line)["frame"] for line in path.read_bytes().splitlines()]


def test_a_day_s_file_is_closed_under_its_date_at_midnight(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 3, 23, 59, 59, tzinfo=KST))
    closed: list[Path] = []
    rec = FrameRecorder(tmp_path / "feed.ndjson", clock, rotate_daily=True, on_rotate=closed.append)
    rec.record('{"a": 1}')
    rec.record('{"a": 2}')
    assert closed == []
    clock.advance(1.5)  # 00:00:00.5 on the 4th
    rec.record('{"b": 1}')
    rec.close()
    day = tmp_path / "feed.2026-03-03.ndjson"
    assert closed == [day]
    assert frames(day) == ['{"a": 1}', '{"a": 2}']
    assert frames(tmp_path / "feed.ndjson") == ['{"b": 1}']


def test_without_rotation_midnight_changes_nothing(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 3, 23, 59, 59, tzinfo=KST))
    rec = FrameRecorder(tmp_path / "feed.ndjson", clock)
    rec.record("x")
    clock.advance(5)
    rec.record("y")
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.ndjson"]
    assert frames(tmp_path / "feed.ndjson") == ["x", "y"]


def test_a_file_left_from_an_earlier_day_is_closed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(orjson.dumps({"ts": 1.0, "frame": "old"}) + b"\n")
    before = datetime(2026, 3, 2, 15, 0, tzinfo=KST).timestamp()
    os.utime(path, (before, before))
    (tmp_path / "feed.2026-03-02.ndjson").write_text("")  # a name taken: never overwritten
    closed: list[Path] = []
    clock = ManualClock(datetime(2026, 3, 3, 9, 0, tzinfo=KST))
    rec = FrameRecorder(path, clock, rotate_daily=True, on_rotate=closed.append)
    rec.record("new")
    rec.close()
    assert closed == [tmp_path / "feed.2026-03-02.1.ndjson"]
    assert frames(closed[0]) == ["old"]
    assert frames(path) == ["new"]


@pytest.mark.timeout(90)
async def test_the_daemon_imports_the_closed_day_into_the_store_in_a_subprocess(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    path.write_text(f'[data]\ndir = "{data}"\n', encoding="utf-8")
    rec = tmp_path / "feed.ndjson"
    base = sim_config(tmp_path / "state", events_per_s=300.0)
    cfg = dataclasses.replace(
        base,
        data=config.load(path, env={}).data,
        daemon=dataclasses.replace(base.daemon, record=str(rec)),
        source=str(path),
    )
    now = datetime.now(KST)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), KST)
    clock = OffsetClock((midnight - now).total_seconds() - 3.0)  # 3 s before KST midnight
    day = (midnight - timedelta(days=1)).date()
    stop = asyncio.Event()
    ready = Ready()
    task = asyncio.create_task(daemon.run(cfg, stop=stop, on_ready=ready, clock=clock))
    try:
        trader = await ready.wait()
        closed = tmp_path / f"feed.{day.isoformat()}.ndjson"
        await until(closed.exists, within_s=15.0)
        recorded = sum(
            1
            for f in frames(closed)
            for e in orjson.loads(f).get("data", [])
            if isinstance(e, dict) and e.get("type") == "0B"
        )
        assert recorded > 0

        def stored() -> int:
            if not (data / "trades").exists():
                return 0
            return int(ds.dataset(data / "trades", partitioning="hive").count_rows())

        # The day's trades, every one, and only the day's (the new day's go on in feed.ndjson).
        await until(lambda: stored() >= recorded, within_s=45.0)
        assert stored() == recorded
        assert trader.clock.now().date() > day  # the daemon went on into the new day
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 20) == daemon.EXIT_OK
    assert frames(rec)  # the new day's file
