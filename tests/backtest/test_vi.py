"""VI in the backtest: a recording's 1h notices (the simulator's VI, engine/sim/vi.py) are
stored as the "vi" dataset and read back as `ViEvent`s in the order they were heard, and the
fill model (engine/backtest/fills.py) keeps an auction as the simulator does: no continuous
fill while it runs, every crossing order at the uncross price when it ends."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from engine import config
from engine.clock import KST
from engine.data.reader import iter_events
from engine.data.recorded import ImportCounts, import_recording
from engine.events import Event, Exchange, OrderState, Side, Trade, ViEvent, ViKind
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.recording_import import recorded_events
from engine.sim.simulator import Simulator
from tests.backtest.test_broker import SYM, World
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(60)
S = OrderState


def vi(active: bool) -> ViEvent:
    return ViEvent(SYM, Exchange.KRX, active, ViKind.STATIC, 55_000, 50_000, 50_000, 100000, 0, 1)


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    world = World(tmp_path)
    yield world
    await world.oms.drain(1.0)
    world.journal.close()


async def test_nothing_fills_during_a_vi_and_crossing_orders_fill_at_the_uncross(
    w: World,
) -> None:
    w.broker.on_vi(vi(True))
    buy_high = await w.submit(Side.BUY, 5, 50_500)
    buy_low = await w.submit(Side.BUY, 5, 49_000)
    market = await w.submit(Side.BUY, 2, None)
    await w.at(50)
    w.trade(50_000, 100)  # through both limits: in an auction it fills nothing
    assert w.fills() == []
    assert buy_high.state is S.ACCEPTED
    w.broker.on_vi(vi(False))
    w.trade(50_200, 6)  # the uncross: market first, then the best limit, at 50,200
    await w.at(60)
    # 2 market + 4 of 5 at 50,500 (the volume is 6); 49,000 does not cross 50,200.
    assert [(q, p) for _, q, p, _, _ in w.fills()] == [(2, 50_200), (4, 50_200)]
    assert market.state is S.FILLED
    assert buy_low.state is S.ACCEPTED
    # Continuous again: 49,000 prints through the 50,500 bid's last share (at its limit) and
    # touches the 49,000 bid, which fills from the 9 left.
    w.trade(49_000, 10)
    await w.at(70)
    assert [(q, p) for _, q, p, _, _ in w.fills()][2:] == [(1, 50_500), (5, 49_000)]


async def test_an_order_arriving_in_a_vi_takes_no_quote_and_an_ioc_ends(w: World) -> None:
    w.trade(50_000, 1)
    w.broker.on_vi(vi(True))
    w.broker.on_trade(Trade(SYM, Exchange.KRX, 100000, 50_000, 0, 0, 0, 50_100, 50_000, 0, 0, 0))
    buy = await w.submit(Side.BUY, 3, 50_100)  # would take the 50,100 ask outside a VI
    await w.at(50)
    assert w.fills() == []
    assert buy.state is S.ACCEPTED


async def test_a_simulator_vi_is_recorded_stored_and_read_back_in_order(tmp_path: Path) -> None:
    rec = tmp_path / "feed.ndjson"
    events: list[Event] = []
    base = dataclasses.replace(
        config.load(None, env={}).sim, port=0, events_per_s=300.0, vi_auction_s=0.3
    )
    async with Simulator(base) as sim:
        recorder = FrameRecorder(rec)
        async with trading_session(sim, events.append, recorder) as (_api, ws):
            await ws.subscribe(["0B", "1h"], [SYM])
            await until(lambda: sum(isinstance(e, Trade) for e in events) >= 5, within_s=10.0)
            sim.trigger_vi(SYM)
            await until(
                lambda: any(isinstance(e, ViEvent) and not e.active for e in events),
                within_s=10.0,
            )
            await until(lambda: isinstance(events[-1], Trade), within_s=10.0)
        recorder.close()
    heard = [e for e in events if isinstance(e, ViEvent)]
    assert [e.active for e in heard] == [True, False]

    data = tmp_path / "data"
    counts = ImportCounts()
    import_recording(data, recorded_events(rec, counts), counts)
    assert counts.rows["vi"] == 2
    day = datetime.fromtimestamp(heard[0].ts_recv // 10**9, KST).date()
    stored = list(iter_events(data, [SYM], ["trades", "vi"], day, day))
    vis = [i for i, e in enumerate(stored) if isinstance(e, ViEvent)]
    assert [stored[i] for i in vis] == heard  # the same notices, fields and all
    assert vis[1] > vis[0]
    # The simulator halts the symbol for the auction: no print between the two notices.
    assert not any(isinstance(e, Trade) for e in stored[vis[0] + 1 : vis[1]])
    stamps = [e.ts_recv for e in stored]
    assert stamps == sorted(stamps)
