"""KiwoomCharts + the puller against the simulator's ka10079 / ka10080 over real sockets, on
a clock set to a known evening (the chart days are then fixed): the store holds exactly the
rows `call_all` returns for the same chart, ticks with their order within a second."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path

import pytest

from engine import config
from engine.clock import KST, OffsetClock
from engine.config import RateConfig
from engine.data.pull import Puller
from engine.data.store import Store
from engine.kiwoom.charts import KiwoomCharts
from engine.kiwoom.rest import KiwoomRest
from engine.sim.simulator import Simulator

pytestmark = pytest.mark.timeout(60)

EVENING = datetime(2026, 11, 27, 20, 0, tzinfo=KST)  # a Friday, the session over


@pytest.fixture
async def env() -> AsyncIterator[tuple[Simulator, KiwoomRest, OffsetClock]]:
    clock = OffsetClock((EVENING - datetime.now(KST)).total_seconds())
    base = config.load(None, env={})
    async with Simulator(dataclasses.replace(base.sim, port=0), clock) as sim:
        kiwoom = dataclasses.replace(
            base.kiwoom, rest_url=sim.rest_url, rate=RateConfig(account_per_s=500.0)
        )
        cfg = config.load(None, env={})
        cfg = dataclasses.replace(cfg, kiwoom=kiwoom)
        async with KiwoomRest.from_config(cfg, clock) as rest:
            yield sim, rest, clock


def _label(t: datetime) -> str:
    return t.astimezone(KST).strftime("%Y%m%d%H%M%S")


async def test_minute_bars_land_as_the_chart_has_them(
    env: tuple[Simulator, KiwoomRest, OffsetClock], tmp_path: Path
) -> None:
    _, rest, clock = env
    pages = await rest.call_all(
        "ka10080", {"stk_cd": "005930", "tic_scope": "5", "upd_stkpc_tp": "0"}
    )
    assert not pages.truncated
    truth = sorted((r["cntr_tm"], abs(int(r["cur_prc"]))) for r in pages.rows)
    days = sorted({t[:8] for t, _ in truth})
    start = date(int(days[0][:4]), int(days[0][4:6]), int(days[0][6:]))
    store = Store(tmp_path)
    stats = await Puller(KiwoomCharts(rest, clock), store, clock).pull(
        "005930", "5m", start, EVENING.date()
    )
    t = store.read("5m", "005930", start, EVENING.date())
    got = sorted(
        zip(
            (_label(x) for x in t.column("time").to_pylist()),
            t.column("close").to_pylist(),
            strict=True,
        )
    )
    assert got == truth
    assert stats.reread_pages == 0
    assert stats.factor_pages >= 2  # raw and adjusted daily closes


async def test_ticks_keep_every_print(
    env: tuple[Simulator, KiwoomRest, OffsetClock], tmp_path: Path
) -> None:
    _, rest, clock = env
    pages = await rest.call_all(
        "ka10079", {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "0"}
    )
    truth = sorted((r["cntr_tm"], int(r["cur_prc"]), int(r["trde_qty"])) for r in pages.rows)
    assert truth
    store = Store(tmp_path)
    day = EVENING.date()
    await Puller(KiwoomCharts(rest, clock), store, clock).pull("005930", "tick", day, day)
    t = store.read("tick", "005930", day, day)
    got = sorted(
        zip(
            (_label(x) for x in t.column("time").to_pylist()),
            t.column("price").to_pylist(),
            t.column("qty").to_pylist(),
            strict=True,
        )
    )
    assert got == truth
