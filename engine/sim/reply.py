"""What a simulator REST handler returns or raises: the contract between the front door
(engine/sim/rest.py) and every api-id's handler, with Kiwoom's small return codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

OK_MSG = "정상적으로 처리되었습니다"

# Small category codes seen on the live server; the documented 4-digit code goes in the message.
RC_INPUT = 2
RC_AUTH = 3
RC_RATE = 5
RC_UNEXPECTED = 1


class SimReply(NamedTuple):
    body: dict[str, Any]
    """API fields; the envelope adds return_code / return_msg."""
    next_key: str = ""
    """Non-empty -> response headers cont-yn: Y and next-key: <it>."""
    return_msg: str = OK_MSG
    send_pushes: Callable[[], None] | None = None
    """Publishes the realtime entries (00/04) the request caused; the front door calls it
    after the answer is written, or before it (faults.order_push_first)."""


class SimBusinessError(Exception):
    """Raised by a handler to answer ``return_code != 0`` (the message carries ``[NNNN:...]``)."""

    def __init__(self, return_code: int, return_msg: str, http_status: int = 200) -> None:
        super().__init__(return_msg)
        self.return_code = return_code
        self.return_msg = return_msg
        self.http_status = http_status


RestHandler = Callable[[dict[str, Any], str], Awaitable[SimReply]]
"""(request body, next-key or "" on a first page) -> reply; raises SimBusinessError."""


def input_error(code: int, detail: str) -> SimBusinessError:
    """rc 2 with Kiwoom's bracketed code, e.g. ``input_error(1511, "필수 ... 요소명=stk_cd")``."""
    return SimBusinessError(RC_INPUT, f"입력값 오류입니다[{code}:{detail}]")


def auth_error(code: int = 8005, detail: str = "Token이 유효하지 않습니다") -> SimBusinessError:
    """rc 3, HTTP 200, as live Kiwoom answers an invalid or expired token."""
    return SimBusinessError(RC_AUTH, f"인증에 실패했습니다[{code}:{detail}]")


def rate_error(api_id: str, rate: float) -> SimBusinessError:
    """rc 5 with HTTP 429 and the documented 1700 text, as live Kiwoom throttles."""
    flow = f"{rate:g}"
    return SimBusinessError(
        RC_RATE,
        f"허용된 요청 개수를 초과하였습니다[1700:허용된 API 요청 개수를 초과하였습니다. "
        f"유량={flow}, API ID={api_id}]",
        http_status=429,
    )
