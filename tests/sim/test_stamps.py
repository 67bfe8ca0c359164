"""`sim.stamp_file`: the simulator stamps every REAL frame it writes and every order it reads."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import config
from engine.events import Event
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.models import OrderType
from engine.sim.simulator import SimStartupError, Simulator
from tests.engine.conftest import SYMBOL, engine_config, sim_config
from tests.support import until


async def test_stamps_name_each_real_frame_and_each_order_by_its_number(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps.txt"
    sim = Simulator(sim_config(stamp_file=str(stamps), events_per_s=500.0))
    async with sim:
        cfg = engine_config(sim, tmp_path / "state")
        seen: list[Event] = []
        async with KiwoomRest.from_config(cfg) as rest:
            api = KiwoomApi(rest)
            ws = KiwoomWebSocket(
                cfg.ws_url, rest.tokens.token, rest.tokens.invalidate, on_event=seen.append
            )
            await ws.start()
            try:
                await ws.subscribe(["0B"], [SYMBOL])
                await ws.subscribe(["00"], [])
                await until(lambda: ws.stats.real_frames >= 5)
                before = time.monotonic_ns()
                ack = await api.buy(SYMBOL, 1, OrderType.MARKET)
                after = time.monotonic_ns()
                await sim.realtime.flush()
                await until(lambda: ws.stats.real_frames >= 8)
            finally:
                await ws.close()
            frames_seen = ws.stats.real_frames
    lines = [line.split() for line in stamps.read_text().splitlines()]
    frames = [ln for ln in lines if ln[0] == "F"]
    orders = [ln for ln in lines if ln[0] == "O"]
    # One session, its frames numbered 1, 2, ... in write order on one clock that never goes
    # back; every frame the client read was stamped (more may have been on the wire).
    assert {ln[2] for ln in frames} == {"1"}
    assert [int(ln[3]) for ln in frames] == list(range(1, len(frames) + 1))
    stamps_ns = [int(ln[1]) for ln in frames]
    assert stamps_ns == sorted(stamps_ns)
    assert 8 <= frames_seen <= len(frames)
    # The order: read between the client's send and its answer, named by the number it got.
    assert orders == [["O", orders[0][1], "kt10000", ack.order_no]]
    assert before <= int(orders[0][1]) <= after


async def test_no_stamps_by_default(tmp_path: Path) -> None:
    assert config.load(None, env={}).sim.stamp_file is None
    async with Simulator(sim_config(events_per_s=500.0)) as sim:
        assert sim.state.stamps is None
        assert sim.realtime.stamps is None


async def test_an_unwritable_stamp_file_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    sim = Simulator(sim_config(stamp_file=str(tmp_path / "missing-dir" / "stamps.txt")))
    with pytest.raises(SimStartupError, match=r"sim\.stamp_file: cannot open"):
        await sim.__aenter__()
    await sim.close()
