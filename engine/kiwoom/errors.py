"""Typed errors of the Kiwoom client, REST and WebSocket alike.

Every error a caller can act on has its own class. Texts never carry a secret: callers build
them from Kiwoom's own `return_msg` and from api-ids, never from request bodies or headers.
"""

from __future__ import annotations

import re
from enum import StrEnum

from engine.secrets import scrub

_CODE_IN_MSG = re.compile(r"\[(?:CODE=)?(\d{4})\s*[:,]")


def parse_error_code(return_msg: str) -> int | None:
    """Return the 4-digit code Kiwoom embeds in a message, or None.

    Both observed shapes are handled: ``"...[8005:Token이 유효하지 않습니다]"`` (REST) and
    ``"... [CODE=8005, MESSAGE=...]"`` (WebSocket LOGIN).
    """
    m = _CODE_IN_MSG.search(return_msg)
    return int(m.group(1)) if m else None


class KiwoomError(Exception):
    """Base of every error raised by engine.kiwoom."""


class ValidationError(KiwoomError):
    """The request is wrong before anything was sent: unknown api-id, missing field, bad value."""


class TransportError(KiwoomError):
    """The network failed (connect error, reset, timeout, 5xx) and retries, if any, ran out."""


class UnknownOutcome(StrEnum):
    """Why an order call's outcome is unknown (`OutcomeUnknownError.reason`). Published: an
    order left in doubt reads ``UNKNOWN: <value>``."""

    TIMEOUT = "timeout"
    """No answer within the request timeout."""
    CANCELLED = "cancelled"
    """The caller was cancelled while the POST was on the wire (its late answer is logged)."""
    SERVER_ERROR = "server_error"
    """HTTP 5xx: the server failed, perhaps after taking the order."""
    UNREADABLE = "unreadable_answer"
    """An answer that is not Kiwoom's envelope (cut short, not JSON)."""
    DISCONNECTED = "disconnected"
    """The connection broke after the request may have been read (reset, server hung up)."""
    REFUSED_UNPROVEN = "refused_unproven"
    """An HTTP 4xx without Kiwoom's envelope whose status does not prove the order unread."""
    NO_ORDER_NO = "no_order_no"
    """Taken (return_code 0) but answered without an order number: which order is live?"""


class OutcomeUnknownError(TransportError):
    """An order-placing call was sent but no answer proves whether it was taken.

    Never a rejection: the order may be live. Reconcile (ka10075 / ka10076 / kt00007) before
    sending anything that would duplicate it. `reason` is a code (UnknownOutcome); `detail`
    says more where there is more (the HTTP status, the network error).
    """

    def __init__(self, api_id: str, reason: UnknownOutcome, detail: str = "") -> None:
        why = f"{reason}: {detail}" if detail else str(reason)
        super().__init__(f"{api_id}: outcome unknown ({why}); reconcile before retrying")
        self.api_id = api_id
        self.reason = reason
        self.detail = detail


class OrderExpiredError(KiwoomError):
    """An order call's deadline passed before its request could be sent: the pacing wait or
    the backoff after a rate-limit refusal would have sent it too late.

    Proof that the order was NOT sent (every earlier attempt was refused for pacing), so the
    caller may reject it outright: ``reason`` is ``STALE``. ``late_s`` is how far past the
    deadline the request would have left; ``rate_limited`` how many refusals it met.
    """

    reason = "STALE"

    def __init__(self, api_id: str, late_s: float, rate_limited: int) -> None:
        super().__init__(
            f"{api_id}: not sent, past its deadline by {late_s * 1000:.0f} ms "
            f"after {rate_limited} rate-limit refusals"
        )
        self.api_id = api_id
        self.late_s = late_s
        self.rate_limited = rate_limited


class BrokerError(KiwoomError):
    """Kiwoom answered with ``return_code != 0``.

    ``code`` is the documented 4-digit code parsed from ``return_msg`` when present.
    ``return_msg`` is Kiwoom's text with every registered secret scrubbed: a server that
    echoes the token or the app key back must not carry it into a log line or a traceback.
    """

    def __init__(
        self,
        api_id: str,
        return_code: int,
        return_msg: str,
        *,
        http_status: int = 200,
    ) -> None:
        self.api_id = api_id
        self.return_code = return_code
        self.code = parse_error_code(return_msg)
        return_msg = scrub(return_msg)
        self.return_msg = return_msg
        self.http_status = http_status
        super().__init__(f"{api_id}: return_code={return_code} {return_msg.strip()}")


class AuthError(BrokerError):
    """The token or the app key was refused (return_code 3, [8005:...], HTTP 401, 80xx)."""


class RateLimitError(BrokerError):
    """Kiwoom refused for pacing (HTTP 429, return_code 5, codes 1700-1702).

    Proof that the request was not taken, so even an order may be sent again.
    """


class RequestRefusedError(KiwoomError):
    """An HTTP 4xx answer with no Kiwoom envelope (not 401, 408 or 429): something in front of
    Kiwoom's API refused the request as sent (too large, no such path, forbidden, ...).
    Sending it again would be refused again, so it is never retried.

    ``not_taken`` is True when the status proves the request was refused before it was read
    (its size or framing, e.g. 413): an order was then not taken. For any other status an
    order's outcome stays unknown and the REST client raises OutcomeUnknownError instead.
    """

    def __init__(self, api_id: str, status: int, phrase: str, *, not_taken: bool) -> None:
        super().__init__(
            f"{api_id}: refused with HTTP {status} {phrase} and no Kiwoom answer; "
            "the same request would be refused again, so it was not retried"
        )
        self.api_id = api_id
        self.status = status
        self.not_taken = not_taken
