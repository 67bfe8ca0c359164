"""KiwoomWebSocket against the simulator's realtime endpoint over real sockets (port 0)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from engine.config import WS_PATH
from engine.events import (
    Disconnected,
    Event,
    FeedResumed,
    FeedStale,
    OrderExecution,
    OrderStatus,
    Reconnected,
    Trade,
)
from engine.kiwoom.codec import decode_frame
from engine.kiwoom.errors import TransportError
from engine.kiwoom.liveness import FeedState
from engine.kiwoom.recorder import FrameRecorder, read_recording
from engine.kiwoom.ws import KiwoomWebSocket
from engine.kiwoom.wsproto import LoginError, RegistrationError
from engine.sim.faults import Faults
from engine.sim.ws import SimRealtime
from tests.support import until

pytestmark = pytest.mark.timeout(20)


class Tokens:
    """A token source: hands out tok-1, tok-2, ... moving on when a token is invalidated."""

    def __init__(self) -> None:
        self.n = 1
        self.invalidated: list[str] = []
        self.fail_next = 0

    async def token(self) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("token provider bug")
        return f"tok-{self.n}"

    async def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if token == f"tok-{self.n}":
            self.n += 1


@dataclass
class Env:
    rt: SimRealtime
    url: str
    tokens: Tokens = field(default_factory=Tokens)
    events: list[Event] = field(default_factory=list)
    clients: list[KiwoomWebSocket] = field(default_factory=list)

    def client(self, on_event: Callable[[Event], None] | None = None, **kw: Any) -> KiwoomWebSocket:
        kw.setdefault("backoff_base_s", 0.1)
        kw.setdefault("ack_timeout_s", 2.0)
        ws = KiwoomWebSocket(
            self.url,
            self.tokens.token,
            self.tokens.invalidate,
            on_event=on_event or self.events.append,
            **kw,
        )
        self.clients.append(ws)
        return ws

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    valid = {"tok-1", "tok-2", "tok-3"}
    rt = SimRealtime(0.2, token_ok=valid.__contains__, faults=Faults(ws_pong_timeout_s=0.4))
    app = web.Application()
    app.router.add_get(WS_PATH, rt.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    e = Env(rt, f"ws://127.0.0.1:{port}{WS_PATH}")
    try:
        yield e
    finally:
        for c in e.clients:
            await c.close()
        await rt.drop_all()
        await runner.cleanup()


def trade_entry(item: str, qty: str = "+5") -> dict[str, Any]:
    return {
        "type": "0B",
        "name": "주식체결",
        "item": item,
        "values": {"20": "090001", "10": "-70000", "15": qty, "13": "100", "27": "", "28": ""},
    }


def order_entry(status: str, order_no: str) -> dict[str, Any]:
    return {
        "type": "00",
        "name": "주문체결",
        "item": "",
        "values": {
            "9201": "1234567890",
            "9203": order_no,
            "9001": "A005930",
            "913": status,
            "900": "10",
            "901": "70000",
            "902": "0",
            "904": "0000000",
            "905": "+매수",
            "907": "2",
            "908": "090001",
        },
    }


async def test_handshake_with_system_frames_then_events_flow(env: Env) -> None:
    env.rt.faults.ws_system_frames_before_login = 2
    ws = env.client()
    await ws.start()
    assert ws.connected
    assert ws.sor is True
    await ws.subscribe(["0B"], ["005930", "000660_NX"])
    env.rt.publish(trade_entry("005930"))
    env.rt.publish(trade_entry("000660_NX", "-2"))
    env.rt.publish(trade_entry("035420"))  # not registered: must not arrive
    await until(lambda: len(env.of(Trade)) == 2)
    a, b = env.of(Trade)
    assert (a.symbol, a.exchange, a.price, a.qty) == ("005930", "KRX", 70000, 5)
    assert (b.symbol, b.exchange, b.qty) == ("000660", "NXT", -2)
    assert ws.stats.frames >= 4  # 2 SYSTEM + LOGIN ack + REG ack + REAL
    assert ws.stats.bad_frames == 0


async def test_login_failure_carries_the_code_and_invalidates_the_token(env: Env) -> None:
    env.tokens.n = 9  # tok-9 is not valid
    ws = env.client()
    with pytest.raises(LoginError) as info:
        await ws.start()
    assert info.value.return_code == 805004
    assert info.value.code == 8005
    # The refused token was invalidated and one fresh token tried before giving up.
    assert env.tokens.invalidated == ["tok-9", "tok-10"]
    assert env.rt.login_failures == 2


async def test_a_stale_token_at_start_is_replaced_by_a_fresh_one(env: Env) -> None:
    env.tokens.n = 0  # tok-0 was revoked on the server; the provider still hands it out
    ws = env.client()
    await ws.start()
    assert env.tokens.invalidated == ["tok-0"]
    (session,) = env.rt.sessions
    assert session.token == "tok-1"


async def test_close_1000_during_the_handshake_backs_off(env: Env) -> None:
    ws = env.client(backoff_base_s=0.05)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    env.rt.faults.ws_close_in_handshake = 3
    env.rt.faults.ws_drop_now()
    await until(lambda: bool(env.of(Reconnected)))
    (disc,) = env.of(Disconnected)
    (rec,) = env.of(Reconnected)
    assert disc.attempt == 1
    assert rec.attempt == 4  # three refused handshakes, then the fourth attempt got in
    assert rec.downtime_s >= 0.05 / 2 * (1 + 2 + 4 + 8) * 0.99  # every retry waited
    assert env.rt.faults.ws_close_in_handshake == 0
    assert ("0B", "005930") in env.rt.registered_pairs()


async def test_a_session_that_flaps_after_login_keeps_backing_off(env: Env) -> None:
    ws = env.client(backoff_base_s=0.05, stable_after_s=5.0)
    await ws.start()
    env.rt.faults.ws_close_after_login = 4
    env.rt.faults.ws_drop_now()
    # Wait for the fifth session (the first that stays up): the counter reaches 0 at the
    # fourth LOGIN, before the server's close of that session arrives.
    await until(lambda: len(env.of(Reconnected)) >= 5 and ws.connected)
    # Each short-lived session counts as another attempt: the backoff grows instead of
    # starting over at every successful LOGIN.
    assert [d.attempt for d in env.of(Disconnected)] == [1, 2, 3, 4, 5]
    assert [r.attempt for r in env.of(Reconnected)] == [1, 2, 3, 4, 5]


async def test_close_while_the_first_session_is_connecting_ends_start(env: Env) -> None:
    env.rt.faults.ws_frame_delay_s = 1.0  # the LOGIN ack is slow to come
    ws = env.client()
    starting = asyncio.create_task(ws.start())
    await asyncio.sleep(0.2)
    await ws.close()
    async with asyncio.timeout(1.0):
        with pytest.raises(TransportError):
            await starting


async def test_close_during_reconnect_backoff(env: Env) -> None:
    ws = env.client(backoff_base_s=0.4)
    await ws.start()
    env.rt.faults.ws_close_in_handshake = 100
    env.rt.faults.ws_drop_now()
    await until(lambda: bool(env.of(Disconnected)))
    async with asyncio.timeout(1.0):
        await ws.close()
    assert not ws.connected
    assert not env.of(Reconnected)
    with pytest.raises(TransportError):
        await ws.subscribe(["0B"], ["005930"])


async def test_subscribe_while_disconnected_is_queued_and_restored(env: Env) -> None:
    ws = env.client(backoff_base_s=0.2, connect_timeout_s=0.2, login_timeout_s=0.2)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    env.rt.faults.ws_close_in_handshake = 2  # down for >= 0.7 s, longer than those timeouts
    env.rt.faults.ws_drop_now()
    await until(lambda: bool(env.of(Disconnected)))
    async with asyncio.timeout(0.3):  # does not wait for the reconnect
        await ws.subscribe(["0B"], ["000660"])
        await ws.subscribe(["00"], [])
    assert not ws.connected
    await until(lambda: bool(env.of(Reconnected)))
    assert env.rt.registered_pairs() == {("0B", "005930"), ("0B", "000660"), ("00", "")}
    env.rt.publish(trade_entry("000660"))
    await until(lambda: bool(env.of(Trade)))


async def test_registration_in_flight_when_the_connection_drops_is_restored(env: Env) -> None:
    ws = env.client()
    await ws.start()
    env.rt.faults.ws_frame_delay_s = 0.5  # the REG ack is still on its way when the line drops
    pending = asyncio.create_task(ws.subscribe(["0B"], ["035420"]))
    await asyncio.sleep(0.1)
    env.rt.faults.ws_frame_delay_s = 0.0
    await env.rt.drop_all()
    async with asyncio.timeout(1.0):  # released by the drop, not by ack_timeout_s
        await pending
    await until(lambda: bool(env.of(Reconnected)))
    assert ("0B", "035420") in ws.subscriptions.pairs()
    assert ("0B", "035420") in env.rt.registered_pairs()


async def test_the_supervisor_survives_an_unexpected_error(env: Env) -> None:
    ws = env.client()
    await ws.start()
    env.tokens.fail_next = 2
    env.rt.faults.ws_drop_now()
    # Each failed attempt logs its traceback (rendered with locals by the test's console
    # logger: a second or more on a loaded machine), so three attempts get a long wait.
    await until(lambda: bool(env.of(Reconnected)), 15)
    assert env.tokens.fail_next == 0
    assert ws.connected


# 60,000 frames take the client seconds, on a loaded machine more than the module's 20 s.
@pytest.mark.timeout(60)
async def test_ping_is_echoed_under_a_flood_of_real_frames(env: Env) -> None:
    seen = 0

    def consumer(_ev: Event) -> None:
        nonlocal seen
        seen += 1

    ws = env.client(on_event=consumer)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    entry = trade_entry("005930")
    (session,) = env.rt.sessions
    burst = 0
    # At least 30 bursts, and on until three PINGs went out during the flood (a quiet machine
    # reads 60,000 frames in less than three PING intervals).
    while (burst < 30 or session.pings_sent < 3) and burst < 600:
        burst += 1
        for _ in range(2000):
            env.rt.publish(entry)
        # The next burst once the client has read this one (not after a fixed 30 ms): a PING
        # then waits behind one burst at most, not behind all the bursts a starved client
        # (a loaded machine) had not read yet, which no client could echo in time.
        await until(lambda b=burst: seen >= 2000 * b or env.rt.ping_kills > 0, within_s=30.0)
    assert session.pings_sent >= 3
    assert session.pongs >= session.pings_sent - 1
    assert env.rt.ping_kills == 0
    assert ws.sessions == 1


async def scripted_server(
    script: Callable[[web.WebSocketResponse, dict[str, Any]], Any],
) -> tuple[web.AppRunner, str]:
    """A WS endpoint that acks LOGIN and hands every later frame to `script`."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            frame = orjson.loads(msg.data)
            if frame["trnm"] == "LOGIN":
                await ws.send_str('{"trnm":"LOGIN","return_code":0,"return_msg":""}')
            else:
                await script(ws, frame)
        return ws

    app = web.Application()
    app.router.add_get(WS_PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"ws://127.0.0.1:{runner.addresses[0][1]}{WS_PATH}"


async def test_a_mismatched_ack_never_confirms_a_request(env: Env) -> None:
    async def script(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if frame["trnm"] == "REG":
            await ws.send_str('{"trnm":"REMOVE","return_code":0,"return_msg":""}')  # stray
            await ws.send_str('{"trnm":"REG","return_code":1,"return_msg":"refused"}')

    runner, url = await scripted_server(script)
    try:
        ws = env.client()
        ws.url = url
        await ws.start()
        with pytest.raises(RegistrationError):
            await ws.subscribe(["0B"], ["005930"])
        assert ws.subscriptions.pairs() == set()
        assert ws.connected
    finally:
        await ws.close()
        await runner.cleanup()


async def test_ping_is_echoed_while_the_consumer_is_busy(env: Env) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    handled = 0
    max_backlog = 0

    async def slow_consumer() -> None:
        nonlocal handled, max_backlog
        while True:
            await queue.get()
            max_backlog = max(max_backlog, queue.qsize())
            time.sleep(0.01)  # noqa: ASYNC251 - strategy work that blocks the loop on purpose
            await asyncio.sleep(0.03)
            handled += 1

    ws = env.client(on_event=queue.put_nowait)
    consumer = asyncio.create_task(slow_consumer())
    try:
        await ws.start()
        await ws.subscribe(["0B"], ["005930"])
        for _ in range(25):
            for _ in range(10):
                env.rt.publish(trade_entry("005930"))
            await asyncio.sleep(0.05)
        (session,) = env.rt.sessions
        assert session.pings_sent >= 4
        assert session.pongs >= session.pings_sent - 1
        assert env.rt.ping_kills == 0
        assert ws.sessions == 1  # never reconnected
        assert max_backlog > 20  # the consumer really was behind
        assert handled < 250
    finally:
        consumer.cancel()


async def test_reconnect_restores_every_registration_within_3s(env: Env) -> None:
    ws = env.client()
    await ws.start()
    await ws.subscribe(["0B", "0D"], ["005930", "000660", "035420"])
    await ws.subscribe(["00", "04"], [])
    before = env.rt.registered_pairs()
    assert ("00", "") in before
    assert len(before) == 8
    t0 = time.monotonic()
    assert env.rt.faults is not None
    env.rt.faults.ws_drop_now()
    await until(lambda: bool(env.of(Reconnected)), within_s=3.0)
    env.rt.publish(trade_entry("035420"))
    env.rt.publish(order_entry("접수", "0000200"))
    await until(lambda: bool(env.of(Trade)) and bool(env.of(OrderExecution)), within_s=3.0)
    assert time.monotonic() - t0 < 3.0
    assert env.rt.registered_pairs() == before
    (disc,) = env.of(Disconnected)
    assert disc.attempt == 1
    assert env.events.index(disc) < env.events.index(env.of(Reconnected)[0])
    assert ws.sessions == 2


class EagerServer:
    """A WS endpoint that pushes as early as it can: on a new connection a REAL before the
    LOGIN ack, and one right after each REG ack, while the client is still restoring. With
    `order_notices`, each REG ack is also followed by an order notice (00)."""

    def __init__(self, order_notices: bool = False) -> None:
        self.order_notices = order_notices
        self.conns: list[web.WebSocketResponse] = []
        self.regs: list[int] = []
        """REGs acknowledged, per connection."""
        self.runner: web.AppRunner | None = None
        self.url = ""

    @staticmethod
    def real(*entries: dict[str, Any]) -> str:
        return orjson.dumps({"trnm": "REAL", "data": list(entries)}).decode()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        n = len(self.conns)
        self.conns.append(sock)
        self.regs.append(0)
        async for msg in sock:
            frame = orjson.loads(msg.data)
            if frame["trnm"] == "LOGIN":
                if n > 0:
                    await sock.send_str(self.real(trade_entry("005930")))
                await sock.send_str('{"trnm":"LOGIN","return_code":0,"return_msg":""}')
            elif frame["trnm"] == "REG":
                self.regs[n] += 1
                await sock.send_str('{"trnm":"REG","return_code":0,"return_msg":""}')
                pushed = [trade_entry(frame["data"][0]["item"][0])]
                if self.order_notices:
                    pushed.append(order_entry("접수", f"{n * 10 + self.regs[n]:07d}"))
                await sock.send_str(self.real(*pushed))
        return sock

    async def __aenter__(self) -> EagerServer:
        app = web.Application()
        app.router.add_get(WS_PATH, self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"ws://127.0.0.1:{self.runner.addresses[0][1]}{WS_PATH}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


TWO_GROUPS = [f"{100000 + i:06d}" for i in range(150)]


async def test_reconnected_comes_before_any_event_of_the_new_connection(env: Env) -> None:
    acks_at_reconnect: list[int] = []
    async with EagerServer() as server:

        def consumer(ev: Event) -> None:
            env.events.append(ev)
            if isinstance(ev, Reconnected):
                acks_at_reconnect.append(server.regs[-1])

        ws = env.client(on_event=consumer)
        ws.url = server.url
        await ws.start()
        await ws.subscribe(["0B"], TWO_GROUPS)
        await until(lambda: len(env.of(Trade)) == 2)
        await server.conns[0].close()
        await until(lambda: len(env.of(Trade)) == 5)
        await ws.close()
    after = env.events[env.events.index(env.of(Disconnected)[0]) :]
    assert [type(e).__name__ for e in after] == [
        "Disconnected",
        "Reconnected",
        "Trade",
        "Trade",
        "Trade",
    ]
    assert acks_at_reconnect == [2]  # both groups acknowledged before Reconnected
    assert [e.symbol for e in after[2:]] == ["005930", "100000", "100100"]  # in arrival order
    assert ws.held_dropped == 0


async def test_events_held_during_a_restore_are_bounded_but_never_order_notices(
    env: Env,
) -> None:
    async with EagerServer(order_notices=True) as server:
        ws = env.client(max_held_events=1)
        ws.url = server.url
        await ws.start()
        await ws.subscribe(["0B"], TWO_GROUPS)
        await until(lambda: len(env.of(OrderExecution)) == 2)
        await server.conns[0].close()
        await until(lambda: len(env.of(OrderExecution)) == 4)
        await ws.close()
    after = env.events[env.events.index(env.of(Reconnected)[0]) + 1 :]
    # Held: the trade pushed before the LOGIN ack, then only the order notices.
    assert [type(e).__name__ for e in after] == ["Trade", "OrderExecution", "OrderExecution"]
    assert [e.order_no for e in after[1:]] == ["0000011", "0000012"]
    assert ws.held_dropped == 2


async def test_relogin_with_a_fresh_token_after_expiry(env: Env) -> None:
    valid = {"tok-1"}
    env.rt.token_ok = valid.__contains__
    ws = env.client()
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    valid.clear()
    valid.add("tok-2")  # tok-1 expired on the server side
    await env.rt.drop_all()
    await until(lambda: bool(env.of(Reconnected)))
    assert env.tokens.invalidated == ["tok-1"]
    (session,) = env.rt.sessions
    assert session.token == "tok-2"
    assert ("0B", "005930") in session.registered


async def test_silent_server_is_detected_and_replaced(env: Env) -> None:
    ws = env.client(stale_after_s=0.25, stale_grace_s=0.25)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    env.rt.faults.ws_silent = True
    await until(lambda: bool(env.of(Disconnected)), within_s=3.0)
    env.rt.faults.ws_silent = False
    await until(lambda: bool(env.of(Reconnected)), within_s=3.0)
    env.rt.publish(trade_entry("005930"))
    await until(lambda: bool(env.of(Trade)))


async def test_a_frozen_server_makes_the_feed_stale_and_then_replaced(env: Env) -> None:
    # The simulator's PING comes every 0.2 s: 0.5 s of silence is a frozen server.
    ws = env.client(stale_after_s=0.5, stale_grace_s=0.5, backoff_base_s=0.5)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    assert (ws.state, ws.connected, ws.stale) == (FeedState.LIVE, True, False)
    env.rt.faults.ws_silent = True  # what SIGSTOP on the server looks like from here
    await until(lambda: bool(env.of(FeedStale)))
    # Stale, and every reading says so while the TCP connection is still open.
    assert (ws.state, ws.connected, ws.stale) == (FeedState.STALE, False, True)
    state = ws.debug_state()
    assert state["state"] == "stale"
    assert state["silent_s"] >= 0.5
    assert env.of(FeedStale)[-1].silent_s >= 0.5
    assert not env.of(Disconnected)  # the grace period runs first
    await until(lambda: bool(env.of(Disconnected)))
    (disc,) = env.of(Disconnected)
    assert disc.reason == "stale"
    assert not ws.stale
    env.rt.faults.ws_silent = False
    await until(lambda: bool(env.of(Reconnected)))
    kinds = [type(e) for e in env.events]
    assert kinds.index(FeedStale) < kinds.index(Disconnected) < kinds.index(Reconnected)
    assert not env.of(FeedResumed)
    assert (ws.state, ws.connected, ws.sessions) == (FeedState.LIVE, True, 2)
    env.rt.publish(trade_entry("005930"))
    await until(lambda: bool(env.of(Trade)))


async def test_a_feed_that_speaks_again_within_the_grace_stays_up(env: Env) -> None:
    ws = env.client(stale_after_s=0.5, stale_grace_s=10.0)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    env.rt.faults.ws_silent = True
    await until(lambda: bool(env.of(FeedStale)))
    assert ws.stale
    env.rt.faults.ws_silent = False
    env.rt.publish(trade_entry("005930"))
    await until(lambda: bool(env.of(Trade)))
    kinds = [type(e) for e in env.events]
    assert kinds.index(FeedStale) < kinds.index(FeedResumed) < kinds.index(Trade)
    assert env.of(FeedResumed)[0].silent_s >= 0.5
    assert (ws.state, ws.connected, ws.sessions) == (FeedState.LIVE, True, 1)
    assert not env.of(Disconnected)


async def test_150_symbols_register_in_two_groups(env: Env) -> None:
    ws = env.client()
    await ws.start()
    symbols = [f"{100000 + i:06d}" for i in range(150)]
    await ws.subscribe(["0B"], symbols)
    (session,) = env.rt.sessions
    assert sorted(len(g) for g in session.groups.values()) == [50, 100]
    assert len(env.rt.reg_frames) == 2
    env.rt.publish(trade_entry(symbols[149]))
    await until(lambda: bool(env.of(Trade)))


async def test_every_order_status_arrives_decoded(env: Env) -> None:
    ws = env.client()
    await ws.start()
    await ws.subscribe(["00"], [])
    for i, status in enumerate(["접수", "체결", "확인", "취소", "거부"]):
        env.rt.publish(order_entry(status, f"{300 + i:07d}"))
    await until(lambda: len(env.of(OrderExecution)) == 5)
    assert [e.status for e in env.of(OrderExecution)] == list(OrderStatus)


async def test_refused_registration_raises(env: Env) -> None:
    ws = env.client()
    await ws.start()
    env.rt.faults.ws_reject_reg = True
    with pytest.raises(RegistrationError) as info:
        await ws.subscribe(["0B"], ["005930"])
    assert info.value.return_code == 1
    assert ws.subscriptions.pairs() == set()


async def test_a_registration_refused_on_restore_is_dropped_not_retried_forever(env: Env) -> None:
    ws = env.client(backoff_base_s=0.05)
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    await ws.subscribe(["00"], [])
    env.rt.faults.ws_reject_reg = True  # e.g. a code delisted while the line was down
    env.rt.faults.ws_drop_now()
    # One reconnect, not a loop: the refused registrations leave the book, the session stays.
    await until(lambda: bool(env.of(Reconnected)))
    assert ws.subscriptions.pairs() == set()
    assert env.rt.logins == 2  # no extra connection per refused group either
    assert ws.sessions == 2
    assert len(env.of(Disconnected)) == 1
    assert ws.connected
    env.rt.faults.ws_reject_reg = False
    await ws.subscribe(["0B"], ["000660"])  # the session still takes registrations
    assert env.rt.registered_pairs() == {("0B", "000660")}


async def test_frames_are_recorded_for_replay(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    ws = env.client(recorder=FrameRecorder(path))
    await ws.start()
    await ws.subscribe(["0B"], ["005930"])
    env.rt.publish(trade_entry("005930"))
    await until(lambda: bool(env.of(Trade)))
    await ws.close()
    frames = list(read_recording(path))
    kinds = [decode_frame(f.frame).kind.value for f in frames]
    assert kinds[:4] == ["SYSTEM", "LOGIN", "REG", "REAL"]
    assert all(f.ts > 1e9 for f in frames)


@pytest.mark.parametrize("offered", [True, False])
async def test_compression_is_offered_as_configured_and_events_arrive_either_way(
    env: Env, offered: bool
) -> None:
    ws = env.client(compression=offered)
    assert ws.compressed is None
    await ws.start()
    assert ws.compressed is offered  # the simulator (aiohttp) takes deflate when offered
    await ws.subscribe(["0B"], ["005930"])
    env.rt.publish(trade_entry("005930"))
    await until(lambda: len(env.of(Trade)) == 1)
    assert env.of(Trade)[0].price == 70_000


async def test_an_ack_failed_after_its_waiter_left_is_not_logged_as_unretrieved(
    env: Env,
) -> None:
    # A flap fails every ack still awaited with ConnectionClosed; one whose waiter has gone
    # (cancelled, timed out) was then logged by asyncio, on collection, as "Future exception
    # was never retrieved", a traceback per flap that alarms for nothing.
    import gc

    seen: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(str(ctx.get("message"))))
    try:
        ws = env.client()
        abandoned: asyncio.Future[Any] = loop.create_future()
        ws._acks.append(("REG", abandoned))
        ws._fail_acks()
        assert isinstance(abandoned.exception(), Exception)  # the waiter's view is unchanged
        ws2 = env.client()
        abandoned = loop.create_future()
        ws2._acks.append(("REG", abandoned))
        ws2._fail_acks()
        del abandoned
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert seen == []
