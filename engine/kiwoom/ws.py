"""The Kiwoom WebSocket connection: connect, LOGIN, REG, echo PING, notice silence, reconnect.

Only moves frames: decoding is engine/kiwoom/codec.py, the session protocol is
engine/kiwoom/wsproto.py, the silence rules are engine/kiwoom/liveness.py. Events go to a plain
synchronous callback, so the receive loop never awaits consumer code and a PING is echoed as
soon as its frame is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from engine.clock import SYSTEM_CLOCK, Clock
from engine.events import (
    Balance,
    ConditionHit,
    Disconnected,
    DisconnectReason,
    Event,
    FeedResumed,
    FeedStale,
    OrderExecution,
    Reconnected,
)
from engine.kiwoom.codec import CodecStats, FrameKind, FrameResult, decode_frame
from engine.kiwoom.errors import KiwoomError, TransportError
from engine.kiwoom.fids import ITEMLESS_TYPES
from engine.kiwoom.liveness import FeedState, Liveness, Verdict
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.settings import FeedSettings
from engine.kiwoom.wsproto import (
    MAX_SEARCH_PAGES,
    ConditionBook,
    ConditionError,
    Handshake,
    Interests,
    LoginError,
    RegistrationError,
    RegRequest,
    Subscriptions,
    answer_seq,
    cnsr_clear_frame,
    cnsr_list_frame,
    cnsr_search_frame,
    login_frame,
    parse_condition_list,
    parse_search_page,
)

if TYPE_CHECKING:
    from engine.config import Config

log = structlog.get_logger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
TokenInvalidate = Callable[[str], Awaitable[None]]
EventCallback = Callable[[Event], object]
"""Called for every event; a true return asks for a turn of the loop before the next event of
the frame is decoded (the consumer started an order, whose POST should leave first)."""

MAX_HELD_EVENTS = 10_000
"""Market events held while a new session restores its registrations (see KiwoomWebSocket)."""
MAX_REALTIME_CONDITIONS = 10
"""Realtime condition searches Kiwoom allows per login (kiwoom-restful's comment)."""
DIRECT_OWNER = ""
"""The owner of registrations made with `subscribe(types, items)` (the daemon's own)."""

_CnsrAnswer = Callable[[FrameResult], None]


class KiwoomWebSocket:
    """One logical realtime session that survives disconnects.

    `on_event` is called synchronously from the receive loop for every event, including
    `Disconnected` and `Reconnected`; it must not block (hand work to a queue). An exception
    from it is logged and counted (`consumer_errors`), never propagated.

    Reconnects back off exponentially with jitter; the backoff only starts over once a session
    has stayed up for `stable_after_s`, so a server that accepts LOGIN and then closes (Kiwoom
    does this to clients that reconnect too fast) is not hammered. A LOGIN refused for its
    token invalidates that token and retries once at once with a fresh one; any other failure
    waits out the backoff.

    A session that hears nothing, not even a PING, for `stale_after_s` is stale: `FeedStale` is
    emitted once and `state` says so. A frame within `stale_grace_s` more ends it
    (`FeedResumed`); otherwise the connection is dropped (`Disconnected`, reason "stale") and
    replaced.

    Events that arrive while a new session restores its registrations are held and delivered
    after `Reconnected`, which therefore precedes every event of its connection. At most
    `max_held_events` market events are held; past that the newest are dropped and counted in
    `held_dropped`, which is safe because later prints and books supersede them. Order notices
    and balances (00/04) are always held: the account must not lose one.
    """

    def __init__(
        self,
        url: str,
        token_provider: TokenProvider,
        token_invalidate: TokenInvalidate,
        clock: Clock = SYSTEM_CLOCK,
        on_event: EventCallback | None = None,
        *,
        recorder: FrameRecorder | None = None,
        connect_timeout_s: float = 5.0,
        login_timeout_s: float = 10.0,
        ack_timeout_s: float = 10.0,
        stale_after_s: float = 45.0,
        stale_grace_s: float = 10.0,
        compression: bool = True,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 10.0,
        max_held_events: int = MAX_HELD_EVENTS,
        rng: random.Random | None = None,
        sequence: Callable[[], int] | None = None,
        max_realtime_conditions: int = MAX_REALTIME_CONDITIONS,
    ) -> None:
        self.url = url
        self._token_provider = token_provider
        self._token_invalidate = token_invalidate
        self._clock = clock
        self._on_event: EventCallback = on_event or (lambda _e: None)
        # Events are built stamped with the frame's receive time and, when given, a number
        # from the bus's sequence (EventBus.next_seq), so the bus need not stamp them again.
        self._sequence = sequence
        self._time_ns = clock.time_ns
        self._recorder = recorder
        self._compression: Literal["deflate"] | None = "deflate" if compression else None
        self._connect_timeout_s = connect_timeout_s
        self._login_timeout_s = login_timeout_s
        self._ack_timeout_s = ack_timeout_s
        self._stale_after_s = stale_after_s
        self._stale_grace_s = stale_grace_s
        self._max_held = max_held_events
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._stable_after_s = stable_after_s
        self._rng = rng or random.Random()
        self.stats = CodecStats()
        self.subscriptions = Subscriptions()
        """The registrations every new session restores (acknowledged or queued)."""
        self.consumer_errors = 0
        self.held_dropped = 0
        """Market events dropped because a restore held more than max_held_events."""
        self.sessions = 0
        """Successful logins so far (1 after start, +1 per reconnect)."""
        self.sor: bool | None = None
        self._conn: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._acks: deque[tuple[str, asyncio.Future[FrameResult]]] = deque()
        # Held while REG/REMOVE are in flight and while a new session restores, so the book
        # and the server never disagree about what was sent; at most one ack is outstanding.
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._state = FeedState.DOWN
        self._live: Liveness | None = None
        # Events of a session that is not announced yet (None: deliver at once).
        self._hold: list[Event] | None = None
        self._last_token = ""
        self.interests = Interests()
        """Who wants which symbol (`subscribe_owner`); registrations are its union."""
        self.condition_book = ConditionBook(max_realtime_conditions)
        """The login's conditions and every realtime search's members (restored on reconnect)."""
        # One condition-search request at a time: answers are matched by (trnm, seq).
        self._cnsr_lock = asyncio.Lock()
        self._cnsr_waiters: dict[
            tuple[str, str], tuple[asyncio.Future[FrameResult], _CnsrAnswer | None]
        ] = {}
        self._conn_no = 0  # logins so far, failed restores included
        self._listed_conn = -1  # the connection CNSRLST was last answered on

    @classmethod
    def from_settings(
        cls,
        feed: FeedSettings,
        rest: KiwoomRest,
        on_event: EventCallback,
        clock: Clock = SYSTEM_CLOCK,
        **extra: Any,
    ) -> KiwoomWebSocket:
        """The feed `feed` describes, on `rest`'s tokens. `extra` adds or overrides
        arguments (a recorder, the bus's sequence)."""
        args: dict[str, Any] = {
            "connect_timeout_s": feed.connect_timeout_s,
            "stale_after_s": feed.stale_after_s,
            "stale_grace_s": feed.stale_grace_s,
            "compression": feed.compression,
            "max_realtime_conditions": feed.max_realtime_conditions,
        }
        args.update(extra)
        return cls(feed.url, rest.tokens.token, rest.tokens.invalidate, clock, on_event, **args)

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        rest: KiwoomRest,
        on_event: EventCallback,
        clock: Clock = SYSTEM_CLOCK,
        **extra: Any,
    ) -> KiwoomWebSocket:
        """The feed `cfg` describes (FeedSettings.from_config, the one place the `[kiwoom]`
        feed settings are read), as `from_settings`."""
        return cls.from_settings(FeedSettings.from_config(cfg), rest, on_event, clock, **extra)

    # --- public API --------------------------------------------------------------------------

    @property
    def state(self) -> FeedState:
        return self._state

    @property
    def connected(self) -> bool:
        """True while a session is up, restored and hearing frames (False while stale)."""
        return self._state is FeedState.LIVE

    @property
    def stale(self) -> bool:
        """True while the session is up but silent for stale_after_s (see FeedStale)."""
        return self._state is FeedState.STALE

    @property
    def compressed(self) -> bool | None:
        """Whether the current session's frames come deflated (`compression` offered and the
        server took it); None with no session."""
        conn = self._conn
        if conn is None:
            return None
        return any(e.name == "permessage-deflate" for e in conn.protocol.extensions)

    @property
    def silent_s(self) -> float | None:
        """Seconds since the current session's last frame; None with no session."""
        live = self._live
        if live is None:
            return None
        return round(self._clock.monotonic() - live.last_rx, 3)

    async def start(self) -> None:
        """Connect and LOGIN; return once the first session is up.

        Raises LoginError (carrying Kiwoom's code) or TransportError when the first attempt
        fails (a token error first gets one retry with a fresh token), or TransportError when
        `close` is called meanwhile; after that the connection is kept up in the background
        until `close`.
        """
        if self._task is not None or self._closing:
            raise RuntimeError("already started or closed")
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._supervise(first), name="kiwoom-ws")
        try:
            await first
        except BaseException:
            await self.close()
            raise

    async def subscribe(self, types: Iterable[str], items: Iterable[str]) -> None:
        """Register realtime `types` for `items` (account types 00/04 need no item).

        On a live session: sends REG and returns once every ack came back; raises
        RegistrationError when an ack has return_code != 0 (that request is not kept). With no
        live session, or when the connection is lost before the ack, the registration is
        queued and the next session's restore sends it (a `Reconnected` event follows); this
        never waits for a reconnect. Raises TransportError after `close`.
        """
        types = list(types)
        items = list(items)
        market = [t for t in types if t not in ITEMLESS_TYPES]
        async with self._send_lock:
            self._check_open()
            for req in self.subscriptions.plan_add(types, items):
                await self._request(req)
            if market:
                for item in items:
                    if item:
                        have = self.interests.types_for(DIRECT_OWNER, item)
                        self.interests.change(DIRECT_OWNER, item, have | set(market))

    async def unsubscribe(self, types: Iterable[str], items: Iterable[str]) -> None:
        """REMOVE registrations; same contract as `subscribe`. A type another owner still
        wants (`subscribe_owner`) stays registered for that symbol."""
        tset = set(types)
        account = tset & ITEMLESS_TYPES
        async with self._send_lock:
            self._check_open()
            if account:
                for req in self.subscriptions.plan_remove(account, ()):
                    await self._request(req)
            # Items that lose the same types share their REMOVEs (one per group).
            by_drop: dict[frozenset[str], list[str]] = {}
            for item in dict.fromkeys(items):
                if not item:
                    continue
                have = self.interests.types_for(DIRECT_OWNER, item)
                _add, drop = self.interests.change(DIRECT_OWNER, item, have - tset)
                # What no owner wants any more goes, also a type registered some other way.
                drop = drop | ((tset - account) - self.interests.types_of(item))
                if drop:
                    by_drop.setdefault(drop, []).append(item)
            for drop, its in by_drop.items():
                for req in self.subscriptions.plan_remove(drop, its):
                    await self._request(req)

    async def subscribe_owner(self, owner: str, symbol: str, types: Iterable[str]) -> None:
        """`owner` (a strategy's name) wants realtime `types` of `symbol`.

        A symbol is registered once for all its owners, in groups of at most 100 items with
        refresh "1" (what a group holds is kept); registrations survive reconnects. Same
        contract as `subscribe`; a refused REG leaves the owner's interest as it was."""
        if owner == DIRECT_OWNER:
            raise ValueError("an owner needs a name")
        async with self._send_lock:
            self._check_open()
            before = self.interests.types_for(owner, symbol)
            add, _drop = self.interests.change(owner, symbol, before | set(types))
            try:
                for req in self.subscriptions.plan_add(sorted(add), [symbol]):
                    await self._request(req)
            except BaseException:
                self.interests.change(owner, symbol, before)
                raise

    async def unsubscribe_owner(
        self, owner: str, symbol: str, types: Iterable[str] | None = None
    ) -> None:
        """`owner` no longer wants `types` of `symbol` (None: any). What no other owner
        wants is REMOVEd; the symbol stays registered while one owner is left."""
        async with self._send_lock:
            self._check_open()
            before = self.interests.types_for(owner, symbol)
            keep = frozenset() if types is None else before - set(types)
            _add, drop = self.interests.change(owner, symbol, keep)
            for req in self.subscriptions.plan_remove(drop, [symbol]):
                await self._request(req)

    # --- condition search --------------------------------------------------------------------

    async def conditions(self) -> list[tuple[str, str]]:
        """The login's conditions as (seq, name), from a fresh CNSRLST while live (the list
        of the last one otherwise). Raises TransportError with no session and no list yet,
        ConditionError when Kiwoom refuses."""
        async with self._cnsr_lock:
            if self._ready.is_set():
                await self._list_conditions()
            elif not self.condition_book.names:
                raise TransportError("CNSRLST: not connected")
            return list(self.condition_book.names.items())

    async def search(self, seq: str, realtime: bool = False) -> list[str]:
        """The symbols condition `seq` finds now.

        realtime=False: a one-shot search (search_type 0), every page. realtime=True
        (search_type 1): the search then goes on, its members arrive first as `entered`
        ConditionHit events and every change as a pushed hit; it is repeated after a
        reconnect, the difference published as hits. Raises ConditionError past
        `max_realtime_conditions` or when Kiwoom refuses, TransportError with no session."""
        seq = seq.strip()
        async with self._cnsr_lock:
            if not self._ready.is_set():
                raise TransportError("CNSRREQ: not connected")
            await self._ensure_listed()
            if realtime:
                self.condition_book.check_room(seq)
                await self._start_search(seq)
                return self.condition_book.members(seq)
            symbols: list[str] = []
            key = ""
            for _page in range(MAX_SEARCH_PAGES):
                frame = cnsr_search_frame(seq, realtime=False, next_key=key)
                res = await self._cnsr_request("CNSRREQ", seq, frame)
                page, next_key = parse_search_page(res.message or {})
                symbols.extend(page)
                if next_key is None:
                    return symbols
                key = next_key
            raise TransportError(f"CNSRREQ {seq}: more than {MAX_SEARCH_PAGES} pages")

    async def clear(self, seq: str) -> None:
        """Stop the realtime search of `seq` (CNSRCLR); it is not restored any more. No-op for
        a seq with no realtime search."""
        seq = seq.strip()
        async with self._cnsr_lock:
            if seq not in self.condition_book.realtime:
                return
            self.condition_book.cleared(seq)
            if self._ready.is_set():
                await self._cnsr_request("CNSRCLR", seq, cnsr_clear_frame(seq))

    async def _ensure_listed(self) -> None:
        # Kiwoom serves CNSRREQ only after CNSRLST on the same connection.
        if self._listed_conn != self._conn_no:
            await self._list_conditions()

    async def _list_conditions(self) -> None:
        res = await self._cnsr_request("CNSRLST", "", cnsr_list_frame())
        self.condition_book.set_list(parse_condition_list(res.message or {}))
        self._listed_conn = self._conn_no

    async def _start_search(self, seq: str) -> None:
        def answered(res: FrameResult) -> None:
            # Runs in the receive loop as the answer is read: the members are known, and their
            # hits queued, before any push of this search is dispatched.
            symbols, _more = parse_search_page(res.message or {})
            self._deliver_made(self.condition_book.started(seq, symbols))

        await self._cnsr_request("CNSRREQ", seq, cnsr_search_frame(seq, realtime=True), answered)

    def _deliver_made(self, hits: list[ConditionHit]) -> None:
        """Hand hits the feed made (not pushed) on, stamped like the codec's events."""
        ts = self._time_ns()
        nxt = self._sequence
        events: list[Event] = [
            dataclasses.replace(h, ts_recv=ts, seq=nxt() if nxt is not None else 0) for h in hits
        ]
        if self._hold is not None:
            self._hold_events(events)
        else:
            for ev in events:
                self._emit(ev)

    async def _restore_conditions(self) -> None:
        """After a reconnect: CNSRLST, then every realtime search again; the members that come
        back are compared with those known before the drop (see ConditionBook.started)."""
        book = self.condition_book
        if not book.realtime:
            return
        async with self._cnsr_lock:
            try:
                await self._list_conditions()
            except ConditionError as exc:
                log.error("cnsr_restore_refused", trnm="CNSRLST", error=str(exc))
                for seq in book.realtime:
                    self._deliver_made(book.lost(seq))
                return
            for seq in book.realtime:
                try:
                    await self._start_search(seq)
                except ConditionError as exc:
                    # Refused now (deleted in the HTS, a limit): its members count as left.
                    log.error("cnsr_restore_refused", trnm="CNSRREQ", seq=seq, error=str(exc))
                    self._deliver_made(book.lost(seq))

    async def _cnsr_request(
        self, trnm: str, seq: str, frame: str, on_answer: _CnsrAnswer | None = None
    ) -> FrameResult:
        """Send one condition-search request and wait for its answer (matched by trnm and
        seq). Raises ConditionError when refused, TransportError on a lost connection or no
        answer within ack_timeout_s."""
        conn = self._conn
        if conn is None:
            raise TransportError(f"{trnm}: not connected")
        key = (trnm, seq)
        fut: asyncio.Future[FrameResult] = asyncio.get_running_loop().create_future()
        self._cnsr_waiters[key] = (fut, on_answer)
        try:
            await conn.send(frame)
            async with asyncio.timeout(self._ack_timeout_s):
                res = await fut
        except TimeoutError:
            raise TransportError(f"{trnm} {seq}: no answer") from None
        except ConnectionClosed as exc:
            raise TransportError(f"{trnm} {seq}: connection closed") from exc
        finally:
            waiter = self._cnsr_waiters.get(key)
            if waiter is not None and waiter[0] is fut:
                del self._cnsr_waiters[key]
        if res.return_code != 0:
            code = res.return_code if res.return_code is not None else -1
            raise ConditionError(trnm, code, res.return_msg or "refused without a message")
        return res

    def _resolve_cnsr(self, res: FrameResult) -> None:
        msg = res.message or {}
        key = (res.trnm, "" if res.trnm == "CNSRLST" else answer_seq(msg))
        waiter = self._cnsr_waiters.pop(key, None)
        if waiter is None:
            # A refusal may come without its seq: it answers our one request of that trnm.
            same = [k for k in self._cnsr_waiters if k[0] == res.trnm]
            if res.return_code != 0 and len(same) == 1:
                waiter = self._cnsr_waiters.pop(same[0])
            else:
                log.warning("cnsr_answer_unexpected", trnm=res.trnm, seq=key[1])
                return
        fut, on_answer = waiter
        if fut.done():
            return
        if on_answer is not None and res.return_code == 0:
            try:
                on_answer(res)
            except Exception:
                log.exception("cnsr_answer_failed", trnm=res.trnm)
        fut.set_result(res)

    def _fail_cnsr(self) -> None:
        waiters, self._cnsr_waiters = self._cnsr_waiters, {}
        for fut, _cb in waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(None, None))

    def _book_hits(self, events: Iterable[Event]) -> Iterator[Event]:
        """Pushed hits through the condition book (names filled in, duplicates dropped);
        every other event as it is."""
        pushed = self.condition_book.pushed
        for ev in events:
            if type(ev) is ConditionHit:
                hit = pushed(ev)
                if hit is not None:
                    yield hit
            else:
                yield ev

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stop for good; no Disconnected event is emitted for a requested close. The closing
        handshake gets `timeout_s`; a server that does not answer (frozen, unreachable) has
        its connection aborted instead."""
        self._closing = True
        self._state = FeedState.CLOSED
        self._ready.clear()
        conn = self._conn
        if conn is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await conn.close()
            except Exception:  # TimeoutError included
                conn.transport.abort()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._recorder is not None:
            self._recorder.close()

    def _check_open(self) -> None:
        if self._closing:
            raise TransportError("realtime connection closed")

    # --- session -----------------------------------------------------------------------------

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        try:
            await self._run(first)
        finally:
            if not first.done():
                first.set_exception(TransportError("closed before the first session"))

    async def _run(self, first: asyncio.Future[None]) -> None:
        attempt = 0  # reconnect attempts since the feed was last stable
        down_since: float | None = None
        token_retried = False
        while not self._closing:
            reason, detail = DisconnectReason.ERROR, ""
            up_at: float | None = None
            retry_now = False
            self._state = FeedState.CONNECTING
            try:
                conn = await self._open()
                try:
                    live = await self._login(conn)
                    token_retried = False
                    self._conn = conn
                    reader = asyncio.create_task(self._read_loop(conn, live), name="kiwoom-ws-read")
                    try:
                        async with self._send_lock:
                            await self._restore()
                            await self._restore_conditions()
                            # Announce the session, then deliver what it held, with no await in
                            # between: nothing of this connection can overtake `Reconnected`.
                            self._ready.set()
                            self._state = FeedState.LIVE
                            up_at = self._clock.monotonic()
                            self.sessions += 1
                            if not first.done():
                                first.set_result(None)
                            if down_since is not None:
                                self._emit(Reconnected(attempt, round(up_at - down_since, 3)))
                                log.info("ws_reconnected", attempt=attempt)
                            down_since = None
                            self._deliver_held()
                    except BaseException:
                        reader.cancel()
                        raise
                    watchdog = asyncio.create_task(
                        self._watchdog(conn, live), name="kiwoom-ws-watchdog"
                    )
                    try:
                        reason, detail = await reader
                    finally:
                        watchdog.cancel()
                finally:
                    self._conn = None
                    self._live = None
                    self._discard_held()
                    self._ready.clear()
                    if not self._closing:
                        self._state = FeedState.DOWN
                    self._fail_acks()
                    await self._release(conn)
            except asyncio.CancelledError:
                raise
            except LoginError as exc:
                reason, detail = DisconnectReason.LOGIN_REFUSED, str(exc)
                log.warning("ws_login_refused", return_code=exc.return_code, code=exc.code)
                if exc.token_error:
                    with contextlib.suppress(Exception):
                        await self._token_invalidate(self._last_token)
                    # One immediate retry with a fresh token; a second refusal backs off.
                    retry_now = not token_retried
                    token_retried = True
                if not retry_now and not first.done():
                    first.set_exception(exc)
                    return
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, KiwoomError) as exc:
                reason, detail = DisconnectReason.CONNECT_FAILED, f"{type(exc).__name__}: {exc}"
                if not first.done():
                    err = exc if isinstance(exc, KiwoomError) else TransportError(detail)
                    first.set_exception(err)
                    return
            except Exception as exc:
                # Whatever else goes wrong (a token provider bug, a library surprise) must not
                # end the supervisor: the feed would be gone for good with no one noticing.
                reason, detail = DisconnectReason.ERROR, f"{type(exc).__name__}: {exc}"
                log.exception("ws_session_failed", reason=detail)
                if not first.done():
                    first.set_exception(TransportError(detail))
                    return
            if self._closing:
                return
            now = self._clock.monotonic()
            if up_at is not None and now - up_at >= self._stable_after_s:
                attempt = 0
            if first.done() and (up_at is not None or down_since is None):
                down_since = now if down_since is None else down_since
                self._emit(Disconnected(reason, attempt + 1, detail))
            if retry_now:
                log.warning("ws_login_retry_fresh_token", reason=reason, detail=detail)
                continue
            attempt += 1
            delay = self._backoff(attempt)
            log.warning(
                "ws_disconnected", reason=reason, detail=detail, attempt=attempt, retry_in_s=delay
            )
            await self._clock.sleep(delay)

    async def _release(self, conn: ClientConnection) -> None:
        """Close a finished connection; on `close()` abort it rather than wait out a closing
        handshake with a server that may not be reading."""
        if self._closing:
            conn.transport.abort()
            return
        with contextlib.suppress(Exception):
            await conn.close()

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter in [d/2, d]; the first retry comes within backoff_base_s."""
        d = min(self._backoff_max_s, self._backoff_base_s * 2.0 ** min(attempt - 1, 30))
        jitter: float = self._rng.random()
        return d / 2 + jitter * d / 2

    async def _open(self) -> ClientConnection:
        try:
            return await connect(
                self.url,
                open_timeout=self._connect_timeout_s,
                ping_interval=None,  # Kiwoom keeps the line alive with its own PING frames
                max_size=2**24,
                close_timeout=2.0,
                compression=self._compression,
            )
        except InvalidURI as exc:
            raise TransportError(f"bad WebSocket URL: {exc}") from exc

    async def _login(self, conn: ClientConnection) -> Liveness:
        """LOGIN on `conn`; returns the session's silence tracker. REAL events that came
        before the ack are held for after the session is announced."""
        token = await self._token_provider()
        self._last_token = token
        await conn.send(login_frame(token))
        hs = Handshake()
        async with asyncio.timeout(self._login_timeout_s):
            while True:
                raw = await conn.recv()
                res = self._decode(raw)
                if res.kind is FrameKind.PING:
                    await conn.send(raw)
                    continue
                if hs.feed(res):
                    break
        self.sor = hs.sor
        self._conn_no += 1
        live = Liveness(self._stale_after_s, self._stale_grace_s, self._clock.monotonic())
        self._live = live
        self._hold = []
        self._hold_events(hs.buffered)
        return live

    def _hold_events(self, events: list[Event]) -> None:
        hold = self._hold
        if hold is None:
            return
        for ev in events:
            # A condition hit is never dropped: a strategy must not miss a leave.
            if len(hold) < self._max_held or isinstance(
                ev, OrderExecution | Balance | ConditionHit
            ):
                hold.append(ev)
            else:
                self.held_dropped += 1
                if self.held_dropped == 1 or self.held_dropped % 1000 == 0:
                    log.warning("ws_held_events_dropped", held_dropped=self.held_dropped)

    def _deliver_held(self) -> None:
        held, self._hold = self._hold, None
        for ev in held or ():
            self._emit(ev)

    def _discard_held(self) -> None:
        """The session ended before it was announced: its events go, and the next
        `Reconnected` tells the consumer to reconcile."""
        held, self._hold = self._hold, None
        if held:
            log.warning("ws_held_events_discarded", count=len(held))

    async def _restore(self) -> None:
        for req in self.subscriptions.restore():
            try:
                await self._send_request(req)
            except RegistrationError as exc:
                # A registration Kiwoom now refuses (e.g. a delisted code) must not keep the
                # whole feed in a reconnect loop: drop it and say so.
                log.error(
                    "ws_restore_refused", grp_no=req.grp_no, items=len(req.items), error=str(exc)
                )
                self.subscriptions.commit(
                    RegRequest("REMOVE", req.grp_no, req.items, req.types, "")
                )

    async def _request(self, req: RegRequest) -> None:
        """Send one request on the live session, or queue it for the next session's restore."""
        if self._ready.is_set():
            try:
                await self._send_request(req)
                return
            except TransportError as exc:
                reason = str(exc)
        else:
            reason = "not connected"
        # Acknowledged or not, the next session registers from the book: record it there.
        self.subscriptions.commit(req)
        log.info("ws_registration_queued", trnm=req.trnm, grp_no=req.grp_no, reason=reason)

    async def _send_request(self, req: RegRequest) -> None:
        """Send `req` and wait for its ack; commit it to the book on return_code 0.

        Raises RegistrationError when refused, TransportError when the connection is lost or
        no ack came within ack_timeout_s (the connection is then recycled).
        """
        conn = self._conn
        if conn is None:
            raise TransportError(f"{req.trnm}: not connected")
        fut: asyncio.Future[FrameResult] = asyncio.get_running_loop().create_future()
        self._acks.append((req.trnm, fut))
        try:
            await conn.send(req.frame)
            async with asyncio.timeout(self._ack_timeout_s):
                res = await fut
        except TimeoutError:
            # Acks carry no group number: once one is missing, the FIFO pairing is unsafe.
            with contextlib.suppress(Exception):
                await conn.close(code=1011, reason="ack timeout")
            raise TransportError(f"{req.trnm} grp {req.grp_no}: no ack") from None
        except ConnectionClosed as exc:
            raise TransportError(f"{req.trnm} grp {req.grp_no}: connection closed") from exc
        finally:
            if self._acks and self._acks[-1][1] is fut:
                self._acks.pop()
        if res.return_code != 0:
            raise RegistrationError(req.trnm, res.return_code or -1, res.return_msg)
        self.subscriptions.commit(req)

    def _fail_acks(self) -> None:
        while self._acks:
            _trnm, fut = self._acks.popleft()
            if not fut.done():
                fut.set_exception(ConnectionClosed(None, None))
                # Marked as seen: a waiter that already left (cancelled, timed out) never
                # reads it, and asyncio would log each such future as never retrieved. One
                # still waiting gets the exception all the same.
                fut.exception()

    # --- receive loop ------------------------------------------------------------------------

    def _decode(self, raw: str | bytes, *, lazy: bool = False) -> FrameResult:
        if self._recorder is not None:
            self._recorder.record(raw)
        return decode_frame(raw, self.stats, self._time_ns(), self._sequence, lazy=lazy)

    async def _read_loop(
        self, conn: ClientConnection, live: Liveness
    ) -> tuple[DisconnectReason, str]:
        """Dispatch frames until the connection ends; return why it ended (code, detail)."""
        emit = self._emit
        clock = self._clock
        decode = self._decode
        try:
            async for raw in conn:
                resumed_after = live.heard(clock.monotonic())
                if resumed_after is not None:
                    self._resume(resumed_after)
                res = decode(raw, lazy=True)
                kind = res.kind
                if kind is FrameKind.REAL:
                    assert res.stream is not None
                    stream = res.stream
                    if self.condition_book.active:
                        stream = self._book_hits(stream)
                    if self._hold is None:
                        # Each entry is decoded as it is dispatched, and an order an entry
                        # started gets its turn before the next entry is decoded.
                        for ev in stream:
                            if emit(ev):
                                await asyncio.sleep(0)
                    else:
                        self._hold_events(list(stream))
                    # Frames already buffered come without a turn of the loop: give one, so
                    # other work is not held up by a backlog.
                    await asyncio.sleep(0)
                elif kind is FrameKind.PING:
                    await conn.send(raw)  # verbatim, as Kiwoom requires
                elif kind is FrameKind.REG or kind is FrameKind.REMOVE:
                    self._resolve_ack(res)
                elif kind is FrameKind.CNSR:
                    self._resolve_cnsr(res)
                elif kind is FrameKind.SYSTEM:
                    msg = res.message or {}
                    log.info("ws_system_frame", code=msg.get("code"), message=msg.get("message"))
                else:
                    log.debug("ws_frame_ignored", kind=str(kind), trnm=res.trnm)
            if live.dead:
                return (
                    DisconnectReason.STALE,
                    f"silent {self._stale_after_s + self._stale_grace_s:g} s",
                )
            return DisconnectReason.CLOSED, f"{conn.close_code} {conn.close_reason}".strip()
        except ConnectionClosed as exc:
            if live.dead:
                return DisconnectReason.STALE, str(exc)
            # A close frame came (an error code, e.g. 1011): closed; none: the line broke.
            return (
                DisconnectReason.CLOSED if exc.rcvd is not None else DisconnectReason.LOST
            ), str(exc)
        except OSError as exc:
            return (
                (DisconnectReason.STALE, str(exc))
                if live.dead
                else (DisconnectReason.LOST, str(exc))
            )
        finally:
            # Nothing more will be answered on this connection: release whoever waits now
            # rather than after ack_timeout_s.
            self._ready.clear()
            self._fail_acks()
            self._fail_cnsr()

    def _resolve_ack(self, res: FrameResult) -> None:
        if not self._acks:
            log.warning("ws_ack_unexpected", trnm=res.trnm, return_code=res.return_code)
            return
        trnm, fut = self._acks[0]
        if trnm != res.trnm:
            # Not the answer to what we sent: never let it confirm (or refuse) our request.
            # The real ack still comes, or ack_timeout_s recycles the connection.
            log.warning("ws_ack_mismatch", expected=trnm, got=res.trnm)
            return
        self._acks.popleft()
        if not fut.done():
            fut.set_result(res)

    def _resume(self, silent_s: float) -> None:
        if self._state is FeedState.STALE:
            self._state = FeedState.LIVE
        log.info("ws_resumed", silent_s=round(silent_s, 3))
        self._emit(FeedResumed(round(silent_s, 3)))

    async def _watchdog(self, conn: ClientConnection, live: Liveness) -> None:
        """Mark a live session stale after stale_after_s of silence (no PING, no data), and
        drop it after stale_grace_s more."""
        clock = self._clock
        while True:
            await clock.sleep(max(0.001, live.next_check_in(clock.monotonic())))
            now = clock.monotonic()
            verdict = live.check(now)
            silent_s = round(now - live.last_rx, 3)
            if verdict is Verdict.STALE:
                self._state = FeedState.STALE
                log.warning("ws_stale", silent_s=silent_s, grace_s=self._stale_grace_s)
                self._emit(FeedStale(silent_s))
            elif verdict is Verdict.DEAD:
                log.warning("ws_stale_drop", silent_s=silent_s)
                # No closing handshake: a frozen server would hold it for close_timeout.
                conn.transport.abort()
                return

    def _emit(self, ev: Event) -> object:
        """Hand `ev` to the consumer; its answer (a turn of the loop wanted) is passed on."""
        try:
            return self._on_event(ev)
        except Exception:
            self.consumer_errors += 1
            log.exception("ws_consumer_failed", event_type=type(ev).__name__)
            return False

    def debug_state(self) -> dict[str, Any]:
        return {
            "state": str(self._state),
            "connected": self.connected,
            "silent_s": self.silent_s,
            "sessions": self.sessions,
            "registered": len(self.subscriptions),
            "realtime_conditions": len(self.condition_book.realtime),
            "max_realtime_conditions": self.condition_book.max_realtime,
            "stats": self.stats.as_dict(),
            "consumer_errors": self.consumer_errors,
            "held_dropped": self.held_dropped,
        }
