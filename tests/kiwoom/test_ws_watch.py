"""`watch` end to end: token from the simulator's REST side, events from its WebSocket side."""

from __future__ import annotations

import asyncio
import contextlib
import io

import orjson
import pytest
from aiohttp import web

from engine.config import SIM_APPKEY, SIM_SECRETKEY, WS_PATH, Config, KiwoomConfig, SimConfig
from engine.kiwoom.errors import ValidationError
from engine.secrets import Secret
from engine.sim.server import start
from engine.sim.state import build_state
from engine.sim.ws import SimRealtime
from engine.watch import check_request, watch
from tests.support import until

pytestmark = pytest.mark.timeout(20)


async def test_watch_prints_count_events_as_json_lines() -> None:
    state = build_state(SimConfig(host="127.0.0.1", port=0))
    rt = SimRealtime(5.0, token_ok=state.tokens.is_valid, clock=state.clock, faults=state.faults)
    runner, port = await start(state, [web.get(WS_PATH, rt.handle)])
    cfg = Config(
        kiwoom=KiwoomConfig(
            mode="sim",
            rest_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}{WS_PATH}",
            appkey=Secret(SIM_APPKEY),
            secretkey=Secret(SIM_SECRETKEY),
        )
    )

    async def feed() -> None:
        i = 0
        while True:
            i += 1
            entry = {"20": "090000", "10": f"+{70000 + 100 * (i % 3)}", "15": "-3", "13": str(i)}
            rt.publish({"type": "0B", "name": "주식체결", "item": "005930_NX", "values": entry})
            await asyncio.sleep(0.01)

    out = io.StringIO()
    feeder = asyncio.create_task(feed())
    try:
        rc = await watch(cfg, "0B", ["005930_NX"], 3, out)
    finally:
        feeder.cancel()
        await rt.drop_all()
        await runner.cleanup()
    assert rc == 0
    # One-shot: the token is left valid for whoever shares the app key (a daemon).
    assert state.request_counts["au10002"] == 0
    assert state.tokens.issued_count == 1
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 3
    assert lines[0]["event"] == "Trade"
    assert lines[0]["symbol"] == "005930"
    assert lines[0]["exchange"] == "NXT"
    assert lines[0]["qty"] == -3
    assert isinstance(lines[0]["price"], int)


async def test_watch_prints_a_stale_feed_without_counting_it() -> None:
    state = build_state(SimConfig(host="127.0.0.1", port=0))
    rt = SimRealtime(5.0, token_ok=state.tokens.is_valid, clock=state.clock, faults=state.faults)
    runner, port = await start(state, [web.get(WS_PATH, rt.handle)])
    cfg = Config(
        kiwoom=KiwoomConfig(
            mode="sim",
            rest_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}{WS_PATH}",
            ws_stale_s=0.3,
            ws_stale_grace_s=10.0,
            appkey=Secret(SIM_APPKEY),
            secretkey=Secret(SIM_SECRETKEY),
        )
    )
    trade = {
        "type": "0B",
        "item": "005930",
        "values": {"20": "090000", "10": "+70000", "15": "+1", "13": "1"},
    }
    out = io.StringIO()
    task = asyncio.create_task(watch(cfg, "0B", ["005930"], 2, out))
    try:
        await until(lambda: bool(rt.registered_pairs()))
        rt.publish(trade)
        await until(lambda: '"Trade"' in out.getvalue())
        state.faults.ws_silent = True
        await until(lambda: '"FeedStale"' in out.getvalue())
        state.faults.ws_silent = False
        rt.publish(trade)
        assert await asyncio.wait_for(task, 5) == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await rt.drop_all()
        await runner.cleanup()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["Trade", "FeedStale", "FeedResumed", "Trade"]
    assert lines[1]["silent_s"] >= 0.3


def test_only_the_account_types_are_watched_without_items() -> None:
    check_request("00", [], None)  # registered with item "" by the client itself
    check_request("04", [], 1)
    for rt_type, items, count in [("0B", [], None), ("0D", ["005930", ""], None), (" ", [], 1)]:
        with pytest.raises(ValidationError):
            check_request(rt_type, items, count)
    with pytest.raises(ValidationError, match="--count"):
        check_request("0B", ["005930"], 0)
