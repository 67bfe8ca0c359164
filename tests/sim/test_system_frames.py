"""`sim.system_frames_before_login`: how many SYSTEM frames precede the LOGIN ack, from the
config file through a running simulator to a raw WebSocket client."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine import config
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.simulator import Simulator

pytestmark = pytest.mark.timeout(20)


async def handshake(sim: Simulator) -> list[str]:
    """Issue a token, open the WebSocket, send LOGIN: the `trnm` of every frame up to and
    including the LOGIN ack."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{sim.rest_url}/oauth2/token",
            json={"grant_type": "client_credentials", "appkey": "k-123456", "secretkey": "s-1"},
            headers={"api-id": "au10001"},
        ) as r:
            token = (await r.json())["token"]
        async with session.ws_connect(sim.ws_url) as ws:
            await ws.send_str(orjson.dumps({"trnm": "LOGIN", "token": token}).decode())
            seen: list[str] = []
            while not seen or seen[-1] != "LOGIN":
                frame = orjson.loads(await ws.receive_str(timeout=5))
                seen.append(frame["trnm"])
                if frame["trnm"] == "LOGIN":
                    assert frame["return_code"] == 0
            return seen


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", ["SYSTEM", "LOGIN"]),  # the default: as production may send
        ("system_frames_before_login = 0\n", ["LOGIN"]),  # a plain handshake
        ("system_frames_before_login = 3\n", ["SYSTEM", "SYSTEM", "SYSTEM", "LOGIN"]),
    ],
)
async def test_system_frames_before_the_login_ack_follow_the_config(
    tmp_path: Path, setting: str, expected: list[str]
) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f"[sim]\nport = 0\n{setting}")
    cfg = config.load(p, env={})
    async with Simulator(cfg.sim) as sim:
        assert await handshake(sim) == expected
        sim.state.faults.clear()  # clearing the fault knobs goes back to the configured count
        assert await handshake(sim) == expected


async def test_the_engine_client_logs_in_without_system_frames() -> None:
    base = config.load(None, env={})
    sim_cfg = dataclasses.replace(base.sim, port=0, system_frames_before_login=0)
    async with Simulator(sim_cfg) as sim:
        kiwoom = dataclasses.replace(base.kiwoom, rest_url=sim.rest_url, ws_url=sim.ws_url)
        async with KiwoomRest.from_config(dataclasses.replace(base, kiwoom=kiwoom)) as rest:
            ws = KiwoomWebSocket(sim.ws_url, rest.tokens.token, rest.tokens.invalidate)
            try:
                await ws.start()
                assert ws.sessions == 1
                assert sim.realtime.logins == 1
            finally:
                await ws.close()
