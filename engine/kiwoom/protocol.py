"""Kiwoom REST wire protocol without I/O: request headers, bodies, and response classification.

`classify` turns (HTTP status, headers, body bytes) into a `RestResult` or a typed error;
rest.py and auth.py only move bytes. Paging markers come from response HEADERS, never the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any, NamedTuple

import orjson

from engine.clock import KST
from engine.kiwoom import numbers
from engine.kiwoom.errors import (
    AuthError,
    BrokerError,
    RateLimitError,
    RequestRefusedError,
    TransportError,
    parse_error_code,
)

CONTENT_TYPE = "application/json;charset=UTF-8"
_RATE_LIMIT_CODES = frozenset({1700, 1701, 1702})
_RC_TOKEN = 3
_RC_RATE_LIMIT = 5
_TOKEN_ERROR_CODE = 8005
_REQUEST_TIMEOUT = 408  # the server gave up waiting for the request: worth another try
# 4xx answers about the request's form (its length, size, encoding, header block). A front
# end gives them before anything reads the body, so an order sent with one was not taken.
# Other 4xx answers (400, 403, 404, ...) may come from deeper in; they prove nothing.
_REFUSED_UNREAD = frozenset({411, 413, 414, 415, 431})


class RestResult(NamedTuple):
    """A successful answer: the JSON body (envelope included), and the paging headers."""

    body: dict[str, Any]
    cont_yn: bool
    next_key: str


class ServerError(TransportError):
    """HTTP 5xx: the server failed; a query may be retried, an order's outcome is unknown."""

    def __init__(self, api_id: str, status: int) -> None:
        super().__init__(f"{api_id}: HTTP {status} from the server")
        self.api_id = api_id
        self.status = status


def request_headers(api_id: str, token: str | None, cont_key: str | None = None) -> dict[str, str]:
    """Headers of one REST request. `token` None for the OAuth calls; `cont_key` asks for the
    page after the one that returned that ``next-key``."""
    h = {"api-id": api_id, "content-type": CONTENT_TYPE}
    if token is not None:
        h["authorization"] = "Bearer " + token
    if cont_key is not None:
        h["cont-yn"] = "Y"
        h["next-key"] = cont_key
    return h


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The JSON request body (UTF-8, compact)."""
    return orjson.dumps(dict(body) if not isinstance(body, dict) else body)


def _header(headers: Mapping[str, str], name: str) -> str:
    v = headers.get(name)
    if v is not None:
        return v
    for k, val in headers.items():  # plain dicts are case-sensitive; aiohttp's are not
        if k.lower() == name:
            return val
    return ""


def is_token_error(err: BaseException) -> bool:
    """True if `err` says the token is invalid or expired (re-issue and retry once)."""
    if not isinstance(err, AuthError):
        return False
    return err.http_status == 401 or err.return_code == _RC_TOKEN or err.code == _TOKEN_ERROR_CODE


def _return_code(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        # ASCII digits only: int() would also read "0_0" or "\u0660" as 0, i.e. success
        return numbers.signed(value)
    raise TypeError


def classify(api_id: str, status: int, headers: Mapping[str, str], body: bytes) -> RestResult:
    """Map one HTTP answer to a RestResult, or raise the typed error.

    - HTTP 200 with ``return_code`` 0 (or absent) -> RestResult (paging from the headers).
    - ``return_code`` 3, ``[8005:...]`` in the message, or HTTP 401 -> AuthError (token error).
    - HTTP 429, ``return_code`` 5, or codes 1700-1702 -> RateLimitError.
    - Any other ``return_code != 0`` -> BrokerError (4-digit code parsed into ``.code``);
      80xx codes -> AuthError.
    - HTTP 5xx -> ServerError (a TransportError).
    - HTTP 4xx without an envelope (other than 401, 408 and 429) -> RequestRefusedError: a
      retry would be refused the same way. ``not_taken`` for 411/413/414/415/431.
    - A body that is not a JSON object with any other status -> TransportError; so is an
      envelope whose ``return_code`` is not an int or ASCII digits (HTTP 401, 429 and 5xx
      decide first).
    Error texts carry only api-ids and Kiwoom's own message, never request data.
    """
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    envelope = parsed if isinstance(parsed, dict) else None
    rc: int | None = None
    rc_unreadable = False
    msg = ""
    if envelope is not None:
        raw_msg = envelope.get("return_msg", "")
        msg = raw_msg if isinstance(raw_msg, str) else str(raw_msg)
        if "return_code" in envelope:
            try:
                rc = _return_code(envelope["return_code"])
            except (TypeError, ValueError):
                rc_unreadable = True

    if status == 401:
        raise AuthError(api_id, rc if rc is not None else _RC_TOKEN, msg, http_status=status)
    code = parse_error_code(msg) if msg else None
    if status == 429 or rc == _RC_RATE_LIMIT or code in _RATE_LIMIT_CODES:
        raise RateLimitError(
            api_id, rc if rc is not None else _RC_RATE_LIMIT, msg, http_status=status
        )
    if status >= 500:
        raise ServerError(api_id, status)
    if envelope is None and 400 <= status < 500 and status != _REQUEST_TIMEOUT:
        try:
            phrase = f"({HTTPStatus(status).phrase})"
        except ValueError:
            phrase = "(unassigned status)"
        raise RequestRefusedError(api_id, status, phrase, not_taken=status in _REFUSED_UNREAD)
    if envelope is None:
        kind = "an empty body" if not body else "a body that is not a JSON object"
        raise TransportError(f"{api_id}: HTTP {status} with {kind}")
    if rc_unreadable:
        # After the status checks: a 401 or a 429 says what happened whatever the body holds.
        raise TransportError(f"{api_id}: malformed return_code in the answer")
    if rc == _RC_TOKEN or code == _TOKEN_ERROR_CODE or (code is not None and 8000 <= code < 8100):
        raise AuthError(api_id, rc if rc is not None else _RC_TOKEN, msg, http_status=status)
    if rc is not None and rc != 0:
        raise BrokerError(api_id, rc, msg, http_status=status)
    if not 200 <= status < 300:
        raise BrokerError(api_id, rc if rc is not None else -1, msg, http_status=status)
    cont = _header(headers, "cont-yn").strip().upper() == "Y"
    next_key = _header(headers, "next-key").strip() if cont else ""
    return RestResult(envelope, cont, next_key)


def parse_expires_dt(value: str) -> datetime:
    """Parse au10001's ``expires_dt`` (KST ``yyyyMMddHHmmss``) into an aware datetime.

    Raises ValueError on any other shape.
    """
    v = value.strip()
    if len(v) != 14 or not (v.isascii() and v.isdigit()):
        raise ValueError(f"expires_dt is not yyyyMMddHHmmss: {value!r}")
    return datetime.strptime(v, "%Y%m%d%H%M%S").replace(tzinfo=KST)


def token_request(appkey: str, secretkey: str) -> dict[str, str]:
    """Body of au10001 (issue a token)."""
    return {"grant_type": "client_credentials", "appkey": appkey, "secretkey": secretkey}


def revoke_request(appkey: str, secretkey: str, token: str) -> dict[str, str]:
    """Body of au10002 (revoke a token)."""
    return {"appkey": appkey, "secretkey": secretkey, "token": token}


def parse_token(body: Mapping[str, Any]) -> tuple[str, datetime]:
    """(token, expires_at) from an au10001 answer; raises TransportError if malformed (a
    token must be printable ASCII: it goes into a header). The message never includes it.
    """
    token = body.get("token")
    expires = body.get("expires_dt")
    if not isinstance(token, str) or not token or not isinstance(expires, str):
        raise TransportError("au10001: the answer has no token/expires_dt")
    if not (token.isascii() and token.isprintable()):
        # it goes into every request's authorization header, where aiohttp would refuse it
        raise TransportError("au10001: the token is not printable ASCII")
    try:
        return token, parse_expires_dt(expires)
    except ValueError:
        raise TransportError("au10001: expires_dt is not yyyyMMddHHmmss") from None
