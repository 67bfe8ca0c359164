"""The REST client's failure table (engine/kiwoom/failures.py), checked against a table
written here, and the rule it keeps: an order that may have reached Kiwoom is never resent.

The expected tables below are literals, not read from the code: a change to the decision
must be made in both places, on purpose.
"""

from __future__ import annotations

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kiwoom import failures
from engine.kiwoom.errors import (
    AuthError,
    BrokerError,
    OrderExpiredError,
    OutcomeUnknownError,
    RateLimitError,
    RequestRefusedError,
    TransportError,
    UnknownOutcome,
    ValidationError,
)
from engine.kiwoom.failures import Action, Failure, Limits, Tries, kind_of, step
from engine.kiwoom.protocol import ServerError

# kind                     query                order
EXPECTED = """
rate_limited               retry_after_backoff  retry_after_backoff
token_refused              retry_new_token      retry_new_token
auth_refused               raise                raise
cancelled_on_wire          raise                raise
refused_proven_untaken     raise                raise
refused_unproven           raise                raise_outcome_unknown
not_sent                   retry_transport      raise_not_sent
may_have_arrived           retry_transport      raise_outcome_unknown
"""

# The kinds where the request may have been read by Kiwoom (an order may be live).
MAY_HAVE_REACHED = ("cancelled_on_wire", "refused_unproven", "may_have_arrived")
# The kinds that prove an order was not taken, and so may be sent again.
PROVEN_UNTAKEN_RESENDABLE = ("rate_limited", "token_refused")
RETRIES = ("retry_after_backoff", "retry_new_token", "retry_transport")

ROOMY = Limits(max_rate_limit_retries=8, max_transport_attempts=4)


def _expected() -> dict[tuple[str, bool], str]:
    out: dict[tuple[str, bool], str] = {}
    for line in EXPECTED.strip().splitlines():
        kind, query, order = line.split()
        out[(kind, False)] = query
        out[(kind, True)] = order
    return out


def test_the_table_has_exactly_the_expected_action_for_every_kind_and_call() -> None:
    expected = _expected()
    actual = {(k.value, is_order): a.value for (k, is_order), a in failures.ACTIONS.items()}
    assert actual == expected
    # every pair of the enum is in the table (no kind falls through to a KeyError)
    assert {(k.value, o) for k in Failure for o in (False, True)} == set(expected)


@pytest.mark.parametrize(("kind", "is_order"), sorted(_expected()))
def test_a_first_failure_takes_the_tables_action(kind: str, is_order: bool) -> None:
    action, _ = step(Failure(kind), is_order, Tries(), ROOMY)
    assert action.value == _expected()[(kind, is_order)]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(MAY_HAVE_REACHED),
    rate=st.integers(0, 20),
    renewed=st.booleans(),
    transport=st.integers(0, 20),
    max_rate=st.integers(0, 20),
    max_transport=st.integers(1, 20),
)
def test_an_order_that_may_have_reached_the_server_is_never_sent_again(
    kind: str, rate: int, renewed: bool, transport: int, max_rate: int, max_transport: int
) -> None:
    action, _ = step(
        Failure(kind), True, Tries(rate, renewed, transport), Limits(max_rate, max_transport)
    )
    assert action.value not in RETRIES
    # and the caller is told "maybe taken", never "not sent" (which it may resend)
    assert action.value in ("raise", "raise_outcome_unknown")
    assert action is not Action.RAISE_NOT_SENT


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([k.value for k in Failure]),
    rate=st.integers(0, 20),
    renewed=st.booleans(),
    transport=st.integers(0, 20),
    max_rate=st.integers(0, 20),
    max_transport=st.integers(1, 20),
)
def test_an_order_is_resent_only_after_a_refusal_that_proves_it_untaken(
    kind: str, rate: int, renewed: bool, transport: int, max_rate: int, max_transport: int
) -> None:
    action, _ = step(
        Failure(kind), True, Tries(rate, renewed, transport), Limits(max_rate, max_transport)
    )
    if action.value in RETRIES:
        assert kind in PROVEN_UNTAKEN_RESENDABLE


@settings(max_examples=300, deadline=None)
@given(
    kinds=st.lists(st.sampled_from([k.value for k in Failure]), min_size=1, max_size=60),
    is_order=st.booleans(),
    max_rate=st.integers(0, 5),
    max_transport=st.integers(1, 5),
)
def test_any_run_of_failures_ends_within_the_bounds(
    kinds: list[str], is_order: bool, max_rate: int, max_transport: int
) -> None:
    # One call meeting these failures in turn: each retry sends again, anything else ends it.
    limits = Limits(max_rate, max_transport)
    tries = Tries()
    sends = 0
    ended = False
    for kind in kinds:
        sends += 1
        action, tries = step(Failure(kind), is_order, tries, limits)
        if action.value not in RETRIES:
            ended = True
            break
        if is_order:
            assert kind in PROVEN_UNTAKEN_RESENDABLE
    # at most: every rate-limit resend, one token renewal, the transport attempts
    bound = (max_rate + 1) + 1 + (0 if is_order else max_transport - 1)
    assert sends <= bound
    if len(kinds) >= bound:
        assert ended


def test_rate_limit_resends_stop_after_the_configured_number() -> None:
    limits = Limits(max_rate_limit_retries=3, max_transport_attempts=4)
    tries = Tries()
    seen = []
    for _ in range(4):
        action, tries = step(Failure.RATE_LIMITED, True, tries, limits)
        seen.append(action)
    assert seen == [Action.RETRY_AFTER_BACKOFF] * 3 + [Action.RAISE]
    assert tries.rate_limited == 4


def test_no_rate_limit_resend_when_none_is_allowed() -> None:
    action, tries = step(Failure.RATE_LIMITED, False, Tries(), Limits(0, 4))
    assert action is Action.RAISE
    assert tries.rate_limited == 1


def test_a_token_is_renewed_once_per_call() -> None:
    action, tries = step(Failure.TOKEN_REFUSED, True, Tries(), ROOMY)
    assert action is Action.RETRY_NEW_TOKEN
    assert tries.token_renewed
    action, tries = step(Failure.TOKEN_REFUSED, True, tries, ROOMY)
    assert action is Action.RAISE
    # a rate limit in between does not give the token a second chance
    _, tries = step(Failure.RATE_LIMITED, True, tries, ROOMY)
    assert step(Failure.TOKEN_REFUSED, False, tries, ROOMY)[0] is Action.RAISE


def test_a_query_makes_the_configured_number_of_transport_attempts_in_all() -> None:
    limits = Limits(max_rate_limit_retries=8, max_transport_attempts=3)
    tries = Tries()
    seen = []
    for kind in (Failure.NOT_SENT, Failure.MAY_HAVE_ARRIVED, Failure.NOT_SENT):
        action, tries = step(kind, False, tries, limits)
        seen.append(action)
    # attempts 1 and 2 failed and are retried; the third attempt's failure is raised
    assert seen == [Action.RETRY_TRANSPORT, Action.RETRY_TRANSPORT, Action.RAISE]
    assert tries.transport == 3


def test_a_single_transport_attempt_is_never_retried() -> None:
    assert step(Failure.MAY_HAVE_ARRIVED, False, Tries(), Limits(8, 1))[0] is Action.RAISE


def _connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RateLimitError("kt10000", 5, "[1700:too many]"), "rate_limited"),
        (RateLimitError("ka10001", 0, "", http_status=429), "rate_limited"),
        (AuthError("kt10000", 3, "token expired"), "token_refused"),
        (AuthError("kt10000", 1, "[8005:Token이 유효하지 않습니다]"), "token_refused"),
        (AuthError("kt10000", 1, "", http_status=401), "token_refused"),
        (AuthError("kt10000", 1, "[8001:app key]"), "auth_refused"),
        (OutcomeUnknownError("kt10000", UnknownOutcome.CANCELLED), "cancelled_on_wire"),
        (
            RequestRefusedError("kt10000", 413, "Too Large", not_taken=True),
            "refused_proven_untaken",
        ),
        (RequestRefusedError("kt10000", 403, "Forbidden", not_taken=False), "refused_unproven"),
        (_connector_error(), "not_sent"),
        (aiohttp.ConnectionTimeoutError(), "not_sent"),
        (aiohttp.ServerDisconnectedError(), "may_have_arrived"),
        (aiohttp.SocketTimeoutError(), "may_have_arrived"),
        (TimeoutError(), "may_have_arrived"),
        (ConnectionResetError(), "may_have_arrived"),
        (ServerError("kt10000", 500), "may_have_arrived"),
        (TransportError("kt10000: not JSON"), "may_have_arrived"),
    ],
)
def test_each_failure_is_sorted_into_its_kind(error: BaseException, kind: str) -> None:
    assert kind_of(error) == Failure(kind)


@pytest.mark.parametrize(
    "error",
    [
        BrokerError("kt10000", 1, "[2000:주문가능금액 부족]"),
        ValidationError("bad field"),
        OrderExpiredError("kt10000", 0.1, 2),
        ValueError("a bug"),
    ],
)
def test_an_answer_or_a_bug_is_not_a_failure_to_send(error: BaseException) -> None:
    assert kind_of(error) is None


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (
            RequestRefusedError("kt10000", 403, "Forbidden", not_taken=False),
            "refused_unproven",
            "HTTP 403",
        ),
        (ServerError("kt10000", 502), "server_error", "HTTP 502"),
        (TransportError("kt10000: cut short"), "unreadable_answer", "unreadable answer"),
        (TimeoutError(), "timeout", "timeout"),
        (aiohttp.ServerDisconnectedError(), "disconnected", "ServerDisconnectedError"),
    ],
)
def test_an_orders_unknown_outcome_says_why(error: BaseException, code: str, text: str) -> None:
    assert failures.unknown_outcome(error) == code
    assert failures.reason_text(error) == text
