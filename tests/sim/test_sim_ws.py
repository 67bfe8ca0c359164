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
from engine.sim.ws import (
    MAX_ITEM_CHARS,
    MAX_REG_FRAME_CHARS,
    MAX_REGISTRATIONS,
    MAX_SESSIONS,
    REG_HISTORY,
    SimRealtime,
)

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


# --- memory bounds against any client ---------------------------------------------------------


def reg(grp: str, items: list[str], types: list[str], trnm: str = "REG") -> str:
    return orjson.dumps(
        {"trnm": trnm, "grp_no": grp, "data": [{"item": items, "type": types}]}
    ).decode()


async def test_reg_history_is_bounded_and_oversized_frames_are_refused_unkept(
    served: tuple[SimRealtime, str],
) -> None:
    rt, url = served
    huge = reg("1", ["005930"] * (MAX_REG_FRAME_CHARS // 8), ["0B"])
    assert len(huge) > MAX_REG_FRAME_CHARS
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await login(ws)
        for _ in range(REG_HISTORY + 8):
            await ws.send_str(huge)
            ack = await recv(ws)
            assert ack["return_code"] == 1
        assert len(rt.reg_frames) == 0  # refused before anything was kept
        for i in range(REG_HISTORY + 8):
            await ws.send_str(reg("1", [f"{i:06d}"], ["0B"], "REMOVE"))
            assert (await recv(ws))["return_code"] == 0
    assert len(rt.reg_frames) == REG_HISTORY
    assert rt.reg_frames[-1]["data"][0]["item"] == [f"{REG_HISTORY + 7:06d}"]  # newest kept


async def test_a_session_holds_a_bounded_number_of_registrations(
    served: tuple[SimRealtime, str],
) -> None:
    rt, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await login(ws)
        await ws.send_str(reg("1", ["9" * (MAX_ITEM_CHARS + 1)], ["0B"]))
        assert (await recv(ws))["return_code"] == 1
        (session,) = rt.sessions
        # REMOVE of groups never registered leaves nothing behind.
        for g in range(50):
            await ws.send_str(reg(str(g), ["005930"], ["0B"], "REMOVE"))
            assert (await recv(ws))["return_code"] == 0
        assert session.groups == {}
        types = ["0B", "0C", "0D"]
        per_group = 100 * len(types)
        acks = []
        for g in range(MAX_REGISTRATIONS // per_group + 2):
            await ws.send_str(reg(str(g), [f"{g:03d}{i:03d}" for i in range(100)], types))
            acks.append((await recv(ws))["return_code"])
        accepted = MAX_REGISTRATIONS // per_group
        assert acks == [0] * accepted + [1, 1]
        assert sum(len(g) for g in session.groups.values()) == accepted * per_group
        # A refused REG leaves the group as it was (it used to lose the pairs it repeated).
        await ws.send_str(reg("0", ["000000", *(f"9{i:05d}" for i in range(100))], ["0B"]))
        assert (await recv(ws))["return_code"] == 1
        assert ("0B", "000000") in session.groups["0"]
        assert ("0B", "000000") in session.registered


async def test_connections_past_the_limit_are_closed_on_arrival(
    served: tuple[SimRealtime, str],
) -> None:
    rt, url = served
    rt.faults.ws_ping_stop = True  # the idle connections must not be dropped for PINGs
    async with aiohttp.ClientSession() as http:
        conns = [await http.ws_connect(url) for _ in range(MAX_SESSIONS)]
        try:
            for ws in conns:
                assert (await login(ws))["return_code"] == 0
            async with http.ws_connect(url) as extra:
                msg = await extra.receive(timeout=2.0)
                assert msg.type is aiohttp.WSMsgType.CLOSE
                assert extra.close_code == 1000
            assert rt.refused_sessions == 1
            assert len(rt.sessions) == MAX_SESSIONS
            await conns.pop().close()
            async with http.ws_connect(url) as again:  # a freed place is served again
                assert (await login(again))["return_code"] == 0
        finally:
            for ws in conns:
                await ws.close()


async def test_a_client_that_does_not_read_holds_a_bounded_queue(
    served: tuple[SimRealtime, str],
) -> None:
    rt, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await login(ws)
        await ws.send_str(reg("1", ["005930"], ["0B"]))
        assert (await recv(ws))["return_code"] == 0
        rt.faults.ws_silent = True  # the sender holds everything, as for a client that stalls
        for i in range(25_000):
            rt.publish({"type": "0B", "item": "005930", "values": {"20": str(i)}})
        (session,) = rt.sessions
        assert len(session.pending) == rt.max_pending <= 10_000
        assert session.dropped == 25_000 - rt.max_pending
