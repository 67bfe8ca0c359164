"""The Kiwoom REST client: one aiohttp session, validation, pacing, token handling, retries,
paging by response headers, and a TTL cache for reference data.

Order-placing calls are never retried blindly: only a rate-limit or token-error answer (which
prove the order was not taken) lets one be sent again; a timeout, reset or 5xx on an order
raises OutcomeUnknownError. An HTTP 4xx without Kiwoom's envelope is never retried (the same
request would be refused again): a query fails at once, and an order counts as not taken only
when the status proves it was refused unread (413, ...); otherwise its outcome is unknown.
An order's POST, once started, runs to its end even if the caller is cancelled, and an order
call given a deadline is never sent after it (OrderExpiredError).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import structlog

from engine.clock import SYSTEM_CLOCK, Clock
from engine.kiwoom import catalog, failures, protocol
from engine.kiwoom.auth import TokenManager
from engine.kiwoom.cache import ResponseCache
from engine.kiwoom.catalog import ApiSpec
from engine.kiwoom.errors import (
    AuthError,
    KiwoomError,
    OrderExpiredError,
    OutcomeUnknownError,
    RateLimitError,
    RequestRefusedError,
    TransportError,
    UnknownOutcome,
    ValidationError,
)
from engine.kiwoom.failures import Action, Failure
from engine.kiwoom.governor import Governor, backoff_delay
from engine.kiwoom.protocol import RestResult
from engine.kiwoom.settings import RestSettings

if TYPE_CHECKING:
    from engine.config import Config

__all__ = ["KiwoomRest", "Pages", "RestResult"]

log = structlog.get_logger(__name__)

_RC_TOTAL_LIMIT = 1701  # the account-wide request count: slow every api-id down


def _not_sent(api_id: str, e: BaseException) -> TransportError:
    """The error of a request whose connection never opened."""
    return TransportError(f"{api_id}: could not connect ({type(e).__name__})")


def _transport_reason(kind: Failure, e: BaseException) -> str:
    """A transport failure's reason in the retry log line."""
    return type(e).__name__ if kind is Failure.NOT_SENT else failures.reason_text(e)


@dataclass(frozen=True, slots=True)
class Pages:
    """Every page of a continuous query, in order.

    ``truncated`` is True when the max-page guard stopped before Kiwoom said "no more".
    """

    api_id: str
    list_field: str | None
    pages: tuple[RestResult, ...]
    truncated: bool

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows of the list field, all pages concatenated (empty for flat answers)."""
        if self.list_field is None:
            return []
        out: list[dict[str, Any]] = []
        for p in self.pages:
            part = p.body.get(self.list_field)
            if isinstance(part, list):
                out.extend(r for r in part if isinstance(r, dict))
        return out

    def merged(self) -> dict[str, Any]:
        """The first page's body with the list field replaced by every page's rows."""
        body = dict(self.pages[0].body) if self.pages else {}
        if self.list_field is not None:
            body[self.list_field] = self.rows
        return body


def _canonical_list_field(spec: ApiSpec, result: RestResult) -> RestResult:
    """Rename a list field sent under an older doc revision's name to the catalogue's."""
    if spec.list_field is None or spec.list_field in result.body:
        return result
    for alias in spec.list_field_aliases:
        if alias in result.body:
            body = dict(result.body)
            body[spec.list_field] = body.pop(alias)
            return result._replace(body=body)
    return result


def _sendable(key: str) -> bool:
    """Can this next-key go back in a request header? Kiwoom's are printable ASCII."""
    return key.isascii() and key.isprintable()


def _check_rows(spec: ApiSpec, result: RestResult, page: int) -> None:
    """Raise KiwoomError unless the page's list field is a list of objects. A missing field
    is taken as "no rows" only on a lone page with nothing after it."""
    field = spec.list_field
    if field is None:
        return
    part = result.body.get(field)
    if part is None and page == 1 and not result.cont_yn:
        return
    if not isinstance(part, list) or not all(isinstance(r, dict) for r in part):
        what = "missing" if part is None else "not a list of objects"
        raise KiwoomError(f"{spec.api_id}: list field {field} is {what} on page {page}")


class KiwoomRest:
    """Async context manager owning the HTTP session, the token manager and the governor.

    Use ``async with KiwoomRest.from_config(config) as rest: await rest.call("ka10001", {...})``.
    `revoke_on_close` revokes the token at close(). Kiwoom hands one token to every client of
    an app key, so only the owner of the key's session (the daemon) may: a one-shot command
    that revoked would cut the daemon off.
    """

    def __init__(
        self,
        settings: RestSettings,
        clock: Clock = SYSTEM_CLOCK,
        *,
        revoke_on_close: bool = True,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._base = settings.rest_url
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s, connect=settings.connect_timeout_s
        )
        self._max_pages = settings.max_pages
        self._revoke_on_close = revoke_on_close
        self._rand = rand
        self.governor = Governor(settings.governor, clock)
        self.cache = ResponseCache(settings.cache_ttl_s, clock)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: TokenManager | None = None
        self._closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._orphans: set[asyncio.Task[tuple[int, Mapping[str, str], bytes]]] = set()
        """Order POSTs whose caller was cancelled: kept referenced until they end."""

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        clock: Clock = SYSTEM_CLOCK,
        *,
        revoke_on_close: bool = True,
        rand: Callable[[], float] = random.random,
    ) -> KiwoomRest:
        """The client `cfg` describes (see RestSettings.from_config). Raises ValidationError
        when the keys are not set."""
        return cls(RestSettings.from_config(cfg), clock, revoke_on_close=revoke_on_close, rand=rand)

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> KiwoomRest:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the HTTP session (keep-alive) and the token manager. Does no I/O."""
        if self._session is not None:
            return
        self._closing = False
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=30.0),
        )
        st = self._settings
        self._tokens = TokenManager(
            self._post,
            self._base,
            st.appkey,
            st.secretkey,
            self._clock,
            st.token_refresh_margin_s,
            retry_delay_s=st.retry_base_delay_s,
        )

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop sending, let the POSTs already on the wire finish (at most the request
        timeout: closing the session under an order would make its outcome unknown), revoke
        the token (if configured) and close the session. Calls that had not sent yet raise
        TransportError ("not sent"). Never raises; a second close does nothing.

        `timeout_s` bounds the whole close (the daemon's stop deadline): the wait for POSTs
        gets at most half of it, the revoke what is left; a revoke cut short is logged and
        the token expires on its own."""
        if self._closing and self._session is None:
            return
        self._closing = True
        clock = self._clock
        deadline = None if timeout_s is None else clock.monotonic() + timeout_s
        if self._in_flight:
            wait_s = self._timeout.total
            if timeout_s is not None:
                wait_s = min(wait_s or timeout_s, timeout_s / 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), wait_s)
        if self._tokens is not None and self._revoke_on_close:
            left = None if deadline is None else max(0.0, deadline - clock.monotonic())
            try:
                async with asyncio.timeout(left):
                    await self._tokens.revoke()
            except TimeoutError:
                log.warning("token_revoke_abandoned", waited_s=round(timeout_s or 0.0, 3))
        if self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def tokens(self) -> TokenManager:
        """The token manager (the WebSocket client takes its `token` / `invalidate`)."""
        if self._tokens is None:
            raise RuntimeError("KiwoomRest is not open (use `async with`)")
        return self._tokens

    # --- I/O ---------------------------------------------------------------------------

    async def _post(
        self, api_id: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = self._session
        if session is None or session.closed:
            # e.g. the WebSocket client asking for a token after close(): not sent
            raise TransportError(f"{api_id}: the client is closed; not sent")
        async with session.post(
            self._base + path, data=body, headers=headers, timeout=self._timeout
        ) as resp:
            return resp.status, resp.headers, await resp.read()

    # --- calls -------------------------------------------------------------------------

    async def call(
        self,
        api_id: str,
        body: Mapping[str, Any],
        *,
        cont_key: str | None = None,
        deadline: float | None = None,
        shield: bool = True,
    ) -> RestResult:
        """Send one REST call and return its body and paging headers.

        `cont_key` asks for the page after the one whose ``next-key`` it is. Blocks for pacing,
        tokens and retries. Raises ValidationError before sending (unknown api-id, missing
        field, WebSocket-only id, a `cont_key` that is not printable ASCII), AuthError,
        RateLimitError (retries exhausted), BrokerError (Kiwoom said no), RequestRefusedError
        (an HTTP 4xx without an envelope: at once, never retried), TransportError (network,
        retries exhausted) and, for order-placing calls, OutcomeUnknownError when the order may
        or may not have been taken (a 4xx that does not prove it unread included). After
        `close()` began, raises TransportError ("not sent").

        An order call ends in exactly one of: the answer (taken); OutcomeUnknownError (maybe
        taken: reconcile, never resend); any other KiwoomError (not taken: refused, or never
        sent). Cancelling it while its POST is on the wire does not abort the POST: the call
        raises OutcomeUnknownError (reason UnknownOutcome.CANCELLED) at once and the late answer is logged
        (``order_answer_after_cancel``). Cancelled before its POST started, it raises
        CancelledError and nothing was sent.

        `deadline` (orders only; `clock.monotonic()` seconds): past it, the order is not sent
        any more (first try or a resend after a rate-limit refusal) and OrderExpiredError is
        raised. A POST already on the wire is never cut short by it.

        `shield=False` (orders only) runs the POST in the caller's own task instead of a task
        of its own: one turn of the loop less before it leaves. For a caller whose task nobody
        cancels but the shutdown, and which takes CancelledError during the call as an
        unknown outcome (the OMS's placement task): cancelled, the POST is aborted, not
        carried on, and its answer is lost to reconciliation.
        """
        spec = catalog.validate_request(api_id, body)
        if spec.is_oauth:
            raise ValidationError(f"{api_id}: tokens are handled by KiwoomRest.tokens")
        if cont_key is not None and not _sendable(cont_key):
            raise ValidationError(f"{api_id}: cont_key must be printable ASCII")
        if deadline is not None and not spec.is_order:
            raise ValidationError(f"{api_id}: a deadline is for order calls only")
        return await self._call(spec, body, cont_key, 1, deadline, shield)

    async def _call(
        self,
        spec: ApiSpec,
        body: Mapping[str, Any],
        cont_key: str | None,
        page: int,
        deadline: float | None = None,
        shield: bool = True,
    ) -> RestResult:
        api_id = spec.api_id
        payload = protocol.encode_body(body)
        use_cache = not spec.is_account_or_order and self.cache.enabled(api_id)
        if use_cache:
            hit = self.cache.get((api_id, payload, cont_key))
            if hit is not None:
                return hit
        tokens = self.tokens
        st = self._settings
        is_order = spec.is_order
        # Bound once: every line of this call names its api-id (and binding costs what one
        # line on the unbound proxy does).
        alog = log.bind(api_id=api_id)
        limits = failures.Limits(st.max_rate_limit_retries, st.retry_max_attempts)
        tries = failures.Tries()
        while True:
            await self._acquire(api_id, is_order, deadline, tries.rate_limited)
            self._refuse_if_closing(api_id)
            token = await tokens.token()
            self._refuse_if_closing(api_id)
            self._refuse_if_late(api_id, deadline, 0.0, tries.rate_limited)
            # no await between these checks and the POST starting
            headers = protocol.request_headers(api_id, token, cont_key)
            t0 = self._clock.monotonic()
            try:
                post = self._tracked_post(api_id, spec.path, headers, payload)
                if is_order and shield:
                    status, rheaders, data = await self._order_post(api_id, post)
                else:
                    status, rheaders, data = await post
                result = _canonical_list_field(
                    spec, protocol.classify(api_id, status, rheaders, data)
                )
            except Exception as e:
                kind = failures.kind_of(e)
                if kind is None:
                    raise  # Kiwoom said no, or a bug: nothing to retry
                action, tries = failures.step(kind, is_order, tries, limits)
                error = await self._carry_out(action, kind, e, tries, alog, api_id, token, deadline)
                if error is None:
                    continue
                if error is e and kind is not Failure.MAY_HAVE_ARRIVED:
                    raise
                raise error from None  # a transport failure's own traceback says nothing more
            duration_ms = round((self._clock.monotonic() - t0) * 1000, 2)
            alog.debug("rest_call", status=status, duration_ms=duration_ms, page=page)
            if use_cache:
                self.cache.put((api_id, payload, cont_key), result)
            return result

    def _refuse_if_closing(self, api_id: str) -> None:
        if self._closing:
            raise TransportError(f"{api_id}: the client is closed; not sent")

    def _refuse_if_late(
        self, api_id: str, deadline: float | None, wait_s: float, rate_limited: int
    ) -> None:
        """Raise OrderExpiredError if a send `wait_s` from now would be past `deadline`."""
        if deadline is None:
            return
        late_s = self._clock.monotonic() + wait_s - deadline
        if late_s > 0:
            raise self._expired(api_id, late_s, rate_limited)

    @staticmethod
    def _expired(api_id: str, late_s: float, rate_limited: int) -> OrderExpiredError:
        log.warning(
            "order_expired",
            api_id=api_id,
            late_ms=round(late_s * 1000, 1),
            rate_limited=rate_limited,
        )
        return OrderExpiredError(api_id, late_s, rate_limited)

    async def _acquire(
        self, api_id: str, is_order: bool, deadline: float | None, rate_limited: int
    ) -> None:
        """The governor's slot; with a deadline, the wait ends there (OrderExpiredError)."""
        if deadline is None:
            await self.governor.acquire(api_id, order=is_order)
            return
        self._refuse_if_late(api_id, deadline, 0.0, rate_limited)
        if self.governor.try_acquire(api_id, order=is_order):
            return  # a slot at once: no timer to arm and disarm on the order's path
        # The slot or the deadline, whichever comes first, both on the clock.
        slot = asyncio.ensure_future(self.governor.acquire(api_id, order=is_order))
        expiry = asyncio.ensure_future(self._clock.sleep(deadline - self._clock.monotonic()))
        try:
            await asyncio.wait((slot, expiry), return_when=asyncio.FIRST_COMPLETED)
        finally:
            expiry.cancel()
            if not slot.done():
                slot.cancel()
        if slot.done() and not slot.cancelled():
            return  # granted (also when the deadline came in the same turn)
        late_s = max(0.0, self._clock.monotonic() - deadline)
        raise self._expired(api_id, late_s, rate_limited)

    async def _order_post(
        self, api_id: str, post: Coroutine[Any, Any, tuple[int, Mapping[str, str], bytes]]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Run an order's POST so that cancelling the caller cannot abort it.

        Aborting a POST on the wire would not unsend the order, only lose its answer. So the
        POST runs in its own task; a cancelled caller gets OutcomeUnknownError (CANCELLED)
        at once, and the answer, when it comes, is logged for the reconciliation that follows.
        """
        task = asyncio.create_task(post, name=f"order-post-{api_id}")
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Also when the POST task itself was cancelled (the loop shutting down): an
            # aborted POST may still have been read by Kiwoom.
            self._orphans.add(task)
            task.add_done_callback(functools.partial(self._late_answer, api_id))
            # Debug only: the OMS logs the order's unknown outcome once, with its client id.
            log.debug("order_outcome_unknown", api_id=api_id, reason=UnknownOutcome.CANCELLED)
            raise OutcomeUnknownError(api_id, UnknownOutcome.CANCELLED) from None

    def _late_answer(
        self, api_id: str, task: asyncio.Task[tuple[int, Mapping[str, str], bytes]]
    ) -> None:
        self._orphans.discard(task)
        alog = log.bind(api_id=api_id)
        if task.cancelled():
            alog.warning("order_answer_after_cancel", outcome="aborted")
            return
        exc = task.exception()
        if exc is not None:
            alog.warning("order_answer_after_cancel", error=failures.reason_text(exc))
            return
        status, headers, data = task.result()
        try:
            body = protocol.classify(api_id, status, headers, data).body
        except KiwoomError as e:
            alog.warning("order_answer_after_cancel", error=type(e).__name__)
            return
        alog.warning(
            "order_answer_after_cancel", status=status, order_no=str(body.get("ord_no", "")).strip()
        )

    async def _tracked_post(
        self, api_id: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        """`_post`, counted so that close() can let it finish first."""
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._post(api_id, path, headers, body)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _carry_out(
        self,
        action: Action,
        kind: Failure,
        e: Exception,
        tries: failures.Tries,
        alog: Any,
        api_id: str,
        token: str,
        deadline: float | None,
    ) -> Exception | None:
        """Do what the failure table decided: wait (on the clock) and return None to send
        again, or return the error to raise (`e` itself to re-raise it). `alog` is the call's
        logger, its api-id bound."""
        st = self._settings
        if kind is Failure.RATE_LIMITED:
            refusal = cast(RateLimitError, e)
            self.governor.note_rate_limited(api_id, account_wide=refusal.code == _RC_TOTAL_LIMIT)
        if action is Action.RETRY_AFTER_BACKOFF:
            attempt = tries.rate_limited
            delay = backoff_delay(
                attempt, st.rate_backoff_base_s, st.rate_backoff_max_s, self._rand
            )
            # the resend would leave after the deadline: give up now, not after the wait
            self._refuse_if_late(api_id, deadline, delay, attempt)
            status = cast(RateLimitError, e).http_status
            alog.info("rest_rate_limited", status=status, retry_in_s=round(delay, 3))
            await self._clock.sleep(delay)
            return None
        if action is Action.RETRY_NEW_TOKEN:
            # a refused token proves the call was not processed: safe even for orders
            alog.info("rest_token_rejected", status=cast(AuthError, e).http_status)
            await self.tokens.invalidate(token)
            return None
        if action is Action.RETRY_TRANSPORT:
            attempt = tries.transport
            delay = backoff_delay(attempt, st.retry_base_delay_s, st.retry_max_delay_s, self._rand)
            reason = _transport_reason(kind, e)
            alog.warning("rest_retry", attempt=attempt, reason=reason, retry_in_s=round(delay, 3))
            await self._clock.sleep(delay)
            return None
        if action is Action.RAISE_OUTCOME_UNKNOWN:
            # Debug only: the OMS logs the order's unknown outcome once, with its client id.
            code, detail = failures.unknown_outcome(e), failures.reason_text(e)
            alog.debug("order_outcome_unknown", reason=code, detail=detail)
            return OutcomeUnknownError(api_id, code, detail)
        if action is Action.RAISE_NOT_SENT:
            # never reached the server: not an unknown outcome, but an order is still not
            # sent again automatically (the caller decides)
            alog.warning("order_not_sent", error=type(e).__name__)
            return _not_sent(api_id, e)
        if kind is Failure.RATE_LIMITED:
            alog.warning("rest_rate_limited_giving_up", attempts=tries.rate_limited)
        elif kind in (Failure.REFUSED_PROVEN_UNTAKEN, Failure.REFUSED_UNPROVEN):
            alog.info("rest_request_refused", status=cast(RequestRefusedError, e).status)
        elif kind is Failure.NOT_SENT:
            return _not_sent(api_id, e)
        elif kind is Failure.MAY_HAVE_ARRIVED and not isinstance(e, TransportError):
            reason = failures.reason_text(e)
            return TransportError(f"{api_id}: {reason} after {tries.transport} attempts")
        return e

    async def call_all(
        self, api_id: str, body: Mapping[str, Any], max_pages: int | None = None
    ) -> Pages:
        """Follow ``cont-yn``/``next-key`` response headers until Kiwoom says no more.

        Stops early (``truncated=True``) after `max_pages` (default: the settings' max_pages),
        or if the server says ``cont-yn: Y`` with no, a repeated or an unsendable (not
        printable ASCII) next-key. Raises as `call`, and KiwoomError for a page whose list
        field is not a list of objects, or is missing on a page that is not a lone last page
        (rows would silently go missing). Refuses
        order-placing ids.
        """
        spec = catalog.validate_request(api_id, body)
        if spec.is_oauth or spec.is_order:
            raise ValidationError(f"{api_id}: continuous queries are for queries only")
        limit = self._max_pages if max_pages is None else max_pages
        if limit < 1:
            raise ValidationError("max_pages must be >= 1")
        pages: list[RestResult] = []
        cont_key: str | None = None
        seen: set[str] = set()
        truncated = False
        while True:
            result = await self._call(spec, body, cont_key, len(pages) + 1)
            pages.append(result)
            _check_rows(spec, result, len(pages))
            if not result.cont_yn:
                break
            if len(pages) >= limit:
                stop = "rest_pages_truncated"
            elif not result.next_key:  # asking again would fetch page 1 again
                stop = "rest_next_key_missing"
            elif result.next_key in seen:  # asking again would loop
                stop = "rest_next_key_repeated"
            elif not _sendable(result.next_key):  # aiohttp refuses it in a header (ValueError)
                stop = "rest_next_key_unusable"
            else:
                seen.add(result.next_key)
                cont_key = result.next_key
                continue
            truncated = True
            # A page limit the caller chose is what it asked for; the config's default
            # cutting a listing short, or a server that breaks paging, is worth a warning.
            chosen = max_pages is not None and stop == "rest_pages_truncated"
            (log.debug if chosen else log.warning)(stop, api_id=api_id, pages=len(pages))
            break
        return Pages(api_id, spec.list_field, tuple(pages), truncated)

    async def call_merged(
        self, api_id: str, body: Mapping[str, Any], max_pages: int | None = None
    ) -> dict[str, Any]:
        """`call_all` flattened: the first body with every page's rows in the list field."""
        return (await self.call_all(api_id, body, max_pages)).merged()
