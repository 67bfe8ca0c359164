"""The status page on a real admin endpoint, on an engine trading against the simulator: the
page and its event stream over HTTP, no snapshot built while nobody watches, a fill in the
stream, foreign Host names refused, and the stock list read from the simulator's ka10099."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.admin import AdminServer
from engine.clock import ManualClock
from engine.config import AdminConfig
from engine.metrics import EngineMetrics, LoopMonitor
from engine.models import ListedMarket, OrderType
from engine.sim.simulator import Simulator
from engine.status_page import StatusPage
from engine.status_page.names import SymbolNames
from tests.engine.conftest import SYMBOL, running_engine, sim_config
from tests.support import until


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The snapshots of a Server-Sent Events stream."""
    while True:
        block = await response.content.readuntil(b"\n\n")
        if block.startswith(b"data: "):
            yield orjson.loads(block[6:])


async def test_the_stream_shows_a_fill_and_nothing_is_built_while_nobody_watches(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_engine(sim, tmp_path / "state") as (trader, ws, api):
        monitor = LoopMonitor(interval_s=0.05)
        names = SymbolNames(tmp_path / "state" / "symbol_names.json")
        page = StatusPage(trader, ws, monitor, sim.clock, mode="sim", names=names)
        admin = AdminServer(
            AdminConfig(port=0),
            trader,
            ws,
            EngineMetrics(trader, ws, monitor, {}),
            monitor,
            sim.clock,
            mode="sim",
            urls={},
            status_page=page,
        )
        await admin.start()
        page.read_names(api.listed)
        base = f"http://127.0.0.1:{admin.port}"
        try:
            await until(lambda: names.get(SYMBOL) == "삼성전자", within_s=5.0)
            assert (tmp_path / "state" / "symbol_names.json").exists()
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/") as r:
                    assert r.status == 200
                    assert r.content_type == "text/html"
                    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
                    assert "<title>kiwoom-engine</title>" in await r.text()
                async with http.get(base + "/events", headers={"Host": "evil.example"}) as r:
                    assert r.status == 403
                await asyncio.sleep(1.2)  # past a period of the page's timer
                assert page.built == 0  # nobody watched: nothing was built
                async with http.get(base + "/events") as r:
                    assert r.headers["Content-Type"] == "text/event-stream"
                    stream = events(r)
                    first = await anext(stream)
                    assert first["trading"]["state"] == "active"
                    assert first["fills_today"] == 0
                    started = time.monotonic()
                    await api.buy(SYMBOL, 3, OrderType.MARKET)
                    async with asyncio.timeout(5):
                        async for snap in stream:
                            if snap["fills_today"]:
                                break
                    waited_s = time.monotonic() - started
                    (row,) = snap["fills"]
                    assert (row["symbol"], row["side"], row["qty"]) == (SYMBOL, "buy", 3)
                    assert snap["names"][SYMBOL] == "삼성전자"
                    assert snap["positions"][0]["qty"] == 3
                    assert page.built >= 2
                    # The fill came at once (within the 0.25 s throttle), not on the 1 s timer.
                    print(f"fill on the page {waited_s * 1000:.0f} ms after the order")
                await until(lambda: page.fanout.clients == 0)
        finally:
            await admin.close()


async def test_the_simulator_lists_kospi_and_kosdaq_with_names(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_engine(sim, tmp_path / "state") as (_trader, _ws, api):
        kospi = await api.listed(ListedMarket.KOSPI)
        kosdaq = await api.listed(ListedMarket.KOSDAQ)
    by_code = {x.symbol: x for x in kospi}
    assert by_code["005930"].name == "삼성전자"
    assert by_code["000660"].name == "SK하이닉스"
    assert {x.market for x in kospi} == {ListedMarket.KOSPI}
    assert kosdaq  # the simulator lists seeded KOSDAQ codes too
    assert {x.market for x in kosdaq} == {ListedMarket.KOSDAQ}
    assert not {x.symbol for x in kospi} & {x.symbol for x in kosdaq}


async def test_after_a_restart_the_page_shows_the_days_fills_from_the_journal(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with running_engine(sim, state) as (trader, _ws, api):
        await api.buy(SYMBOL, 2, OrderType.MARKET)
        await api.buy(SYMBOL, 1, OrderType.MARKET)
        await until(lambda: trader.portfolio.position_qty(SYMBOL) == 3, within_s=5.0)
    async with running_engine(sim, state) as (trader, ws, _api):
        names = SymbolNames(state / "symbol_names.json")
        page = StatusPage(trader, ws, LoopMonitor(), sim.clock, mode="sim", names=names)
        page.start()
        try:
            snap = page.snapshot()
        finally:
            await page.close()
    assert snap["fills_today"] == 2
    assert [(f["symbol"], f["side"], f["qty"]) for f in snap["fills"]] == [
        (SYMBOL, "buy", 1),
        (SYMBOL, "buy", 2),
    ]


async def test_the_pages_timer_waits_on_the_engine_clock(sim: Simulator, tmp_path: Path) -> None:
    # The equity line's step (EQUITY_EVERY_S, 5 s) is counted on the page's clock: a clock
    # that does not move adds no point, five seconds of it add one, at its time.
    clock = ManualClock()
    async with running_engine(sim, tmp_path / "state") as (trader, ws, _api):
        names = SymbolNames(tmp_path / "state" / "symbol_names.json")
        page = StatusPage(trader, ws, LoopMonitor(), clock, mode="sim", names=names)
        page.start()
        try:
            assert len(page.equity.points) == 1
            for _ in range(5):
                await until(lambda: clock.sleeping == 1)
                assert len(page.equity.points) == 1
                clock.advance(1.0)
            await until(lambda: len(page.equity.points) == 2)
        finally:
            await page.close()
    start_ms = int(ManualClock().now().timestamp() * 1000)
    assert [t for t, _ in page.equity.points] == [start_ms, start_ms + 5000]


async def test_after_a_restart_the_equity_line_starts_with_the_days_journaled_snapshots(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with running_engine(sim, state) as (trader, _ws, api):
        await api.buy(SYMBOL, 2, OrderType.MARKET)
        await until(lambda: trader.portfolio.position_qty(SYMBOL) == 2, within_s=5.0)
        for _ in range(3):
            assert trader.record_equity()
    async with running_engine(sim, state) as (trader, ws, _api):
        day = sim.clock.now().strftime("%Y%m%d")
        # Read beside the engine, with no await before the page starts: what it must show.
        with sqlite3.connect(state / "journal.sqlite3") as db:
            journaled = db.execute(
                "SELECT ts_ns / 1000000, cash + positions_value FROM equity"
                " WHERE trading_day = ? ORDER BY ts_ns",
                (day,),
            ).fetchall()
        names = SymbolNames(state / "symbol_names.json")
        page = StatusPage(trader, ws, LoopMonitor(), sim.clock, mode="sim", names=names)
        page.start()
        try:
            line = page.snapshot()["equity"]
        finally:
            await page.close()
    # The first run's start, three marks and its stop, and this run's start (at least).
    assert len(journaled) >= 5
    assert [tuple(p) for p in line[: len(journaled)]] == journaled
    assert len(line) == len(journaled) + 1  # and the point sampled as the page started
    assert line[-1][0] >= journaled[-1][0]
