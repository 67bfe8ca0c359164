"""Record the feed with the client's recorder, replay it through a second simulator, and
receive the same events."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine import config
from engine.events import Event, Trade
from engine.kiwoom.recorder import FrameRecorder
from engine.sim.simulator import Simulator
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(30)

N = 15


async def collect_trades(
    sim: Simulator, n: int, recorder: FrameRecorder | None = None
) -> list[Trade]:
    trades: list[Trade] = []

    def on_event(ev: Event) -> None:
        if isinstance(ev, Trade):
            trades.append(ev)

    async with trading_session(sim, on_event, recorder) as (_api, ws):
        await ws.subscribe(["0B"], ["005930"])
        await until(lambda: len(trades) >= n, within_s=10.0)
    return trades[:n]


async def test_replayed_recording_yields_the_recorded_trades(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    base = dataclasses.replace(config.load(None, env={}).sim, port=0, events_per_s=300.0)
    async with Simulator(base) as live:
        recorded = await collect_trades(live, N, FrameRecorder(path))
    assert path.stat().st_size > 0

    async with Simulator(dataclasses.replace(base, replay=str(path))) as replay:
        replayed = await collect_trades(replay, N)
    assert replayed == recorded
