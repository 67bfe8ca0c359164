"""The simulator's WebSocket endpoint seen by a bare aiohttp client (no engine client code)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from engine.config import WS_PATH
from engine.sim.faults import Faults
from engine.sim.ws import SimRealtime

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def served() -> AsyncIterator[tuple[SimRealtime, str]]:
    faults = Faults(ws_pong_timeout_s=0.2, ws_system_frames_before_login=0)
    rt = SimRealtime(0.1, token_ok=lambda t: t == "good", faults=faults, max_batch=4)
    app = web.Application()
    app.router.add_get(WS_PATH, rt.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield rt, f"http://127.0.0.1:{runner.addresses[0][1]}{WS_PATH}"
    finally:
        await rt.drop_all()
        await runner.cleanup()


async def recv(ws: aiohttp.ClientWebSocketResponse, skip_ping: bool = True) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=2.0)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame: dict[str, Any] = orjson.loads(msg.data)
        if skip_ping and frame["trnm"] == "PING":
            await ws.send_str(msg.data)
            continue
        return frame


async def login(ws: aiohttp.ClientWebSocketResponse, token: str = "good") -> dict[str, Any]:
    await ws.send_str(orjson.dumps({"trnm": "LOGIN", "token": token}).decode())
    return await recv(ws)


async def test_login_ack_system_frames_and_failure(served: tuple[SimRealtime, str]) -> None:
    rt, url = served
    rt.faults.ws_system_frames_before_login = 1
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            assert (await login(ws))["trnm"] == "SYSTEM"
            ack = await recv(ws)
            assert ack == {"trnm": "LOGIN", "return_code": 0, "return_msg": "", "sor_yn": "Y"}
        async with http.ws_connect(url) as ws:
            rt.faults.ws_system_frames_before_login = 0
            fail = await login(ws, "bad")
            assert fail["return_code"] == 805004
            assert "CODE=8005" in fail["return_msg"]
            msg = await ws.receive(timeout=2.0)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_client_that_does_not_echo_ping_is_dropped(served: tuple[SimRealtime, str]) -> None:
    rt, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str('{"trnm":"LOGIN","token":"good"}')
        pings = 0
        while True:
            msg = await ws.receive(timeout=2.0)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            pings += orjson.loads(msg.data)["trnm"] == "PING"
        assert pings >= 1
        assert rt.ping_kills == 1


async def test_reg_routing_batching_and_remove(served: tuple[SimRealtime, str]) -> None:
    rt, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await login(ws)
        reg = {
            "trnm": "REG",
            "grp_no": "1",
            "refresh": "1",
            "data": [{"item": ["005930"], "type": ["0B"]}, {"item": [""], "type": ["00"]}],
        }
        await ws.send_str(orjson.dumps(reg).decode())
        assert await recv(ws) == {"trnm": "REG", "return_code": 0, "return_msg": ""}
        for i in range(6):
            rt.publish({"type": "0B", "item": "005930", "values": {"20": str(i)}})
        rt.publish({"type": "0B", "item": "000660", "values": {}})  # not registered
        rt.publish({"type": "00", "item": "", "values": {"913": "접수"}})
        got: list[dict[str, Any]] = []
        frames = 0
        while len(got) < 7:
            frame = await recv(ws)
            assert frame["trnm"] == "REAL"
            frames += 1
            got.extend(frame["data"])
        assert frames < 7  # several entries per REAL frame
        assert [e["item"] for e in got].count("000660") == 0
        assert got[-1]["type"] == "00"
        remove = {"trnm": "REMOVE", "grp_no": "1", "data": [{"item": ["005930"], "type": ["0B"]}]}
        await ws.send_str(orjson.dumps(remove).decode())
        assert (await recv(ws))["return_code"] == 0
        assert rt.registered_pairs() == {("00", "")}


async def test_bad_reg_and_group_limit_are_refused(served: tuple[SimRealtime, str]) -> None:
    rt, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await login(ws)
        await ws.send_str('{"trnm":"REG","grp_no":"1","data":"x"}')
        assert (await recv(ws))["return_code"] == 1
        items = [f"{i:06d}" for i in range(101)]
        big = {"trnm": "REG", "grp_no": "1", "data": [{"item": items, "type": ["0B"]}]}
        await ws.send_str(orjson.dumps(big).decode())
        assert (await recv(ws))["return_code"] == 1
        assert rt.registered_pairs() == set()


async def test_frame_delay_knob(served: tuple[SimRealtime, str]) -> None:
    rt, url = served
    rt.faults.ws_frame_delay_s = 0.3
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        t0 = loop.time()
        assert (await login(ws))["return_code"] == 0
        assert loop.time() - t0 >= 0.25


async def test_account_entries_are_never_dropped_when_the_queue_is_full(
    served: tuple[SimRealtime, str],
) -> None:
    rt, url = served
    rt.max_pending = 5
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await login(ws)
        reg = {
            "trnm": "REG",
            "grp_no": "1",
            "data": [{"item": ["005930"], "type": ["0B"]}, {"item": [""], "type": ["00", "04"]}],
        }
        rt.faults.ws_silent = True  # the sender holds everything: the client "does not keep up"
        await ws.send_str(orjson.dumps(reg).decode())
        rt.faults.ws_silent = False
        assert await recv(ws) == {"trnm": "REG", "return_code": 0, "return_msg": ""}
        rt.faults.ws_silent = True
        for i in range(4):
            rt.publish({"type": "00", "item": "", "values": {"9203": str(i)}})
            rt.publish({"type": "0B", "item": "005930", "values": {"20": str(i)}})
        rt.publish({"type": "04", "item": "", "values": {"9001": "005930"}})
        for i in range(6):
            rt.publish({"type": "00", "item": "", "values": {"9203": str(10 + i)}})
        (session,) = rt.sessions
        assert session.dropped == rt.dropped == 4  # every 0B, and nothing else
        rt.faults.ws_silent = False
        session.wake.set()
        got: list[dict[str, Any]] = []
        while len(got) < 11:
            got.extend((await recv(ws))["data"])
        assert [e["type"] for e in got] == ["00"] * 4 + ["04"] + ["00"] * 6
        assert [e["values"].get("9203") for e in got if e["type"] == "00"] == [
            str(i) for i in (0, 1, 2, 3, 10, 11, 12, 13, 14, 15)
        ]


async def test_reg_of_an_unknown_realtime_type_is_refused(served: tuple[SimRealtime, str]) -> None:
    rt, url = served
    rt.faults.ws_system_frames_before_login = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await login(ws))["return_code"] == 0
        await ws.send_str(
            '{"trnm":"REG","grp_no":"1","refresh":"1","data":[{"item":["005930"],"type":["ZZ"]}]}'
        )
        ack = await recv(ws)
    assert ack["return_code"] == 1
    assert "ZZ" in ack["return_msg"]
    assert rt.registered_pairs() == set()
