"""What the REST client does when a request fails: the failure's kind, and one table.

`kind_of` sorts an exception raised while sending a request into a `Failure`; `ACTIONS`,
keyed by (kind, is the request an order?), says what follows; `step` applies the bounds
(rate-limit resends, one token renewal, transport attempts) and counts the tries. Pure: the
waits, the governor and the logs stay in rest.py, which only carries out the action.

The rule the table keeps: an order POST that may have reached Kiwoom is never sent again.
Only a rate-limit or token refusal proves an order was not taken (it may be resent); a
connection that never opened proves it was not sent (the caller is told, nothing is resent);
anything else leaves its outcome unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from engine.kiwoom import protocol
from engine.kiwoom.errors import (
    AuthError,
    OutcomeUnknownError,
    RateLimitError,
    RequestRefusedError,
    TransportError,
    UnknownOutcome,
)
from engine.kiwoom.protocol import ServerError

__all__ = [
    "ACTIONS",
    "Action",
    "Failure",
    "Limits",
    "Tries",
    "kind_of",
    "reason_text",
    "step",
    "unknown_outcome",
]

# Errors where the request provably never left: connection refused, DNS, TLS, connect timeout
# (aiohttp raises them while opening a connection, before a byte of the request is written).
# Everything else is not proof. In particular ServerDisconnectedError, which is also what a
# keep-alive connection that the server closed just before our request gives (aiohttp retries
# that only for idempotent methods, never for POST), cannot be told apart from a server that
# read the request, took the order and then dropped the connection: outcome unknown.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_NETWORK = (aiohttp.ClientError, TimeoutError, OSError, TransportError)


class Failure(StrEnum):
    """Why a request failed, as far as resending it is concerned."""

    RATE_LIMITED = "rate_limited"
    """Refused for pacing: proof that it was not taken."""
    TOKEN_REFUSED = "token_refused"
    """The token was refused (invalid or expired): proof that it was not processed."""
    AUTH_REFUSED = "auth_refused"
    """The app key or the account was refused: a new token would not help."""
    CANCELLED_ON_WIRE = "cancelled_on_wire"
    """An order's caller was cancelled while its POST was on the wire (OutcomeUnknownError)."""
    REFUSED_PROVEN_UNTAKEN = "refused_proven_untaken"
    """A 4xx without an envelope whose status proves the request was refused unread."""
    REFUSED_UNPROVEN = "refused_unproven"
    """A 4xx without an envelope that does not prove the request unread."""
    NOT_SENT = "not_sent"
    """The connection never opened: not a byte of the request left."""
    MAY_HAVE_ARRIVED = "may_have_arrived"
    """A timeout, reset, hang-up, 5xx or unreadable answer: the request may have been read."""


class Action(StrEnum):
    """What the REST client does about a failure."""

    RETRY_AFTER_BACKOFF = "retry_after_backoff"
    """Wait the rate-limit back-off (unless that passes the order's deadline), send again."""
    RETRY_NEW_TOKEN = "retry_new_token"
    """Drop the refused token, send again with a new one (once per call)."""
    RETRY_TRANSPORT = "retry_transport"
    """Wait the transport back-off and send again (queries only)."""
    RAISE = "raise"
    """Raise the failure to the caller (for a transport failure: as TransportError)."""
    RAISE_NOT_SENT = "raise_not_sent"
    """An order provably not sent: raise TransportError; the caller decides, nothing resends."""
    RAISE_OUTCOME_UNKNOWN = "raise_outcome_unknown"
    """An order that may have been taken: raise OutcomeUnknownError; reconcile, never resend."""


ACTIONS: dict[tuple[Failure, bool], Action] = {
    # (kind, is_order): action. The bounds come on top, in `step`.
    (Failure.RATE_LIMITED, False): Action.RETRY_AFTER_BACKOFF,
    (Failure.RATE_LIMITED, True): Action.RETRY_AFTER_BACKOFF,
    (Failure.TOKEN_REFUSED, False): Action.RETRY_NEW_TOKEN,
    (Failure.TOKEN_REFUSED, True): Action.RETRY_NEW_TOKEN,
    (Failure.AUTH_REFUSED, False): Action.RAISE,
    (Failure.AUTH_REFUSED, True): Action.RAISE,
    # only an order's POST runs in a task of its own; it is an OutcomeUnknownError already
    (Failure.CANCELLED_ON_WIRE, False): Action.RAISE,
    (Failure.CANCELLED_ON_WIRE, True): Action.RAISE,
    # the same request would be refused again: never retried
    (Failure.REFUSED_PROVEN_UNTAKEN, False): Action.RAISE,
    (Failure.REFUSED_PROVEN_UNTAKEN, True): Action.RAISE,
    (Failure.REFUSED_UNPROVEN, False): Action.RAISE,
    (Failure.REFUSED_UNPROVEN, True): Action.RAISE_OUTCOME_UNKNOWN,
    (Failure.NOT_SENT, False): Action.RETRY_TRANSPORT,
    (Failure.NOT_SENT, True): Action.RAISE_NOT_SENT,
    (Failure.MAY_HAVE_ARRIVED, False): Action.RETRY_TRANSPORT,
    (Failure.MAY_HAVE_ARRIVED, True): Action.RAISE_OUTCOME_UNKNOWN,
}
"""What each failure of a query (False) or an order (True) leads to."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds on resending one call."""

    max_rate_limit_retries: int
    """Resends after rate-limit refusals; the one after that many is raised."""
    max_transport_attempts: int
    """Attempts of a query through transport failures, the first included."""


@dataclass(frozen=True, slots=True)
class Tries:
    """What one call met so far."""

    rate_limited: int = 0
    token_renewed: bool = False
    transport: int = 0


def kind_of(e: BaseException) -> Failure | None:
    """The kind of a failure to send a request, or None for an error that is raised as it is
    (Kiwoom said no, a bad request, a bug)."""
    if isinstance(e, RateLimitError):
        return Failure.RATE_LIMITED
    if isinstance(e, AuthError):
        return Failure.TOKEN_REFUSED if protocol.is_token_error(e) else Failure.AUTH_REFUSED
    if isinstance(e, OutcomeUnknownError):
        return Failure.CANCELLED_ON_WIRE
    if isinstance(e, RequestRefusedError):
        return Failure.REFUSED_PROVEN_UNTAKEN if e.not_taken else Failure.REFUSED_UNPROVEN
    if isinstance(e, _NOT_SENT):
        return Failure.NOT_SENT
    if isinstance(e, _NETWORK):
        return Failure.MAY_HAVE_ARRIVED
    return None


def step(kind: Failure, is_order: bool, tries: Tries, limits: Limits) -> tuple[Action, Tries]:
    """The action for this failure and the tries counted with it. A retry whose bound is
    spent becomes RAISE. (The order's deadline bounds a rate-limit resend too; it needs the
    clock and the back-off's draw, so rest.py checks it before the wait.)"""
    action = ACTIONS[(kind, is_order)]
    if kind is Failure.RATE_LIMITED:
        tries = Tries(tries.rate_limited + 1, tries.token_renewed, tries.transport)
        if action is Action.RETRY_AFTER_BACKOFF and (
            tries.rate_limited > limits.max_rate_limit_retries
        ):
            action = Action.RAISE
    elif kind is Failure.TOKEN_REFUSED:
        if tries.token_renewed:
            action = Action.RAISE
        elif action is Action.RETRY_NEW_TOKEN:
            tries = Tries(tries.rate_limited, True, tries.transport)
    elif kind in (Failure.NOT_SENT, Failure.MAY_HAVE_ARRIVED):
        tries = Tries(tries.rate_limited, tries.token_renewed, tries.transport + 1)
        if action is Action.RETRY_TRANSPORT and tries.transport >= limits.max_transport_attempts:
            action = Action.RAISE
    return action, tries


def reason_text(e: BaseException) -> str:
    """What went wrong, for logs, a query's TransportError and an order's unknown outcome."""
    if isinstance(e, RequestRefusedError):
        return f"HTTP {e.status}"
    if isinstance(e, ServerError):
        return f"HTTP {e.status}"
    if isinstance(e, TransportError):
        return "unreadable answer"
    return "timeout" if isinstance(e, TimeoutError) else type(e).__name__


def unknown_outcome(e: BaseException) -> UnknownOutcome:
    """The code of an order call's failure that may have left it taken."""
    if isinstance(e, RequestRefusedError):
        return UnknownOutcome.REFUSED_UNPROVEN
    if isinstance(e, ServerError):
        return UnknownOutcome.SERVER_ERROR
    if isinstance(e, TransportError):
        return UnknownOutcome.UNREADABLE
    return UnknownOutcome.TIMEOUT if isinstance(e, TimeoutError) else UnknownOutcome.DISCONNECTED
