"""Kiwoom's side of the broker port (engine/broker.py): each error the client raises for an
order call becomes one answer, written out here."""

from __future__ import annotations

import pytest

from engine.broker import answer_for
from engine.kiwoom.errors import (
    AuthError,
    BrokerError,
    KiwoomError,
    OrderExpiredError,
    OutcomeUnknownError,
    RateLimitError,
    RequestRefusedError,
    TransportError,
    ValidationError,
)
from engine.trading.broker import Answer, BrokerAnswer


@pytest.mark.parametrize(
    ("error", "want"),
    [
        (OutcomeUnknownError("kt10000", "timeout"), BrokerAnswer(Answer.UNKNOWN, detail="timeout")),
        (
            OrderExpiredError("kt10000", 0.25, 3),
            BrokerAnswer(
                Answer.NOT_SENT,
                code="STALE",
                detail="kt10000: not sent, past its deadline by 250 ms after 3 rate-limit refusals",
            ),
        ),
        (
            BrokerError("kt10000", 1, "[2000:주문가능금액을 초과합니다]"),
            BrokerAnswer(Answer.REFUSED, code="2000", detail="[2000:주문가능금액을 초과합니다]"),
        ),
        (
            BrokerError("kt10003", 7, "no code"),
            BrokerAnswer(Answer.REFUSED, code="7", detail="no code"),
        ),
        (
            RateLimitError("kt10000", 5, "[1700:허용된 요청 개수를 초과]", http_status=429),
            BrokerAnswer(Answer.REFUSED, code="1700", detail="[1700:허용된 요청 개수를 초과]"),
        ),
        (
            AuthError("kt10000", 3, "[8005:Token이 유효하지 않습니다]"),
            BrokerAnswer(Answer.REFUSED, code="8005", detail="[8005:Token이 유효하지 않습니다]"),
        ),
        (
            ValidationError("qty must be > 0"),
            BrokerAnswer(Answer.NOT_SENT, detail="ValidationError: qty must be > 0"),
        ),
        (
            TransportError("connect refused"),
            BrokerAnswer(Answer.NOT_SENT, detail="TransportError: connect refused"),
        ),
        (
            RequestRefusedError("kt10000", 413, "Payload Too Large", not_taken=True),
            BrokerAnswer(
                Answer.NOT_SENT,
                detail="RequestRefusedError: kt10000: refused with HTTP 413 Payload Too Large "
                "and no Kiwoom answer; the same request would be refused again, so it was not "
                "retried",
            ),
        ),
        (KiwoomError("other"), BrokerAnswer(Answer.NOT_SENT, detail="KiwoomError: other")),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_each_kiwoom_error_of_an_order_call_is_one_answer(
    error: KiwoomError, want: BrokerAnswer
) -> None:
    assert answer_for(error) == want
