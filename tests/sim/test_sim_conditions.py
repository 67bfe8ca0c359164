"""Condition search, VI and session frames: the engine's feed against the simulator, over real
sockets (issue 15, wire side)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine import config
from engine.config import SimConditionConfig
from engine.events import (
    ConditionHit,
    Event,
    Exchange,
    Reconnected,
    SessionChanged,
    SessionState,
    StockInfo,
    ViEvent,
    ViKind,
)
from engine.kiwoom.errors import TransportError
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.ws import KiwoomWebSocket
from engine.kiwoom.wsproto import ConditionError, RegistrationError
from engine.sim.replay import play
from engine.sim.simulator import Simulator
from tests.support import until

pytestmark = pytest.mark.timeout(30)

SYMBOLS = ("005930", "000660", "035420", "035720", "051910")
MANUAL = tuple(SimConditionConfig(str(i), f"수동{i}", "manual") for i in range(11))
# A name with the characters an MQTT topic cannot carry, as HTS names may.
ALL = SimConditionConfig("20", "전종목/+#", "all")


def sim_config(**over: Any) -> config.SimConfig:
    base = config.load(None, env={}).sim
    values: dict[str, Any] = {
        "port": 0,
        "events_per_s": 0.0,
        "symbols": SYMBOLS,
        "conditions": (*MANUAL, ALL),
        "condition_page_size": 2,
        **over,
    }
    return dataclasses.replace(base, **values)


@dataclasses.dataclass
class Env:
    sim: Simulator
    feed: KiwoomWebSocket
    events: list[Event]

    def hits(self) -> list[ConditionHit]:
        return [e for e in self.events if isinstance(e, ConditionHit)]


async def open_env(sim: Simulator) -> AsyncIterator[Env]:
    token, _ = sim.state.tokens.issue("appkey", "secret")

    async def tokens() -> str:
        return token

    async def invalidate(_t: str) -> None:
        return None

    events: list[Event] = []
    feed = KiwoomWebSocket(
        sim.ws_url, tokens, invalidate, on_event=events.append, backoff_base_s=0.05
    )
    await feed.start()
    try:
        yield Env(sim, feed, events)
    finally:
        await feed.close()


@pytest.fixture
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    over = getattr(request, "param", {})
    async with Simulator(sim_config(**over)) as sim:
        async for e in open_env(sim):
            yield e


async def raw_ws(sim: Simulator) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """A bare client (no engine code) logged in to the simulator."""
    token, _ = sim.state.tokens.issue("appkey", "secret")
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(sim.ws_url)
    await ws.send_str(orjson.dumps({"trnm": "LOGIN", "token": token}).decode())
    while True:
        msg = orjson.loads(await ws.receive_str())
        if msg.get("trnm") == "LOGIN":
            assert msg["return_code"] == 0
            return session, ws


async def answer(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(orjson.dumps(frame).decode())
    while True:
        msg: dict[str, Any] = orjson.loads(await ws.receive_str())
        if msg.get("trnm") == frame["trnm"]:
            return msg


async def test_the_simulator_refuses_a_search_before_the_list_and_pads_seq() -> None:
    async with Simulator(sim_config()) as sim:
        session, ws = await raw_ws(sim)
        try:
            req = {"trnm": "CNSRREQ", "seq": "20", "search_type": "0", "stex_tp": "K"}
            refused = await answer(ws, req)
            assert refused["return_code"] != 0
            assert "CNSRLST" in refused["return_msg"]
            listed = await answer(ws, {"trnm": "CNSRLST"})
            assert listed["return_code"] == 0
            assert ["20", "전종목/+#"] in listed["data"]
            ok = await answer(ws, req)
            assert ok["return_code"] == 0
            assert ok["seq"] == "20 "  # padded, as Kiwoom may send it
            assert ok["cont_yn"] == "Y"  # page size 2, five symbols
        finally:
            await ws.close()
            await session.close()


async def test_conditions_are_listed_and_a_one_shot_search_reads_every_page(env: Env) -> None:
    conds = await env.feed.conditions()
    assert conds[-1] == ("20", "전종목/+#")
    assert ("3", "수동3") in conds
    # Five symbols on pages of two: three CNSRREQ on one connection, in the simulator's order.
    assert await env.feed.search("20") == list(SYMBOLS)
    env.sim.conditions.set_members("4", ["000660"])
    assert await env.feed.search("4") == ["000660"]
    assert env.hits() == []  # a one-shot search publishes nothing


async def test_a_search_first_sends_the_list_on_a_new_connection(env: Env) -> None:
    # No conditions() call: search() itself sends CNSRLST first (the simulator refuses
    # CNSRREQ otherwise, as Kiwoom does).
    assert await env.feed.search("20") == list(SYMBOLS)


async def test_a_realtime_search_publishes_members_then_pushes(env: Env) -> None:
    env.sim.conditions.set_members("1", ["005930", "000660"])
    members = await env.feed.search("1", realtime=True)
    assert members == ["005930", "000660"]
    # The current members arrive as entered hits, made by the engine (time 0), named.
    assert env.hits() == [
        ConditionHit("005930", "1", "수동1", True, 0),
        ConditionHit("000660", "1", "수동1", True, 0),
    ]
    env.sim.conditions.set_members("1", ["000660", "035420"])
    await until(lambda: len(env.hits()) == 4)
    pushed = env.hits()[2:]
    assert {(h.symbol, h.entered) for h in pushed} == {("035420", True), ("005930", False)}
    assert all(h.condition == "수동1" and h.time > 0 for h in pushed)
    # Cleared: no more pushes for it, and the simulator forgot it for this connection.
    await env.feed.clear("1")
    assert env.feed.condition_book.realtime == []
    await until(lambda: all(not s.cnsr.realtime for s in env.sim.realtime.sessions))


async def test_the_eleventh_realtime_condition_is_refused(env: Env) -> None:
    for i in range(10):
        await env.feed.search(str(i), realtime=True)
    with pytest.raises(ConditionError, match=r"kiwoom\.max_realtime_conditions"):
        await env.feed.search("10", realtime=True)
    # The same search again is no eleventh one.
    await env.feed.search("3", realtime=True)
    assert len(env.feed.condition_book.realtime) == 10


async def test_the_simulator_itself_refuses_the_eleventh() -> None:
    async with Simulator(sim_config()) as sim:
        session, ws = await raw_ws(sim)
        try:
            await answer(ws, {"trnm": "CNSRLST"})
            for i in range(10):
                req = {"trnm": "CNSRREQ", "seq": str(i), "search_type": "1", "stex_tp": "K"}
                assert (await answer(ws, req))["return_code"] == 0
            req = {"trnm": "CNSRREQ", "seq": "10", "search_type": "1", "stex_tp": "K"}
            assert (await answer(ws, req))["return_code"] != 0
            clr = await answer(ws, {"trnm": "CNSRCLR", "seq": "0"})
            assert clr["return_code"] == 0
            assert (await answer(ws, req))["return_code"] == 0
        finally:
            await ws.close()
            await session.close()


async def test_a_leave_lost_in_a_reconnect_is_published_after_the_restore(env: Env) -> None:
    sim = env.sim
    sim.conditions.set_members("2", ["005930", "000660"])
    await env.feed.search("2", realtime=True)
    assert len(env.hits()) == 2
    # The connection goes silent, 000660 leaves and 035720 enters (pushed into the void),
    # then the connection drops.
    sim.state.faults.ws_silent = True
    sim.conditions.set_members("2", ["005930", "035720"])
    old = [s for s in sim.realtime.sessions if s.logged_in]
    await until(lambda: all(s.cnsr.realtime.get("2") != ["005930", "000660"] for s in old))
    assert all(s.pending for s in old)  # the two 02 pushes were queued, never written
    await sim.realtime.drop_all()
    sim.state.faults.ws_silent = False
    await until(lambda: any(isinstance(e, Reconnected) for e in env.events), within_s=10)
    await until(lambda: len(env.hits()) == 4)
    after = env.hits()[2:]
    # Made by the engine from the repeated search (time 0), not pushed.
    assert sorted(after, key=lambda h: h.symbol) == [
        ConditionHit("000660", "2", "수동2", False, 0),
        ConditionHit("035720", "2", "수동2", True, 0),
    ]
    # They come after Reconnected, never before.
    first_after = env.events.index(after[0])
    assert any(isinstance(e, Reconnected) for e in env.events[:first_after])
    assert env.feed.condition_book.members("2") == ["005930", "035720"]


async def test_a_realtime_search_needs_a_session(env: Env) -> None:
    await env.feed.close()
    with pytest.raises(TransportError):
        await env.feed.search("1", realtime=True)


@pytest.mark.parametrize(
    "env",
    [{"vi_static_pct": 0.5, "vi_dynamic_pct": 0.3, "vi_auction_s": 0.3}],
    indirect=True,
)
async def test_vi_trigger_and_release_frames(env: Env) -> None:
    await env.feed.subscribe(["0B", "1h"], SYMBOLS)
    # Trades (and so VIs) only once the registration is acknowledged: a VI set off before it
    # would be seen by its release alone (a loaded machine registers late).
    env.sim.events_per_s = 400.0
    await until(lambda: any(isinstance(e, ViEvent) and not e.active for e in env.events), 15)
    vis = [e for e in env.events if isinstance(e, ViEvent)]
    first = vis[0]
    assert first.active
    assert first.kind in (ViKind.STATIC, ViKind.DYNAMIC)
    assert first.trigger_price > 0
    assert first.count == 1
    release = next(e for e in vis if not e.active and e.symbol == first.symbol)
    assert release.release_time > 0
    # No trade of the symbol between its trigger and its release: the auction matches
    # nothing until it ends.
    i, j = env.events.index(first), env.events.index(release)
    assert not [
        e for e in env.events[i:j] if getattr(e, "symbol", None) == first.symbol
        and type(e).__name__ == "Trade"
    ]  # fmt: skip


async def test_a_forced_vi_holds_a_limit_order_until_the_release() -> None:
    over = {"events_per_s": 50.0, "vi_auction_s": 0.5}
    async with Simulator(sim_config(**over)) as sim:
        sim.trigger_vi("005930")
        assert sim.market.halted == {"005930"}
        _bid, ask = sim.market.best("005930")
        order = sim.exchange.place("buy", "005930", 1, ask)
        assert order.open_qty == 1  # taken, not matched during the auction
        await until(lambda: "005930" not in sim.market.halted, 5)
        await until(lambda: order.filled_qty == 1, 5)


async def test_session_notices_drive_the_session_state(env: Env) -> None:
    def sessions() -> list[tuple[Exchange, SessionState]]:
        return [(e.exchange, e.state) for e in env.events if isinstance(e, SessionChanged)]

    await env.feed.subscribe(["0s"], [""])
    # A new registration learns the simulator's notional sessions at once: open by default.
    await until(lambda: len(sessions()) == 2)
    assert sessions() == [
        (Exchange.KRX, SessionState.REGULAR),
        (Exchange.NXT, SessionState.REGULAR),
    ]
    for state in (SessionState.CLOSING_AUCTION, SessionState.CLOSED, SessionState.POST_CLOSE):
        env.sim.set_session(state.value)
    env.sim.set_session("nxt_after", "NXT")
    await until(lambda: len(sessions()) == 6)
    assert sessions()[2:] == [
        (Exchange.KRX, SessionState.CLOSING_AUCTION),
        (Exchange.KRX, SessionState.CLOSED),
        (Exchange.KRX, SessionState.POST_CLOSE),
        (Exchange.NXT, SessionState.NXT_AFTER),
    ]


async def order(sim: Simulator, venue: str) -> dict[str, Any]:
    """A market buy of one 005930 on `venue`, over the simulator's REST face."""
    token, _ = sim.state.tokens.issue("appkey", "secret")
    body = {"dmst_stex_tp": venue, "stk_cd": "005930", "ord_qty": "1", "ord_uv": "", "trde_tp": "3"}
    headers = {"api-id": "kt10000", "authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.rest_url + "/api/dostk/ordr", json=body, headers=headers) as r,
    ):
        answer: dict[str, Any] = await r.json(content_type=None)
        return answer


async def test_nxt_and_sor_orders_follow_the_nxt_session(env: Env) -> None:
    await env.feed.subscribe(["00"], [])
    nxt = await order(env.sim, "NXT")
    sor = await order(env.sim, "SOR")
    assert (nxt["return_code"], nxt["dmst_stex_tp"]) == (0, "NXT")
    assert (sor["return_code"], sor["dmst_stex_tp"]) == (0, "SOR")
    orders = {o.ord_no: o for o in env.sim.exchange.orders()}
    assert (orders[nxt["ord_no"]].venue, orders[sor["ord_no"]].venue) == ("NXT", "SOR")
    # The 00 notices say where: FID 2134 2 NXT / 0 통합, 2136 SOR Y (decoded by the codec).
    await until(lambda: {e.order_no for e in env.events if type(e).__name__ == "OrderExecution"}
                >= {nxt["ord_no"], sor["ord_no"]})  # fmt: skip
    notes = {e.order_no: e for e in env.events if type(e).__name__ == "OrderExecution"}
    assert (notes[nxt["ord_no"]].exchange, notes[nxt["ord_no"]].sor) == (Exchange.NXT, False)
    assert (notes[sor["ord_no"]].exchange, notes[sor["ord_no"]].sor) == (Exchange.SOR, True)
    env.sim.set_session("closed", "NXT")
    refused = await order(env.sim, "NXT")
    assert refused["return_code"] != 0
    assert "2011" in refused["return_msg"]
    assert (await order(env.sim, "SOR"))["return_code"] == 0  # KRX is still open
    env.sim.set_session("closed")
    assert (await order(env.sim, "SOR"))["return_code"] != 0
    assert (await order(env.sim, "KRX"))["return_code"] != 0


async def test_stock_info_comes_on_registration(env: Env) -> None:
    await env.feed.subscribe(["0g"], ["005930"])
    await until(lambda: any(isinstance(e, StockInfo) for e in env.events))
    info = next(e for e in env.events if isinstance(e, StockInfo))
    lower, upper = env.sim.market.limits("005930")
    assert (info.symbol, info.upper_limit, info.lower_limit) == ("005930", upper, lower)
    assert info.base_price == env.sim.market.prev_close("005930")


async def test_owned_subscriptions_register_once_and_leave_with_the_last_owner(env: Env) -> None:
    def registered() -> set[tuple[str, str]]:
        return env.sim.realtime.registered_pairs()

    await env.feed.subscribe(["0B"], ["005930"])  # the daemon's own ([daemon] symbols)
    await env.feed.subscribe_owner("a", "005930", ["0B", "0D"])
    await env.feed.subscribe_owner("b", "005930", ["0B"])
    await env.feed.subscribe_owner("b", "000660", ["0B"])
    assert registered() == {("0B", "005930"), ("0D", "005930"), ("0B", "000660")}
    await env.feed.unsubscribe_owner("a", "005930")
    assert registered() == {("0B", "005930"), ("0B", "000660")}
    await env.feed.unsubscribe_owner("b", "005930")
    await env.feed.unsubscribe(["0B"], ["005930"])
    assert registered() == {("0B", "000660")}
    # Restored on a new connection.
    await env.sim.realtime.drop_all()
    await until(lambda: any(isinstance(e, Reconnected) for e in env.events), within_s=10)
    await until(lambda: registered() == {("0B", "000660")})


async def test_a_hundred_and_one_symbols_take_two_groups() -> None:
    codes = tuple(f"{100000 + i:06d}" for i in range(101))
    async with Simulator(sim_config(symbols=codes)) as sim:
        async for env in open_env(sim):
            for code in codes:
                await env.feed.subscribe_owner("s", code, ["0B"])
            groups = next(s.groups for s in sim.realtime.sessions if s.logged_in)
            assert sorted(len({i for _t, i in g}) for g in groups.values()) == [1, 100]


async def test_an_unknown_owner_name_is_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="owner"):
        await env.feed.subscribe_owner("", "005930", ["0B"])
    await asyncio.sleep(0)


async def test_recorded_market_state_frames_replay(env: Env, tmp_path: Path) -> None:
    # The recorder keeps every frame as received; replay publishes the REAL entries: a 02 hit
    # reaches the connection whose realtime search it belongs to, 1h/0g the registered
    # symbol, 0s whoever registered it.
    path = tmp_path / "feed.ndjson"
    rec = FrameRecorder(path)
    entries = [
        {"type": "02", "name": "조건검색", "item": "005930",
         "values": {"841": "5", "9001": "005930", "843": "I", "20": "100000", "907": "2"}},
        {"type": "1h", "name": "VI발동/해제", "item": "005930",
         "values": {"9001": "005930", "9068": "1", "1221": "77000", "1225": "동적"}},
        {"type": "0s", "name": "장시작시간", "item": "", "values": {"215": "2", "20": "152000"}},
    ]  # fmt: skip
    rec.record(orjson.dumps({"trnm": "CNSRLST", "return_code": 0, "data": []}))
    rec.record(orjson.dumps({"trnm": "REAL", "data": entries}))
    rec.close()
    await env.feed.subscribe(["1h"], ["005930"])
    await env.feed.subscribe(["0s"], [""])
    await env.feed.search("5", realtime=True)
    before = len(env.events)
    assert await play(path, env.sim.realtime.publish, speed=0) == 3
    await until(lambda: len(env.events) >= before + 3)
    got = env.events[before:]
    assert ConditionHit("005930", "5", "수동5", True, 100000) in got
    assert any(isinstance(e, ViEvent) and e.active and e.kind is ViKind.DYNAMIC for e in got)
    assert SessionChanged(Exchange.KRX, SessionState.CLOSING_AUCTION, 152000, 0) in got


async def test_a_search_refused_on_restore_publishes_its_members_as_left(env: Env) -> None:
    env.sim.conditions.set_members("6", ["005930", "000660"])
    await env.feed.search("6", realtime=True)
    # Deleted in the HTS while the connection was down: the repeated search is refused.
    del env.sim.conditions.conditions["6"]
    await env.sim.realtime.drop_all()
    await until(lambda: any(isinstance(e, Reconnected) for e in env.events), within_s=10)
    await until(lambda: len(env.hits()) == 4)
    assert env.hits()[2:] == [
        ConditionHit("005930", "6", "수동6", False, 0),
        ConditionHit("000660", "6", "수동6", False, 0),
    ]
    assert env.feed.condition_book.realtime == []


async def test_a_refused_registration_leaves_the_owners_as_they_were(env: Env) -> None:
    await env.feed.subscribe_owner("a", "005930", ["0B"])
    env.sim.state.faults.ws_reject_reg = True
    with pytest.raises(RegistrationError):
        await env.feed.subscribe_owner("b", "000660", ["0B"])
    env.sim.state.faults.ws_reject_reg = False
    assert env.feed.interests.symbols() == ["005930"]
    assert env.sim.realtime.registered_pairs() == {("0B", "005930")}
