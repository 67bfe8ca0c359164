"""Issue 15's market-state frames through the recorder and back: a daemon records its feed
(`daemon.record`) while the simulator sets off a VI, moves the session and changes a
condition's members; that recording, replayed by a second simulator (`sim.replay`) to a second
daemon, hands its strategy the same VI, session, condition and other-type events, and the
second daemon receives the same 02 / 1h / 0s / 0g / 0J entries. Over real sockets, through the
daemon's own start-up path (engine.daemon.assemble)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.config import RealtimeConfig, SimConditionConfig, StrategyConfig
from engine.daemon import Running, assemble
from engine.events import Exchange, SessionState
from engine.kiwoom.recorder import read_recording
from engine.plugins import load_all
from engine.sim.simulator import Simulator
from tests.engine.conftest import SYMBOL, engine_config, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

MANUAL = (SimConditionConfig("0", "수동0", "manual"), SimConditionConfig("1", "수동1", "manual"))
FIRST, SECOND = "035420", "051910"
"""Members of the watched condition: FIRST at start, SECOND replaces it later. Neither is in
`[daemon] symbols`, so their 0g comes from the strategy's run-time subscription."""
MARKET_TYPES = ("02", "1h", "0s", "0g", "0J")

STRATEGY = """
class Rec(Strategy):
    def on_start(self):
        self.hits = []
        self.vis = []
        self.sessions = []
        self.realtime = []

    def on_condition(self, hit):
        self.hits.append(hit)
        if hit.entered:
            self.subscribe(hit.symbol, data=("trades",))

    def on_vi(self, vi):
        self.vis.append(vi)

    def on_session(self, session):
        self.sessions.append(session)

    def on_realtime(self, event):
        self.realtime.append(event)
"""

SECTOR = {"20": "101500", "10": "+2650.12", "11": "+12.30", "12": "+0.47"}


def rec_strategy(tmp: Path) -> StrategyConfig:
    tmp.mkdir()
    return write_strategy(
        tmp,
        "rec",
        STRATEGY,
        "Rec",
        symbols=(SYMBOL,),
        conditions=("수동0",),
        realtime=(RealtimeConfig(type="0J", items=("001",)),),
    )


@asynccontextmanager
async def daemon(sim: Simulator, tmp: Path, record: Path) -> AsyncIterator[Running]:
    strat = rec_strategy(tmp)
    cfg = engine_config(sim, tmp / "state", (strat,))
    cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, record=str(record)))
    loaded, problems = load_all(cfg)
    assert not problems, problems
    async with AsyncExitStack() as stack:
        running = await assemble(cfg, stack, sim.clock, loaded)
        try:
            yield running
        finally:
            await running.trader.stop(cancel_open=False, timeout_s=3.0)


def handler_calls(running: Running) -> dict[str, list[Any]]:
    strat: Any = running.trader.host.by_name["rec"].instance
    return {
        "hits": list(strat.hits),
        "vis": list(strat.vis),
        "sessions": list(strat.sessions),
        "realtime": list(strat.realtime),
    }


def changes(calls: dict[str, list[Any]]) -> dict[str, int]:
    """How many calls of each handler, the session notices that only state regular (the state
    a registration starts with) not counted."""
    out = {k: len(v) for k, v in calls.items()}
    out["sessions"] = sum(s.state is not SessionState.REGULAR for s in calls["sessions"])
    return out


async def market(sim: Simulator, **body: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/_sim/market", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


def received(path: Path) -> Counter[bytes]:
    """The market-state entries a daemon received (as sent, whatever their order)."""
    out: Counter[bytes] = Counter()
    for rec in read_recording(path):
        frame = orjson.loads(rec.frame)
        if frame.get("trnm") == "REAL":
            for e in frame["data"]:
                if e["type"] in MARKET_TYPES:
                    out[orjson.dumps(e, option=orjson.OPT_SORT_KEYS)] += 1
    return out


async def test_a_recorded_vi_session_and_condition_replay_to_the_same_handler_calls(
    tmp_path: Path,
) -> None:
    live_cfg = sim_config(
        control=True,
        conditions=MANUAL,
        vi_auction_s=0.3,
        vi_static_pct=29.0,  # only the control endpoint starts a VI
        vi_dynamic_pct=29.0,
    )
    recording = tmp_path / "feed.ndjson"
    async with Simulator(live_cfg) as live:
        live.conditions.set_members("0", [FIRST])
        async with daemon(live, tmp_path / "a", recording) as running:
            strat: Any = running.trader.host.by_name["rec"].instance
            await until(lambda: len(strat.hits) == 1)
            await until(lambda: ("0g", FIRST) in live.realtime.registered_pairs())
            # Some market between start-up and the first change: the replaying daemon starts
            # as the replay does, and must have finished starting by then.
            trades = running.report.counts.get("Trade", 0)
            await until(lambda: running.report.counts.get("Trade", 0) >= trades + 40)
            await market(live, vi=SYMBOL)
            await until(lambda: [v.active for v in strat.vis] == [True, False], 10)
            await market(live, session="closing_auction")
            await market(live, nxt_session="nxt_after")
            await until(lambda: len(strat.sessions) == 2)
            live.realtime.publish(
                {"type": "0J", "name": "업종지수", "item": "001", "values": SECTOR}
            )
            await market(live, condition="0", members=[SECOND])
            await until(lambda: len(strat.hits) == 3)
            await until(lambda: ("0g", SECOND) in live.realtime.registered_pairs())
            await until(lambda: len(strat.realtime) == 1)
            recorded = handler_calls(running)

    # What was recorded is what the comparison below is about.
    hits = [(h.symbol, h.condition_seq, h.condition, h.entered) for h in recorded["hits"]]
    assert hits == [
        (FIRST, "0", "수동0", True),
        (SECOND, "0", "수동0", True),
        (FIRST, "0", "수동0", False),
    ] or hits == [
        (FIRST, "0", "수동0", True),
        (FIRST, "0", "수동0", False),
        (SECOND, "0", "수동0", True),
    ]
    assert [(v.symbol, v.active) for v in recorded["vis"]] == [(SYMBOL, True), (SYMBOL, False)]
    assert sorted((s.exchange, s.state) for s in recorded["sessions"]) == [
        (Exchange.KRX, SessionState.CLOSING_AUCTION),
        (Exchange.NXT, SessionState.NXT_AFTER),
    ]
    assert [(e.type, e.item) for e in recorded["realtime"]] == [("0J", "001")]
    sent = received(recording)
    assert {orjson.loads(k)["type"] for k in sent} == set(MARKET_TYPES)
    assert {orjson.loads(k)["item"] for k in sent if orjson.loads(k)["type"] == "0g"} == {
        FIRST,
        SECOND,
    }

    # The replay: the simulator's own conditions are not the recording's (they come from it).
    replay_cfg = sim_config(replay=str(recording))
    replayed_recording = tmp_path / "replayed.ndjson"
    async with (
        Simulator(replay_cfg) as replay,
        daemon(replay, tmp_path / "b", replayed_recording) as running,
    ):
        strat = running.trader.host.by_name["rec"].instance
        want = changes(recorded)
        await until(lambda: changes(handler_calls(running)) == want, 15)
        await until(lambda: ("0g", SECOND) in replay.realtime.registered_pairs())
        await replay.realtime.flush()
        replayed = handler_calls(running)
        assert strat.session is SessionState.CLOSING_AUCTION
    # The same events, field for field (ts_recv and the bus's seq are not compared): the
    # initial member from the realtime search's answer, then the recorded pushes.
    assert replayed["hits"] == recorded["hits"]
    assert replayed["vis"] == recorded["vis"]
    assert replayed["realtime"] == recorded["realtime"]
    # The session notices the recorded registration started with (regular, both venues) came
    # before the recorded strategy started; replayed, they are pushes at their recorded
    # offsets, which may reach the replaying strategy after it started. Every change after
    # them is the same.
    leading = [(s.exchange, s.state) for s in replayed["sessions"][:-2]]
    assert set(leading) <= {
        (Exchange.KRX, SessionState.REGULAR),
        (Exchange.NXT, SessionState.REGULAR),
    }
    assert replayed["sessions"][-2:] == recorded["sessions"]
    assert received(replayed_recording) == sent
