"""The simulator's market generator against a real client: its rate has an upper limit, and a
feed that falls behind drops what it owes instead of building a backlog."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine import config
from engine.clock import ManualClock
from engine.sim.simulator import MAX_ENTRIES_PER_PUMP, Simulator
from tests.support import until

pytestmark = pytest.mark.timeout(30)


def test_events_per_s_has_an_upper_limit(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[sim]\nevents_per_s = 1e6\n")
    with pytest.raises(config.ConfigError, match=r"sim\.events_per_s: must be between 0 and"):
        config.load(path, env={})
    path.write_text("[sim]\nevents_per_s = 100000.0\n")
    assert config.load(path, env={}).sim.events_per_s == 100_000.0


async def test_a_feed_that_falls_behind_drops_its_debt_instead_of_a_backlog() -> None:
    clock = ManualClock()
    base = config.load(None, env={}).sim
    sim_cfg = dataclasses.replace(base, port=0, events_per_s=1000.0)
    async with (
        Simulator(sim_cfg, clock) as sim,
        aiohttp.ClientSession() as http,
    ):
        sim.realtime.faults.ws_system_frames_before_login = 0
        body = {"grant_type": "client_credentials", "appkey": "k-1", "secretkey": "s-1"}
        async with http.post(
            sim.rest_url + "/oauth2/token", json=body, headers={"api-id": "au10001"}
        ) as r:
            token = (await r.json(content_type=None))["token"]
        async with http.ws_connect(sim.ws_url) as ws:
            await ws.send_str(orjson.dumps({"trnm": "LOGIN", "token": token}).decode())
            assert orjson.loads((await ws.receive(timeout=2.0)).data)["return_code"] == 0
            data = [{"item": list(base.symbols), "type": ["0B", "0C", "0D"]}]
            reg = {"trnm": "REG", "grp_no": "1", "data": data}
            await ws.send_str(orjson.dumps(reg).decode())
            assert orjson.loads((await ws.receive(timeout=2.0)).data)["return_code"] == 0
            (session,) = sim.realtime.sessions
            sim.realtime.faults.ws_silent = True  # keep what is published in the queue
            # The loop was held up for a minute (a suspended process, a busy machine): the
            # generator owes 60,000 events and pays at most one pump's worth.
            clock.advance(60.0)
            await until(lambda: bool(session.pending))
            assert len(session.pending) <= MAX_ENTRIES_PER_PUMP
            assert sim.events_skipped == 60_000 - len(session.pending)
