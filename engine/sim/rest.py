"""The simulator's REST front door: Kiwoom's wire format around pluggable api-id handlers.

Checks run in the order a request meets them: api-id and path (1501/1504/1505), injected HTTP
faults, the per-api-id rate limit (HTTP 429, rc 5, 1700), the authorization header (1513-1516)
and token (rc 3, 8005), the JSON body (1517) and required fields (1511); then the handler, then
delay/drop faults. An order's realtime pushes go out after its answer, or before it with
`faults.order_push_first`. The handlers answer by engine/sim/reply.py's contract; OAuth's
are in engine/sim/oauth.py, the rate limit in engine/sim/ratelimit.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web

# The handler contract lives in engine/sim/reply.py; its names stay importable from here.
from engine.sim.reply import OK_MSG as OK_MSG
from engine.sim.reply import RC_AUTH as RC_AUTH
from engine.sim.reply import RC_INPUT as RC_INPUT
from engine.sim.reply import RC_RATE as RC_RATE
from engine.sim.reply import RC_UNEXPECTED as RC_UNEXPECTED
from engine.sim.reply import RestHandler as RestHandler
from engine.sim.reply import SimBusinessError as SimBusinessError
from engine.sim.reply import SimReply as SimReply
from engine.sim.reply import auth_error as auth_error
from engine.sim.reply import input_error as input_error
from engine.sim.reply import rate_error as rate_error
from engine.sim.schema import schema_body
from engine.sim.stamps import ORDER_API_IDS, now_ns
from engine.sim.state import SimState

log = structlog.get_logger(__name__)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
OAUTH_PATHS: Mapping[str, str] = {"/oauth2/token": "au10001", "/oauth2/revoke": "au10002"}
UNKNOWN_API_ID = "(unknown)"
"""The one `request_counts` key for api-ids outside the catalogue: a client choosing the header
must not grow the table (and the simulator's memory) one key per request."""


def envelope(body: Mapping[str, Any], return_code: int, return_msg: str) -> bytes:
    """The JSON response body: the API fields plus return_code (an int) and return_msg."""
    return orjson.dumps({**body, "return_code": return_code, "return_msg": return_msg})


def _response(
    api_id: str,
    status: int,
    payload: bytes,
    next_key: str = "",
) -> web.Response:
    headers = {
        "api-id": api_id,
        "cont-yn": "Y" if next_key else "N",
        "next-key": next_key,
        "Content-Type": JSON_CONTENT_TYPE,
    }
    return web.Response(status=status, body=payload, headers=headers)


def _error_response(api_id: str, err: SimBusinessError) -> web.Response:
    return _response(api_id, err.http_status, envelope({}, err.return_code, err.return_msg))


_CLIENT_TURNS = 10
"""Event-loop turns between an order's first message (answer or push) and its second. A client
in the same process (the tests) needs a few turns to take a message from its socket to its
code, more on its REST path than on its WebSocket reader; without these turns it could handle
the second message first. Over a network only the wire order counts, and this costs nothing."""


async def _let_client_read() -> None:
    for _ in range(_CLIENT_TURNS):
        await asyncio.sleep(0)


class RestFrontend:
    """The aiohttp handler for every POST; reads everything from the shared SimState."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        path = request.path
        api_id = request.headers.get("api-id", "").strip() or OAUTH_PATHS.get(path, "")
        if api_id:
            state.request_counts[api_id if api_id in state.catalog else UNKNOWN_API_ID] += 1
        stamps = state.stamps
        read_ns = now_ns() if stamps is not None and api_id in ORDER_API_IDS else 0
        try:
            reply = await self._process(request, api_id, path)
        except SimBusinessError as err:
            if stamps is not None and read_ns:
                stamps.order(read_ns, api_id, "")
            if err.return_code != RC_RATE:
                log.info("sim_rest_error", api_id=api_id, rc=err.return_code, msg=err.return_msg)
            return _error_response(api_id, err)
        except _InjectedHttpError as inj:
            return web.Response(status=inj.status, text=f"{inj.status} injected fault")
        state.handled_counts[api_id] += 1
        if stamps is not None and read_ns:
            stamps.order(read_ns, api_id, str(reply.body.get("ord_no", "")))
        faults = state.faults
        delay = faults.rest_delay_s.get(api_id)
        pushes = reply.send_pushes
        if pushes and faults.order_push_twice:
            pushes = _twice(pushes)
        if pushes and (
            state.feed is None  # no WebSocket side to order them against the answer
            or faults.order_push_first
            or delay  # the order is live: its pushes do not wait for a late or lost answer
            or api_id in faults.drop_after_accept
        ):
            await self._push(pushes, flush=faults.order_push_first)
            pushes = None
        if delay:
            await asyncio.sleep(delay)
        if api_id in faults.drop_after_accept:
            # The request was handled (an order is live); the client never hears back. aiohttp
            # treats a CancelledError from the handler as a vanished client: it closes the
            # connection without writing anything and keeps serving others.
            log.info("sim_rest_drop_after_accept", api_id=api_id)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        body = reply.body
        if api_id in faults.order_no_missing:
            body = {**body, "ord_no": ""}
        response = _response(api_id, 200, envelope(body, 0, reply.return_msg), reply.next_key)
        if pushes:
            # The answer first: written out before its pushes are queued on the WebSocket.
            # A client gone meanwhile changes nothing: the order is live and its pushes go.
            try:
                with contextlib.suppress(ConnectionError):
                    await response.prepare(request)
                    await response.write_eof()
                await _let_client_read()
            finally:
                pushes()
        return response

    async def _push(self, send_pushes: Callable[[], None], *, flush: bool) -> None:
        send_pushes()
        feed = self.state.feed
        if flush and feed is not None:
            await feed.flush()
            await _let_client_read()

    async def _process(self, request: web.Request, api_id: str, path: str) -> SimReply:
        state = self.state
        if not api_id:
            raise input_error(1501, "API ID가 Null이거나 값이 없습니다")
        api = state.catalog.get(api_id)
        if api is None or not api.is_rest:
            raise input_error(1505, f"해당 API ID는 존재하지 않습니다. API ID={api_id}")
        if api.path != path:
            raise input_error(
                1504,
                f"해당 URI에서는 지원하는 API ID가 아닙니다. API ID={api_id}, URI={path}",
            )
        status = state.faults.take_http_error(api_id)
        if status is not None:
            raise _InjectedHttpError(status)
        if state.faults.take_rate_limit(api_id) or not state.rate_limiter.allow(
            api_id, state.rest_rate_per_s, state.rest_burst
        ):
            raise rate_error(api_id, state.rest_rate_per_s)
        oauth = path in OAUTH_PATHS
        if not oauth:
            self._check_auth(request.headers.get("authorization"))
        body = await _read_body(request)
        if not oauth:
            for name in api.required_fields:
                value = body.get(name)
                if value is None or (isinstance(value, str) and not value.strip()):
                    raise input_error(1511, f"필수 입력 값에 값이 존재하지 않습니다. 요소명={name}")
        next_key = ""
        if request.headers.get("cont-yn", "N").strip().upper() == "Y":
            next_key = request.headers.get("next-key", "").strip()
        handler = state.rest_handlers.get(api_id)
        if handler is not None:
            try:
                return await handler(body, next_key)
            except SimBusinessError:
                raise
            except Exception as e:
                log.exception("sim_rest_handler_failed", api_id=api_id)
                raise SimBusinessError(
                    RC_UNEXPECTED,
                    f"예기치 못한 에러가 발생했습니다[1999:예기치 못한 에러가 발생했습니다. "
                    f"실패사유={type(e).__name__}]",
                    http_status=500,
                ) from e
        today = state.clock.now().date()
        return SimReply(
            schema_body(api, body, state.universe, today, account_no=state.config.account_no)
        )

    def _check_auth(self, header: str | None) -> None:
        if header is None or not header.strip():
            raise input_error(1513, "Http Header에 authorization 필드가 설정되어 있어야 합니다")
        parts = header.strip().split(None, 1)
        if parts[0].lower() != "bearer":
            if len(parts) == 1:
                raise input_error(
                    1514, "입력으로 들어온 Http Header의 authorization 필드 형식이 맞지 않습니다"
                )
            raise input_error(
                1515, "Http Header의 authorization 필드 내 Grant Type이 미리 정의된 형식이 아닙니다"
            )
        if len(parts) == 1 or not parts[1].strip():
            raise input_error(
                1516, "Http Header의 authorization 필드 내 Token이 정의되어 있지 않습니다"
            )
        token = parts[1].strip()
        if self.state.faults.take_token_error() or not self.state.tokens.is_valid(token):
            raise auth_error()


def _twice(send_pushes: Callable[[], None]) -> Callable[[], None]:
    def send() -> None:
        send_pushes()
        send_pushes()

    return send


class _InjectedHttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _read_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise input_error(
            1517, "입력 값 형식이 올바르지 않습니다. 파라미터=body 실패사유= JSON 형식 오류"
        ) from None
    if not isinstance(body, dict):
        raise input_error(
            1517, "입력 값 형식이 올바르지 않습니다. 파라미터=body 실패사유= JSON 객체가 아님"
        )
    return body
