"""The simulator's realtime endpoint: Kiwoom's WebSocket protocol over aiohttp.

LOGIN (optionally preceded by SYSTEM frames), PING with a deadline, REG/REMOVE acks and REAL
pushes batched per session, plus fault knobs for tests (drop, delay, silence, no PING, tokens).
Any local process can connect (the simulator gives a token to any app key), so everything a
client can make it keep is bounded: sessions, registrations, queued pushes, the REG history.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import structlog
from aiohttp import WSMsgType, web

from engine.clock import SYSTEM_CLOCK, Clock
from engine.kiwoom import catalog
from engine.sim.conditions import ConnConditions, SimConditions, hit_of
from engine.sim.faults import Faults
from engine.sim.stamps import Stamps

log = structlog.get_logger(__name__)

ACCOUNT_TYPES: Final = frozenset({"00", "04"})
ITEMLESS_TYPES: Final = ACCOUNT_TYPES | {"0s"}
"""Types registered with item "" and pushed to whoever registered them: the account's, and
0s (장운영구분), which is about the market, not a symbol."""
KEPT_TYPES: Final = ACCOUNT_TYPES | {"02"}
"""Never dropped from a full queue: a lost fill or a lost condition leave would mislead."""
CNSR_TRNMS: Final = frozenset({"CNSRLST", "CNSRREQ", "CNSRCLR"})
LOGIN_FAIL_CODE: Final = 805004
LOGIN_FAIL_MSG: Final = (
    "토큰 인증에 실패했습니다. 접속을 종료합니다 [CODE=8005, MESSAGE=Token이 유효하지 않습니다]"
)
SYSTEM_FRAME: Final = {
    "trnm": "SYSTEM",
    "code": "R10004",
    "message": "접속허용요청(토큰)이 들어오지 않았습니다",
}
MAX_ITEMS_PER_GROUP: Final = 100
MAX_ITEM_CHARS: Final = 20
"""Longest item code a REG may carry (005930_AL is 9); longer ones are refused, so a session's
registrations cost a bounded amount whatever the client sends."""
MAX_REGISTRATIONS: Final = 10_000
"""(type, item) pairs one session may hold, summed over its groups: every KRX stock times 0B,
0C and 0D is about 8,100. A REG past it is refused. Costs under 2 MB a session."""
MAX_SESSIONS: Final = 32
"""Connections served at once (logged in or not). Past it a new connection is closed at once
with code 1000, as Kiwoom closes clients it will not serve; the client backs off and retries."""
MAX_REG_FRAME_CHARS: Final = 8_192
"""Longest REG/REMOVE frame answered; a full 100-item group takes under 2 KB. A longer one is
refused without being kept."""
REG_HISTORY: Final = 64
"""REG/REMOVE frames kept in `SimRealtime.reg_frames` (oldest dropped first): at most
64 x 8 KB of JSON, under 8 MB once parsed, however long the simulator runs."""


_KNOWN_TYPES: Final = frozenset(catalog.realtime_types())


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


@dataclass(eq=False)
class SimSession:
    """One client connection as the simulator sees it."""

    ws: web.WebSocketResponse
    sid: int
    logged_in: bool = False
    token: str = ""
    registered: set[tuple[str, str]] = field(default_factory=set)
    groups: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pings_sent: int = 0
    pongs: int = 0
    awaiting_pong: bool = False
    dropped: int = 0
    """Market-data entries dropped from `pending` because the client did not keep up."""
    closed_reason: str = ""
    queued: int = 0
    """Entries ever put in `pending`."""
    gone: int = 0
    """Entries that left `pending`: written to the socket or dropped."""
    flushes: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    """`flush()` waiters: (the `queued` count to reach, the future to resolve)."""
    cnsr: ConnConditions = field(default_factory=ConnConditions)
    """This connection's condition searches (CNSRLST done, realtime searches)."""

    def settle_flushes(self, *, closing: bool = False) -> None:
        """Resolve the flushes whose entries are all gone (every one when closing)."""
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self.flushes:
            if closing or self.gone >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                waiting.append((target, fut))
        self.flushes = waiting


class SimRealtime:
    """Serves `GET /api/dostk/websocket` (`handle`) and fans out REAL entries (`publish`).

    Every fault knob lives in engine.sim.faults.Faults (`faults`, shared with the REST side;
    a private one when none is given): SYSTEM frames before the LOGIN ack, frame delay,
    silence, no PING, the PING echo deadline, refused REG, closes during or right after
    LOGIN, and `ws_drop_now()`. `token_ok` decides whether a LOGIN token is valid.

    Each session's pending queue holds at most `max_pending` entries (about 2.8 KB each, so
    10,000 cost ~28 MB; sessions registered for the same items share the entries): past that
    the oldest market-data entry (0B, 0D, ...) is dropped and counted in
    `SimSession.dropped`, which is safe because a newer print or book supersedes it. Account
    entries (00, 04) are never dropped: a lost fill would make the client's account disagree
    with kt00018, so the queue may exceed the bound by the account entries it holds.
    """

    def __init__(
        self,
        config_ping_interval_s: float = 20.0,
        token_ok: Callable[[str], bool] = lambda _t: True,
        clock: Clock = SYSTEM_CLOCK,
        faults: Faults | None = None,
        *,
        login_timeout_s: float = 10.0,
        max_batch: int = 50,
        max_pending: int = 10_000,
        sor_yn: str = "Y",
        system_frames_before_login: int | None = None,
    ) -> None:
        self.ping_interval_s = config_ping_interval_s
        self.token_ok = token_ok
        self.clock = clock
        self.faults = faults if faults is not None else Faults()
        if system_frames_before_login is not None:
            # Kept so existing callers keep working; the knob itself lives in Faults.
            self.faults.ws_system_frames_before_login = system_frames_before_login
        self.login_timeout_s = login_timeout_s
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.sor_yn = sor_yn
        self.sessions: set[SimSession] = set()
        self.logins = 0
        self.login_failures = 0
        self.ping_kills = 0
        self.dropped = 0
        """Market-data entries dropped over all sessions (see the class docstring)."""
        self.reg_frames: deque[dict[str, Any]] = deque(maxlen=REG_HISTORY)
        """The last REG_HISTORY REG/REMOVE frames answered, oldest first (for tests)."""
        self.refused_sessions = 0
        """Connections closed on arrival because MAX_SESSIONS were already served."""
        self._next_sid = 0
        self._drop_tasks: set[asyncio.Task[Any]] = set()
        self.stamps: Stamps | None = None
        """Latency stamps of each REAL frame written (sim.stamp_file), or None: off."""
        self.conditions: SimConditions | None = None
        """Serves CNSRLST/CNSRREQ/CNSRCLR when set (the Simulator sets it)."""
        self.on_registered: Callable[[SimSession, set[tuple[str, str]]], None] | None = None
        """Told the (type, item) pairs a REG added to a session (the Simulator pushes what a
        new registration starts with: the session state, a symbol's 0g)."""
        self.faults.on_ws_drop(self._on_fault_drop)

    # --- knobs -------------------------------------------------------------------------------

    @property
    def pong_timeout_s(self) -> float:
        t = self.faults.ws_pong_timeout_s
        return t if t is not None else self.ping_interval_s

    def _on_fault_drop(self) -> None:
        task = asyncio.get_running_loop().create_task(self.drop_all())
        self._drop_tasks.add(task)
        task.add_done_callback(self._drop_tasks.discard)

    async def drop_all(self) -> int:
        """Close every connection at once (abnormal close 1011); returns how many."""
        sessions = list(self.sessions)
        for s in sessions:
            s.closed_reason = "dropped"
            with contextlib.suppress(Exception):
                await s.ws.close(code=1011, message=b"sim drop")
        return len(sessions)

    # --- publishing --------------------------------------------------------------------------

    def publish(self, entry: dict[str, Any]) -> None:
        """Queue a REAL entry for every logged-in session registered for its (type, item).

        Account types (00/04) go to every session that registered the type, whatever the item.
        Never blocks; the per-session sender batches what is pending into multi-entry frames.
        """
        rtype = entry.get("type", "")
        if rtype == "02":
            # A condition hit (a replayed one) goes to the connections whose realtime search
            # it belongs to, as nothing registers 02; the members move with it. One that is
            # malformed past its seq (a bad 843, say) goes as it was recorded, moving nothing.
            values = entry.get("values")
            seq = values.get("841") if isinstance(values, dict) else None
            seq = seq.strip() if isinstance(seq, str) else ""
            hit = hit_of(entry)
            if hit is not None and self.conditions is not None:
                self.conditions.replayed(*hit)
            for s in self.sessions:
                if s.logged_in and seq in s.cnsr.realtime:
                    if hit is not None:
                        s.cnsr.tell(*hit)
                    self.push_to(s, entry)
            return
        key = (rtype, "" if rtype in ITEMLESS_TYPES else entry.get("item", ""))
        for s in self.sessions:
            if s.logged_in and key in s.registered:
                self.push_to(s, entry)

    def push_to(self, s: SimSession, entry: dict[str, Any]) -> None:
        """Queue a REAL entry for one session (a condition hit is that connection's own)."""
        if len(s.pending) >= self.max_pending and self._drop_oldest_market(s.pending):
            s.dropped += 1
            s.gone += 1
            self.dropped += 1
        s.pending.append(entry)
        s.queued += 1
        s.wake.set()

    def condition_tick(self, hms: str) -> int:
        """Push every connection the 02 hits its realtime searches owe it; returns how many."""
        conds = self.conditions
        if conds is None:
            return 0
        n = 0
        for s in self.sessions:
            if s.logged_in and s.cnsr.realtime and not s.ws.closed:
                for entry in conds.changes(s.cnsr, hms):
                    self.push_to(s, entry)
                    n += 1
        return n

    async def flush(self) -> None:
        """Return once every entry published so far was written to (or dropped for) every
        logged-in session. Waits while a session is silenced (faults.ws_silent); a session
        that closes no longer holds it up."""
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for s in self.sessions:
            if s.logged_in and s.gone < s.queued:
                fut = loop.create_future()
                s.flushes.append((s.queued, fut))
                waits.append(fut)
        if waits:
            await asyncio.gather(*waits)

    @staticmethod
    def _drop_oldest_market(pending: deque[dict[str, Any]]) -> bool:
        """Remove the oldest market-data entry; False when only account entries are queued."""
        for i, e in enumerate(pending):
            if e.get("type") not in KEPT_TYPES:
                del pending[i]
                return True
        return False

    def registered_pairs(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for s in self.sessions:
            out |= s.registered
        return out

    # --- the endpoint ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=2**22)
        await ws.prepare(request)
        if len(self.sessions) >= MAX_SESSIONS:
            self.refused_sessions += 1
            log.warning("sim_ws_too_many_sessions", sessions=len(self.sessions))
            await ws.close(code=1000, message=b"too many connections")
            return ws
        self._next_sid += 1
        s = SimSession(ws, self._next_sid)
        self.sessions.add(s)
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._serve(s, tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.sessions.discard(s)
            s.settle_flushes(closing=True)
            if not ws.closed:
                await ws.close()
        return ws

    async def _send(self, s: SimSession, obj: dict[str, Any] | str) -> None:
        delay = self.faults.ws_frame_delay_s
        if delay > 0:
            await asyncio.sleep(delay)
        if s.ws.closed:
            return
        await s.ws.send_str(obj if isinstance(obj, str) else _dumps(obj))

    async def _serve(self, s: SimSession, tasks: list[asyncio.Task[None]]) -> None:
        ws = s.ws
        try:
            async with asyncio.timeout(self.login_timeout_s):
                msg = await ws.receive()
        except TimeoutError:
            await self._send(s, SYSTEM_FRAME)
            return
        if msg.type is not WSMsgType.TEXT:
            return
        frame = self._parse(msg.data)
        if frame is None or frame.get("trnm") != "LOGIN":
            await self._send(s, SYSTEM_FRAME)
            return
        token = frame.get("token")
        if not isinstance(token, str) or not self.token_ok(token):
            self.login_failures += 1
            await self._send(
                s, {"trnm": "LOGIN", "return_code": LOGIN_FAIL_CODE, "return_msg": LOGIN_FAIL_MSG}
            )
            return
        if self.faults.take_ws_close_in_handshake():
            s.closed_reason = "closed in handshake"
            await ws.close(code=1000, message=b"too many connections")
            return
        for _ in range(self.faults.ws_system_frames_before_login):
            await self._send(s, SYSTEM_FRAME)
        await self._send(
            s, {"trnm": "LOGIN", "return_code": 0, "return_msg": "", "sor_yn": self.sor_yn}
        )
        if self.faults.take_ws_close_after_login():
            s.closed_reason = "closed after login"
            await ws.close(code=1000, message=b"bye")
            return
        s.logged_in = True
        s.token = token
        self.logins += 1
        tasks.append(asyncio.create_task(self._pinger(s)))
        tasks.append(asyncio.create_task(self._sender(s)))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            if self.faults.ws_silent:
                continue
            frame = self._parse(msg.data)
            if frame is None:
                continue
            trnm = frame.get("trnm")
            if trnm == "PING":
                s.pongs += 1
                s.awaiting_pong = False
            elif trnm in ("REG", "REMOVE"):
                before = s.registered
                await self._send(s, self._on_reg(s, trnm, frame, len(msg.data)))
                added = s.registered - before
                if added and self.on_registered is not None:
                    self.on_registered(s, added)
            elif trnm in CNSR_TRNMS:
                if self.conditions is None:
                    answer = {"trnm": trnm, "return_code": 1, "return_msg": "조건검색 미지원"}
                else:
                    answer = self.conditions.on_request(s.cnsr, frame)
                await self._send(s, answer)
            elif trnm == "LOGIN":
                await self._send(
                    s, {"trnm": "LOGIN", "return_code": 0, "return_msg": "", "sor_yn": self.sor_yn}
                )

    @staticmethod
    def _parse(data: str) -> dict[str, Any] | None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None

    def _on_reg(self, s: SimSession, trnm: str, frame: dict[str, Any], size: int) -> dict[str, Any]:
        """Apply a REG/REMOVE to the session and return its ack. A refused REG changes
        nothing; a group emptied by REMOVE is forgotten."""

        def fail(msg: str) -> dict[str, Any]:
            return {"trnm": trnm, "return_code": 1, "return_msg": msg}

        if size > MAX_REG_FRAME_CHARS:
            return fail("요청 크기 초과")
        self.reg_frames.append(frame)
        if trnm == "REG" and self.faults.ws_reject_reg:
            return fail("등록 실패 (sim reject_reg)")
        grp = frame.get("grp_no")
        data = frame.get("data")
        if not isinstance(grp, str) or not grp or len(grp) > 4 or not isinstance(data, list):
            return fail("grp_no/data 형식 오류")
        pairs: set[tuple[str, str]] = set()
        for d in data:
            if not isinstance(d, dict):
                return fail("data 형식 오류")
            items, types = d.get("item"), d.get("type")
            if not isinstance(items, list) or not isinstance(types, list) or not types:
                return fail("item/type 형식 오류")
            for t in types:
                if not isinstance(t, str):
                    return fail("type 형식 오류")
                if t not in _KNOWN_TYPES:
                    return fail(f"실시간 항목이 올바르지 않습니다 (type={t})")
                if t in ITEMLESS_TYPES:
                    pairs.add((t, ""))
                    continue
                for it in items:
                    if not isinstance(it, str) or not it or len(it) > MAX_ITEM_CHARS:
                        return fail("item 형식 오류")
                    pairs.add((t, it))
        old = s.groups.get(grp, set())
        if trnm == "REG":
            group = pairs if frame.get("refresh", "1") == "0" else old | pairs
            if len({it for _t, it in group}) > MAX_ITEMS_PER_GROUP:
                return fail("그룹당 종목 수 초과")
            held = sum(len(g) for g in s.groups.values()) - len(old)
            if held + len(group) > MAX_REGISTRATIONS:
                return fail("실시간 등록 한도 초과")
        else:
            group = old - pairs
        if group:
            s.groups[grp] = group
        else:
            s.groups.pop(grp, None)
        s.registered = set().union(*s.groups.values())
        return {"trnm": trnm, "return_code": 0, "return_msg": ""}

    async def _pinger(self, s: SimSession) -> None:
        """PING every interval; a session that has not echoed a PING within pong_timeout_s
        is closed (checked on a timer, so the PING cadence does not depend on the timeout)."""
        loop = asyncio.get_running_loop()
        while not s.ws.closed:
            await asyncio.sleep(self.ping_interval_s)
            if self.faults.ws_ping_stop or self.faults.ws_silent:
                s.awaiting_pong = False
                continue
            s.awaiting_pong = True
            s.pings_sent += 1
            await self._send(s, {"trnm": "PING"})
            loop.call_later(self.pong_timeout_s, self._check_pong, s, s.pings_sent)

    def _check_pong(self, s: SimSession, ping_no: int) -> None:
        if s.ws.closed or self.faults.ws_ping_stop or s.pongs >= ping_no:
            return
        self.ping_kills += 1
        s.closed_reason = "no PING echo"
        log.info("sim_ws_ping_timeout", sid=s.sid)
        task = asyncio.get_running_loop().create_task(
            s.ws.close(code=1000, message=b"PING timeout")
        )
        self._drop_tasks.add(task)
        task.add_done_callback(self._drop_tasks.discard)

    async def _sender(self, s: SimSession) -> None:
        while not s.ws.closed:
            await s.wake.wait()
            s.wake.clear()
            while s.pending and not s.ws.closed:
                if self.faults.ws_silent:
                    break
                n = min(len(s.pending), self.max_batch)
                batch = [s.pending.popleft() for _ in range(n)]
                await self._send(s, {"trnm": "REAL", "data": batch})
                if self.stamps is not None:
                    self.stamps.frame(s.sid)
                s.gone += n
                s.settle_flushes()
