"""Access tokens: issue (au10001), refresh before expiry, invalidate on a token error, revoke
(au10002) at shutdown.

Single-flight: however many callers ask at expiry, exactly one token request is in flight and
all of them get its answer. Tokens are registered with engine.secrets so logs scrub them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import aiohttp
import structlog

from engine import secrets
from engine.clock import SYSTEM_CLOCK, Clock
from engine.kiwoom import protocol
from engine.kiwoom.errors import (
    AuthError,
    BrokerError,
    KiwoomError,
    RateLimitError,
    TransportError,
)
from engine.secrets import Secret

log = structlog.get_logger(__name__)

Poster = Callable[
    [str, str, dict[str, str], bytes], Awaitable[tuple[int, Mapping[str, str], bytes]]
]
"""``(api_id, path, headers, body) -> (status, response headers, body bytes)``; raises
aiohttp/OS errors or TimeoutError on network failure."""

ISSUE_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
_ISSUE_ATTEMPTS = 4


def session_poster(session: aiohttp.ClientSession, rest_url: str, timeout_s: float) -> Poster:
    """A Poster over an aiohttp session (one shared session; a timeout on every request)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    base = rest_url.rstrip("/")

    async def post(
        api_id: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with session.post(base + path, data=body, headers=headers, timeout=timeout) as r:
            return r.status, r.headers, await r.read()

    return post


_SAME_TOKEN_RETRY = timedelta(seconds=1)


class TokenManager:
    """Holds the current access token and renews it before it expires.

    `token()` may block while a token is being issued; `invalidate()` and `revoke()` are safe
    to call at any time. Error texts never contain the app key, secret key or token.
    """

    def __init__(
        self,
        transport: aiohttp.ClientSession | Poster,
        rest_url: str,
        appkey: Secret,
        secretkey: Secret,
        clock: Clock = SYSTEM_CLOCK,
        refresh_margin_s: float = 300.0,
        *,
        request_timeout_s: float = 10.0,
        retry_delay_s: float = 0.2,
    ) -> None:
        if isinstance(transport, aiohttp.ClientSession):
            self._post: Poster = session_poster(transport, rest_url, request_timeout_s)
        else:
            self._post = transport
        self._appkey = appkey
        self._secretkey = secretkey
        self._clock = clock
        self._margin = timedelta(seconds=refresh_margin_s)
        self._retry_delay_s = retry_delay_s
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._refresh_at: datetime | None = None
        self._inflight: asyncio.Task[str] | None = None
        # Bumped by every invalidate() that drops the current token. A token request sent
        # before that may come back with the very token just called invalid (Kiwoom hands out
        # the same token while it thinks it valid): callers from a newer epoch never join it,
        # and its answer is installed only if no invalidation happened meanwhile.
        self._epoch = 0
        self._inflight_epoch = 0
        self._closed = False
        self.issued_count = 0
        """Tokens obtained from the server since start (for metrics and tests)."""

    @property
    def expires_at(self) -> datetime | None:
        """Expiry of the current token (KST), or None when there is none."""
        return self._expires_at

    async def token(self) -> str:
        """Return a valid raw token (no "Bearer"), issuing one first if needed.

        Blocks while a token request is in flight (shared by all callers). Raises AuthError if
        Kiwoom refuses the keys, TransportError if the token endpoint is unreachable or the
        manager was revoked (closed): no token is issued after `revoke()`.
        """
        if self._closed:
            raise TransportError("token manager is closed (revoked at shutdown)")
        tok = self._token
        if (
            tok is not None
            and self._refresh_at is not None
            and self._clock.now() < self._refresh_at
        ):
            return tok
        task = self._inflight
        if task is None or self._inflight_epoch != self._epoch:
            task = asyncio.ensure_future(self._issue(self._epoch))
            self._inflight = task
            self._inflight_epoch = self._epoch
            task.add_done_callback(self._issue_done)
        # shield: one impatient caller being cancelled must not cancel everyone's token request
        return await asyncio.shield(task)

    def _issue_done(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # mark retrieved; the waiters re-raise it

    async def _issue(self, epoch: int) -> str:
        body = protocol.encode_body(
            protocol.token_request(self._appkey.reveal(), self._secretkey.reveal())
        )
        headers = protocol.request_headers("au10001", None)
        last: KiwoomError | None = None
        for attempt in range(_ISSUE_ATTEMPTS):
            if attempt:
                await self._clock.sleep(self._retry_delay_s * 2 ** (attempt - 1))
            try:
                status, rh, data = await self._post("au10001", ISSUE_PATH, headers, body)
                result = protocol.classify("au10001", status, rh, data)
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                last = TransportError(f"au10001: token request failed ({type(e).__name__})")
                log.warning("token_issue_retry", attempt=attempt + 1, error=type(e).__name__)
                continue
            except protocol.ServerError as e:
                last = e
                log.warning("token_issue_retry", attempt=attempt + 1, status=e.status)
                continue
            except RateLimitError as e:
                last = e
                log.warning("token_issue_retry", attempt=attempt + 1, status=e.http_status)
                continue
            except BrokerError as e:
                if isinstance(e, AuthError):
                    log.error("token_refused", return_code=e.return_code, code=e.code)
                    raise
                raise AuthError(
                    "au10001", e.return_code, e.return_msg, http_status=e.http_status
                ) from None
            token, expires_at = protocol.parse_token(result.body)
            secrets.register(token)
            if epoch != self._epoch:
                # invalidated while this request was out: its answer may be the dead token;
                # hand it to the callers that asked before, install nothing
                log.info("token_issue_stale")
                return token
            now = self._clock.now()
            if token == self._token and expires_at == self._expires_at:
                # Kiwoom hands back the same token while it considers it valid, so asking
                # again before it expires gains nothing: use it to the end. Past its end (our
                # clock ahead of Kiwoom's) ask at most once a second, never in a tight loop.
                self._refresh_at = max(expires_at, now + _SAME_TOKEN_RETRY)
                log.info("token_unchanged", refresh_at=self._refresh_at.isoformat())
                return token
            # a margin longer than the token's life would refresh on every call: cap it at half
            margin = min(self._margin, max(expires_at - now, timedelta(0)) / 2)
            self._token = token
            self._expires_at = expires_at
            self._refresh_at = expires_at - margin
            self.issued_count += 1
            log.info(
                "token_issued",
                expires_at=expires_at.isoformat(),
                refresh_at=self._refresh_at.isoformat(),
            )
            return token
        assert last is not None
        raise last

    async def invalidate(self, token: str) -> None:
        """Forget `token` after Kiwoom called it invalid, so the next `token()` re-issues.

        Does nothing if a newer token already replaced it (another caller got there first).
        """
        if self._token is not None and self._token == token:
            self._token = None
            self._refresh_at = None
            self._epoch += 1
            log.info("token_invalidated")

    async def revoke(self) -> None:
        """Revoke the current token with au10002 (at shutdown) and close the manager: later
        `token()` calls raise TransportError instead of issuing a token nobody would revoke.
        Never raises: a failed revoke is logged; the token expires on its own."""
        self._closed = True
        if self._inflight is not None:
            with contextlib.suppress(KiwoomError):
                await asyncio.shield(self._inflight)
        token = self._token
        self._token = None
        self._refresh_at = None
        if token is None:
            return
        body = protocol.encode_body(
            protocol.revoke_request(self._appkey.reveal(), self._secretkey.reveal(), token)
        )
        try:
            status, rh, data = await self._post(
                "au10002", REVOKE_PATH, protocol.request_headers("au10002", None), body
            )
            protocol.classify("au10002", status, rh, data)
        except (KiwoomError, aiohttp.ClientError, TimeoutError, OSError) as e:
            log.warning("token_revoke_failed", error=type(e).__name__)
            return
        log.info("token_revoked")
