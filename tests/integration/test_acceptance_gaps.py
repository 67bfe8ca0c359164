"""Acceptance points of issues 2 and 3 that no other test pinned down end to end.

Real sockets on 127.0.0.1 (port 0) against the simulator, or against a scripted WebSocket
endpoint where the point is a wire detail the simulator cannot produce (odd PING frames,
REAL before the LOGIN ack, malformed frames).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import WSMsgType, web

from engine import config, logs
from engine.clock import OffsetClock
from engine.config import WS_PATH, RetryConfig, SimConfig
from engine.events import (
    Disconnected,
    Event,
    OrderExecution,
    OrderStatus,
    RealtimeGeneric,
    Reconnected,
    Trade,
)
from engine.kiwoom import codec as codec_mod
from engine.kiwoom import rest as rest_mod
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import AuthError, OutcomeUnknownError, TransportError
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.models import OrderType
from engine.sim.faults import Faults
from engine.sim.rest import SimBusinessError, SimReply
from engine.sim.server import create_app, start
from engine.sim.simulator import Simulator
from engine.sim.state import build_state
from engine.sim.ws import SimRealtime
from tests.integration.conftest import client_config, trading_session
from tests.kiwoom.conftest import SimEnv
from tests.support import until

pytestmark = pytest.mark.timeout(20)

BODY = {"stk_cd": "005930"}
LIMIT_BUY = {
    "dmst_stex_tp": "KRX",
    "stk_cd": "005930",
    "ord_qty": "1",
    "ord_uv": "70000",
    "trde_tp": "0",
    "cond_uv": "",
}
LOGIN_ACK = '{"trnm":"LOGIN","return_code":0,"return_msg":"","sor_yn":"Y"}'


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
async def rest_sim() -> AsyncIterator[SimEnv]:
    """The REST simulator (build_state + start) with a generous server-side rate."""
    clock = OffsetClock(0.0)
    cfg = SimConfig(host="127.0.0.1", port=0, rest_rate_per_s=5000.0, rest_burst=5000)
    state = build_state(cfg, clock)
    runner, port = await start(state)
    try:
        yield SimEnv(state, port, clock)
    finally:
        await runner.cleanup()


def capture(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> structlog.testing.LogCapture:
    cap = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(None, processors=[cap], wrapper_class=structlog.BoundLogger)
    for m in modules:
        monkeypatch.setattr(m, "log", logger)
    return cap


def errors_then(
    errors: list[SimBusinessError], reply: dict[str, Any] | None = None
) -> Callable[[dict[str, Any], str], Awaitable[SimReply]]:
    """A handler that raises `errors` in turn (one per request), then answers `reply`."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        if errors:
            raise errors.pop(0)
        return SimReply(reply if reply is not None else {"ord_no": "0000001"})

    return handler


def trade_entry(item: str) -> dict[str, Any]:
    return {
        "type": "0B",
        "name": "주식체결",
        "item": item,
        "values": {"20": "090001", "10": "-70000", "15": "+5", "13": "100"},
    }


@dataclass
class Scripted:
    """A WebSocket endpoint whose answers a test scripts; records every text frame received."""

    on_text: Callable[[web.WebSocketResponse, str], Awaitable[None]]
    received: list[str] = field(default_factory=list)
    url: str = ""


async def scripted_server(s: Scripted) -> web.AppRunner:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                s.received.append(msg.data)
                await s.on_text(ws, msg.data)
        return ws

    app = web.Application()
    app.router.add_get(WS_PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    s.url = f"ws://127.0.0.1:{runner.addresses[0][1]}{WS_PATH}"
    return runner


async def _token() -> str:
    return "tok-1"


async def _invalidate(_token: str) -> None:
    return None


# --- issue 2: tokens ------------------------------------------------------------------------


async def test_http_401_is_a_token_error_for_queries_and_orders(rest_sim: SimEnv) -> None:
    st = rest_sim.state
    async with KiwoomRest.from_config(rest_sim.config()) as rest:
        await rest.call("ka10001", BODY)
        assert st.request_counts["au10001"] == 1
        st.faults.http_error_once["ka10001"] = 401  # a bare 401, no envelope
        r = await rest.call("ka10001", BODY)
        assert r.body["return_code"] == 0
        assert st.request_counts["ka10001"] == 3
        assert st.request_counts["au10001"] == 2  # one re-issue
        # A 401 proves the order was not processed: it is sent again, once.
        st.faults.http_error_once["kt10000"] = 401
        await rest.call("kt10000", LIMIT_BUY)
        assert (st.request_counts["kt10000"], st.handled_counts["kt10000"]) == (2, 1)
        assert st.request_counts["au10001"] == 3
        # One re-issue and one retry only: a second 401 in a row is an AuthError.
        st.faults.http_error_queue["ka10001"] = [401, 401]
        with pytest.raises(AuthError):
            await rest.call("ka10001", BODY)
        assert st.request_counts["ka10001"] == 3 + 2


async def test_a_hung_token_request_times_out(rest_sim: SimEnv) -> None:
    # "a timeout on every request": the token request too, or every call would hang with it.
    rest_sim.state.faults.rest_delay_s["au10001"] = 0.8
    cfg = rest_sim.config(request_timeout_s=0.15, connect_timeout_s=0.15)
    async with KiwoomRest.from_config(cfg) as rest:
        async with asyncio.timeout(3.0):
            with pytest.raises(TransportError) as ei:
                await rest.call("ka10001", BODY)
    assert not isinstance(ei.value, OutcomeUnknownError)
    assert rest_sim.state.request_counts["ka10001"] == 0
    assert rest_sim.state.request_counts["au10001"] >= 2  # retried, each attempt timed out


# --- issue 2: rate limits -------------------------------------------------------------------


def _rate_error(rc: int, code: int) -> SimBusinessError:
    return SimBusinessError(rc, f"허용된 요청 개수를 초과하였습니다[{code}:API ID=ka10001]")


async def test_rate_limit_answers_on_http_200_are_backed_off_and_retried(rest_sim: SimEnv) -> None:
    # rc 5 on HTTP 200, and the codes 1700-1702 under another rc, are rate limits too.
    st = rest_sim.state
    st.rest_handlers["ka10001"] = errors_then(
        [_rate_error(5, 1700), _rate_error(2, 1702), _rate_error(1, 1701)], dict(BODY)
    )
    st.rest_handlers["kt10000"] = errors_then([_rate_error(5, 1700)])
    async with KiwoomRest.from_config(rest_sim.config()) as rest:
        r = await rest.call("ka10001", BODY)
        assert r.body["stk_cd"] == "005930"
        assert st.request_counts["ka10001"] == 4
        # an order refused for the rate was not taken: it is sent again
        r = await rest.call("kt10000", LIMIT_BUY)
        assert r.body["ord_no"] == "0000001"
        assert st.request_counts["kt10000"] == 2


# --- issue 2: retries and outcome-unknown ---------------------------------------------------


async def test_a_query_is_retried_after_a_reset_an_order_never(rest_sim: SimEnv) -> None:
    st = rest_sim.state
    retry = RetryConfig(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
    calls = {"n": 0}

    async def heal_on_second(body: dict[str, Any], next_key: str) -> SimReply:
        calls["n"] += 1
        if calls["n"] >= 2:
            st.faults.drop_after_accept.discard("ka10001")
        return SimReply(dict(BODY))

    st.rest_handlers["ka10001"] = heal_on_second
    st.faults.drop_after_accept.add("ka10001")
    async with KiwoomRest.from_config(rest_sim.config(retry=retry)) as rest:
        r = await rest.call("ka10001", BODY)
        assert r.body["stk_cd"] == "005930"
        assert st.request_counts["ka10001"] == 2  # reset once, retried once
        # a query reset every time: retries run out, a TransportError (not outcome-unknown)
        st.faults.drop_after_accept.add("ka10004")
        with pytest.raises(TransportError) as ei:
            await rest.call("ka10004", BODY)
        assert not isinstance(ei.value, OutcomeUnknownError)
        assert st.request_counts["ka10004"] == 3
        # the same reset on an order: sent once, outcome unknown
        st.faults.drop_after_accept.add("kt10000")
        with pytest.raises(OutcomeUnknownError):
            await rest.call("kt10000", LIMIT_BUY)
        assert st.request_counts["kt10000"] == 1


async def test_connection_refused_order_is_not_sent_and_query_is_retried(
    rest_sim: SimEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture(monkeypatch, rest_mod)
    retry = RetryConfig(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
    runner2_state = build_state(
        SimConfig(host="127.0.0.1", port=0, rest_rate_per_s=5000.0, rest_burst=5000)
    )
    runner2, port2 = await start(runner2_state)
    env2 = SimEnv(runner2_state, port2, rest_sim.clock)
    rest = KiwoomRest.from_config(env2.config(retry=retry), revoke_on_close=False)
    await rest.open()
    try:
        await rest.tokens.token()  # the token is held; then the server goes away
        await runner2.cleanup()
        await asyncio.sleep(0.05)
        with pytest.raises(TransportError) as ei:
            await rest.call("kt10000", LIMIT_BUY)
        assert not isinstance(ei.value, OutcomeUnknownError)  # provably never sent
        events = [e["event"] for e in cap.entries]
        assert "order_not_sent" in events
        assert "order_outcome_unknown" not in events
        assert "rest_retry" not in events  # an order is never retried automatically
        with pytest.raises(TransportError) as ei:
            await rest.call("ka10001", BODY)
        assert not isinstance(ei.value, OutcomeUnknownError)
        retries = [e for e in cap.entries if e["event"] == "rest_retry"]
        assert [e["api_id"] for e in retries] == ["ka10001"] * (retry.max_attempts - 1)
    finally:
        await rest.close()


async def test_an_order_whose_answer_is_lost_was_taken_exactly_once(
    simulator: Simulator,
) -> None:
    # The order really rests on the exchange: outcome-unknown is the truth, and a blind
    # resend would have placed it twice.
    cfg = client_config(simulator)
    cfg = dataclasses.replace(
        cfg, kiwoom=dataclasses.replace(cfg.kiwoom, request_timeout_s=0.3, connect_timeout_s=0.3)
    )
    st = simulator.state
    lower, _upper = simulator.market.limits("005930")
    async with KiwoomRest.from_config(cfg) as rest:
        api = KiwoomApi(rest)
        st.faults.drop_after_accept.add("kt10000")
        with pytest.raises(OutcomeUnknownError):
            await api.buy("005930", 2, OrderType.LIMIT, price=lower)
        st.faults.drop_after_accept.clear()
        assert st.request_counts["kt10000"] == 1
        opened = await api.open_orders()
        assert [(o.symbol, o.qty, o.price) for o in opened] == [("005930", 2, lower)]
        st.faults.rest_delay_s["kt10000"] = 0.6
        with pytest.raises(OutcomeUnknownError):
            await api.buy("005930", 3, OrderType.LIMIT, price=lower)
        assert st.request_counts["kt10000"] == 2
        assert sorted(o.qty for o in await api.open_orders()) == [2, 3]
        await asyncio.sleep(0.4)  # let the held answer finish before the simulator closes


async def test_kt00007_agrees_with_a_fill(simulator: Simulator) -> None:
    cfg = client_config(simulator)
    async with KiwoomRest.from_config(cfg) as rest:
        api = KiwoomApi(rest)
        _bid, ask = simulator.market.best("005930")
        ack = await api.buy("005930", 2, OrderType.LIMIT, price=ask)
        execs = [x for x in await api.executions() if x.order_no == ack.order_no]
        history = [h for h in await api.order_history() if h.order_no == ack.order_no]
        assert len(execs) == 1
        assert len(history) == 1
        assert history[0].qty == 2
        assert history[0].filled_qty == execs[0].filled_qty == 2
        assert history[0].remaining_qty == 0
        assert history[0].fill_price == execs[0].fill_price > 0


# --- issue 2: session, config, logging ------------------------------------------------------


async def test_one_keep_alive_connection_carries_every_call() -> None:
    clock = OffsetClock(0.0)
    cfg = SimConfig(host="127.0.0.1", port=0, rest_rate_per_s=5000.0, rest_burst=5000)
    state = build_state(cfg, clock)
    peers: list[Any] = []

    async def record_peer(request: web.Request, response: web.StreamResponse) -> None:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))

    app = create_app(state)
    app.on_response_prepare.append(record_peer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    env = SimEnv(state, runner.addresses[0][1], clock)
    try:
        async with KiwoomRest.from_config(env.config()) as rest:
            for _ in range(10):
                await rest.call("ka10001", BODY)
            await rest.call_all(
                "ka10081", {"stk_cd": "005930", "base_dt": "20260105", "upd_stkpc_tp": "1"}
            )
        assert len(peers) >= 10 + 3 + 2  # token, calls, pages, revoke
        assert len(set(peers)) == 1
    finally:
        await runner.cleanup()


def test_ws_url_overrides_the_host_in_sim_mode(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[kiwoom]\nmode = "sim"\nws_url = "ws://10.0.0.1:9/api/dostk/websocket"\n')
    cfg = config.load(p, env={})
    assert cfg.ws_url == "ws://10.0.0.1:9/api/dostk/websocket"
    assert cfg.rest_url.startswith("http://127.0.0.1:")


def test_log_format_follows_the_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    try:
        logs.setup("info", "auto", tty)
        structlog.get_logger("t").info("hello_tty", qty=3)
        logs.setup("info", "auto", pipe)
        structlog.get_logger("t").info("hello_pipe", qty=3)
    finally:
        logs.setup("warning", "json", io.StringIO())
    assert "hello_tty" in tty.getvalue()
    assert not tty.getvalue().lstrip().startswith("{")
    line = orjson.loads(pipe.getvalue().splitlines()[0])
    assert (line["event"], line["qty"]) == ("hello_pipe", 3)


# --- issue 3: WebSocket client ---------------------------------------------------------------


async def test_ping_is_echoed_verbatim_during_and_after_the_handshake() -> None:
    ping_a = '{"trnm": "PING", "seq": 1, "t": "093000"}'
    ping_b = '{ "trnm" : "PING" , "x" : [1, 2] }'

    async def on_text(ws: web.WebSocketResponse, text: str) -> None:
        if orjson.loads(text).get("trnm") == "LOGIN":
            await ws.send_str(ping_a)  # before the ack
            await ws.send_str(LOGIN_ACK)
            await ws.send_str(ping_b)

    s = Scripted(on_text)
    runner = await scripted_server(s)
    ws = KiwoomWebSocket(s.url, _token, _invalidate, backoff_base_s=0.1)
    try:
        await ws.start()
        await until(lambda: len(s.received) >= 3)
        assert orjson.loads(s.received[0]) == {"trnm": "LOGIN", "token": "tok-1"}
        assert s.received[1:] == [ping_a, ping_b]
    finally:
        await ws.close()
        await runner.cleanup()


async def test_real_frames_before_the_login_ack_are_delivered() -> None:
    early = orjson.dumps({"trnm": "REAL", "data": [trade_entry("005930")]}).decode()
    system = '{"trnm":"SYSTEM","code":"R10001","message":"hello"}'

    async def on_text(ws: web.WebSocketResponse, text: str) -> None:
        if orjson.loads(text).get("trnm") == "LOGIN":
            await ws.send_str(system)
            await ws.send_str(early)
            await ws.send_str(LOGIN_ACK)

    s = Scripted(on_text)
    runner = await scripted_server(s)
    events: list[Event] = []
    ws = KiwoomWebSocket(s.url, _token, _invalidate, on_event=events.append)
    try:
        await ws.start()
        await until(lambda: any(isinstance(e, Trade) for e in events))
        (trade,) = [e for e in events if isinstance(e, Trade)]
        assert (trade.symbol, trade.price, trade.qty) == ("005930", 70000, 5)
    finally:
        await ws.close()
        await runner.cleanup()


async def test_malformed_frames_are_counted_logged_and_never_break_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cap = capture(monkeypatch, codec_mod)
    bad_value = {**trade_entry("000660"), "values": {"20": "090001", "10": "7O000", "15": "+1"}}
    frames = [
        "not json{",
        "[1, 2, 3]",
        '{"trnm":"REAL"}',
        '{"no_trnm": 1}',
        '{"trnm":"WHAT","x":1}',
        orjson.dumps({"trnm": "REAL", "data": [bad_value, trade_entry("035420")]}).decode(),
        orjson.dumps(
            {"trnm": "REAL", "data": [{"type": "ZZ", "name": "?", "item": "1", "values": {}}]}
        ).decode(),
        orjson.dumps({"trnm": "REAL", "data": [trade_entry("005930")]}).decode(),
    ]

    async def on_text(ws: web.WebSocketResponse, text: str) -> None:
        if orjson.loads(text).get("trnm") == "LOGIN":
            await ws.send_str(LOGIN_ACK)
            for f in frames:
                await ws.send_str(f)

    s = Scripted(on_text)
    runner = await scripted_server(s)
    events: list[Event] = []
    ws = KiwoomWebSocket(s.url, _token, _invalidate, on_event=events.append)
    try:
        await ws.start()
        await until(lambda: any(isinstance(e, Trade) and e.symbol == "005930" for e in events))
        trades = [e.symbol for e in events if isinstance(e, Trade)]
        assert trades == ["035420", "005930"]  # the good entry beside a bad one survived
        assert [e.type for e in events if isinstance(e, RealtimeGeneric)] == ["ZZ"]
        assert not any(isinstance(e, Disconnected) for e in events)
        assert ws.connected
        assert ws.sessions == 1
        assert ws.stats.bad_frames >= 4
        assert ws.stats.bad_entries == 1
        logged = {e["event"] for e in cap.entries}
        assert {"realtime_frame_bad", "realtime_entry_bad"} <= logged
    finally:
        await ws.close()
        await runner.cleanup()


@dataclass
class RtEnv:
    rt: SimRealtime
    url: str


@pytest.fixture
async def rt_env() -> AsyncIterator[RtEnv]:
    rt = SimRealtime(0.2, token_ok=lambda t: t == "tok-1", faults=Faults(ws_pong_timeout_s=0.4))
    app = web.Application()
    app.router.add_get(WS_PATH, rt.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield RtEnv(rt, f"ws://127.0.0.1:{runner.addresses[0][1]}{WS_PATH}")
    finally:
        await rt.drop_all()
        await runner.cleanup()


async def test_unsubscribe_removes_on_the_server_and_stays_removed_after_reconnect(
    rt_env: RtEnv,
) -> None:
    events: list[Event] = []
    ws = KiwoomWebSocket(
        rt_env.url, _token, _invalidate, on_event=events.append, backoff_base_s=0.05
    )
    try:
        await ws.start()
        await ws.subscribe(["0B"], ["005930", "000660"])
        await ws.unsubscribe(["0B"], ["000660"])
        assert rt_env.rt.registered_pairs() == {("0B", "005930")}
        assert ws.subscriptions.pairs() == {("0B", "005930")}
        rt_env.rt.publish(trade_entry("000660"))
        rt_env.rt.publish(trade_entry("005930"))
        await until(lambda: any(isinstance(e, Trade) for e in events))
        assert [e.symbol for e in events if isinstance(e, Trade)] == ["005930"]
        rt_env.rt.faults.ws_drop_now()
        await until(lambda: any(isinstance(e, Reconnected) for e in events))
        assert rt_env.rt.registered_pairs() == {("0B", "005930")}
    finally:
        await ws.close()


async def test_a_server_that_stops_pinging_is_replaced_only_once_it_goes_quiet(
    rt_env: RtEnv,
) -> None:
    events: list[Event] = []
    ws = KiwoomWebSocket(
        rt_env.url,
        _token,
        _invalidate,
        on_event=events.append,
        stale_after_s=0.25,
        stale_grace_s=0.25,
        backoff_base_s=0.05,
    )
    faults = rt_env.rt.faults
    try:
        await ws.start()
        await ws.subscribe(["0B"], ["005930"])
        faults.ws_ping_stop = True
        for _ in range(10):  # data keeps the line alive with no PING for 2x the idle timeout
            rt_env.rt.publish(trade_entry("005930"))
            await asyncio.sleep(0.1)
        assert not any(isinstance(e, Disconnected) for e in events)
        await until(lambda: any(isinstance(e, Disconnected) for e in events), within_s=3.0)
        assert rt_env.rt.ping_kills == 0  # the sim did not kill it: the client noticed
        faults.ws_ping_stop = False
        await until(lambda: any(isinstance(e, Reconnected) for e in events), within_s=3.0)
        n = sum(isinstance(e, Trade) for e in events)
        rt_env.rt.publish(trade_entry("005930"))
        await until(lambda: sum(isinstance(e, Trade) for e in events) > n)
    finally:
        await ws.close()


async def test_every_00_status_the_exchange_itself_pushes_decodes(simulator: Simulator) -> None:
    # 접수/체결 from a crossing buy, 확인/취소 from an amend and a cancel. (거부 is pushed only
    # in the exchange's push reject mode; tests/kiwoom/test_ws.py decodes a 거부 entry.)
    events: list[Event] = []
    async with trading_session(simulator, events.append) as (api, ws):
        await ws.subscribe(["00"], [])
        _bid, ask = simulator.market.best("005930")
        await api.buy("005930", 1, OrderType.LIMIT, price=ask)
        lower, _upper = simulator.market.limits("005930")
        rest_ack = await api.buy("005930", 3, OrderType.LIMIT, price=lower)
        amended = await api.modify(rest_ack.order_no, "005930", 0, lower)
        await api.cancel(amended.order_no, "005930")

        def statuses() -> set[OrderStatus]:
            return {e.status for e in events if isinstance(e, OrderExecution)}

        want = {
            OrderStatus.ACCEPTED,
            OrderStatus.FILLED,
            OrderStatus.CONFIRMED,
            OrderStatus.CANCELED,
        }
        await until(lambda: want <= statuses(), within_s=5.0)
        assert ws.stats.bad_entries == 0


async def test_two_groups_and_account_types_are_all_restored_after_a_drop(
    rt_env: RtEnv,
) -> None:
    events: list[Event] = []
    ws = KiwoomWebSocket(
        rt_env.url, _token, _invalidate, on_event=events.append, backoff_base_s=0.05
    )
    symbols = [f"{200000 + i:06d}" for i in range(150)]
    try:
        await ws.start()
        await ws.subscribe(["0B"], symbols)
        await ws.subscribe(["00", "04"], [])
        before = rt_env.rt.registered_pairs()
        assert len(before) == 152
        rt_env.rt.faults.ws_drop_now()
        await until(lambda: any(isinstance(e, Reconnected) for e in events))
        (session,) = rt_env.rt.sessions
        assert session.registered == before
        assert all(len({it for _t, it in g}) <= 100 for g in session.groups.values())
        rt_env.rt.publish(trade_entry(symbols[0]))
        rt_env.rt.publish(trade_entry(symbols[-1]))
        await until(lambda: sum(isinstance(e, Trade) for e in events) == 2)
    finally:
        await ws.close()


async def test_a_consumer_that_raises_never_breaks_the_feed(rt_env: RtEnv) -> None:
    # ws.py promises: an exception from on_event is logged and counted, never propagated.
    seen: list[Event] = []

    def consumer(ev: Event) -> None:
        seen.append(ev)
        if isinstance(ev, Trade):
            raise RuntimeError("strategy bug")

    ws = KiwoomWebSocket(rt_env.url, _token, _invalidate, on_event=consumer)
    try:
        await ws.start()
        await ws.subscribe(["0B"], ["005930"])
        for _ in range(3):
            rt_env.rt.publish(trade_entry("005930"))  # batched into one REAL frame
        await until(
            lambda: (
                sum(isinstance(e, Trade) for e in seen) == 3
                or any(isinstance(e, Disconnected) for e in seen)
            )
        )
        assert not any(isinstance(e, Disconnected) for e in seen)
        assert ws.consumer_errors == 3
        assert ws.connected
        assert ws.sessions == 1
    finally:
        await ws.close()
