"""REST wire protocol without I/O (engine.kiwoom.protocol)."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from engine.clock import KST
from engine.kiwoom import protocol
from engine.kiwoom.errors import AuthError, BrokerError, RateLimitError, TransportError


def _body(rc: int, msg: str = "정상적으로 처리되었습니다", **fields: object) -> bytes:
    return orjson.dumps({**fields, "return_code": rc, "return_msg": msg})


def test_request_headers_first_page_and_continuation() -> None:
    h = protocol.request_headers("ka10081", "TOK")
    assert h == {
        "api-id": "ka10081",
        "content-type": "application/json;charset=UTF-8",
        "authorization": "Bearer TOK",
    }
    h2 = protocol.request_headers("ka10081", "TOK", "KEY123")
    assert h2["cont-yn"] == "Y"
    assert h2["next-key"] == "KEY123"
    assert "authorization" not in protocol.request_headers("au10001", None)


def test_ok_reads_paging_from_headers_not_body() -> None:
    body = _body(0, stk_cd="005930", cont_yn="N", next_key="")
    r = protocol.classify("ka10081", 200, {"Cont-Yn": "Y", "Next-Key": "k2"}, body)
    assert r.cont_yn is True
    assert r.next_key == "k2"
    assert r.body["stk_cd"] == "005930"
    # markers in the body (wrong place) are ignored
    body2 = _body(0, **{"cont-yn": "Y", "next-key": "zz"})
    r2 = protocol.classify("ka10081", 200, {}, body2)
    assert (r2.cont_yn, r2.next_key) == (False, "")


def test_cont_n_drops_next_key() -> None:
    r = protocol.classify("ka10081", 200, {"cont-yn": "N", "next-key": "stale"}, _body(0))
    assert (r.cont_yn, r.next_key) == (False, "")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, _body(3, "인증에 실패했습니다[8005:Token이 유효하지 않습니다]")),
        (200, _body(1, "인증에 실패했습니다[8005:Token이 유효하지 않습니다]")),
        (200, _body(3, "Token Expired")),
        (401, b""),
        (401, b"<html>unauthorized</html>"),
    ],
)
def test_token_errors(status: int, body: bytes) -> None:
    with pytest.raises(AuthError) as ei:
        protocol.classify("ka10001", status, {}, body)
    assert protocol.is_token_error(ei.value)


def test_key_error_is_auth_but_not_token_error() -> None:
    with pytest.raises(AuthError) as ei:
        protocol.classify(
            "au10001", 200, {}, _body(2, "인증 실패[8001:App Key와 Secret Key 검증에 실패했습니다]")
        )
    assert ei.value.code == 8001
    assert not protocol.is_token_error(ei.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, _body(5, "허용된 요청 개수를 초과하였습니다")),
        (429, b"too many"),
        (200, _body(5, "허용된 요청 개수를 초과하였습니다")),
        (200, _body(2, "오류[1700:허용된 API 요청 개수를 초과하였습니다. 유량=1, API ID=ka10001]")),
        (200, _body(2, "오류[1701:total]")),
        (200, _body(2, "오류[1702:group]")),
    ],
)
def test_rate_limits(status: int, body: bytes) -> None:
    with pytest.raises(RateLimitError):
        protocol.classify("ka10001", status, {}, body)


def test_business_error_parses_code() -> None:
    with pytest.raises(BrokerError) as ei:
        protocol.classify("ka10001", 200, {}, _body(2, "입력값 오류[1902:종목정보가 없습니다]"))
    e = ei.value
    assert type(e) is BrokerError
    assert (e.return_code, e.code, e.http_status) == (2, 1902, 200)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable_transport(status: int) -> None:
    with pytest.raises(protocol.ServerError) as ei:
        protocol.classify("ka10001", status, {}, b"<html>bad gateway</html>")
    assert isinstance(ei.value, TransportError)
    assert ei.value.status == status


@pytest.mark.parametrize("body", [b"", b"<html>", b"[1,2]", b'"text"', b"{bad json"])
def test_non_json_is_transport_error(body: bytes) -> None:
    with pytest.raises(TransportError) as ei:
        protocol.classify("ka10001", 200, {}, body)
    assert not isinstance(ei.value, protocol.ServerError)


def test_string_return_code_and_missing_return_code() -> None:
    r = protocol.classify("ka10001", 200, {}, orjson.dumps({"return_code": "0", "a": "1"}))
    assert r.body["a"] == "1"
    r2 = protocol.classify("ka10001", 200, {}, orjson.dumps({"a": "1"}))
    assert r2.body == {"a": "1"}
    with pytest.raises(TransportError, match="malformed return_code"):
        protocol.classify("ka10001", 200, {}, orjson.dumps({"return_code": "x"}))


def test_error_text_never_contains_request_secrets() -> None:
    with pytest.raises(AuthError) as ei:
        protocol.classify(
            "ka10001", 200, {}, _body(3, "인증에 실패했습니다[8005:Token이 유효하지 않습니다]")
        )
    assert "Bearer" not in str(ei.value)


def test_parse_expires_dt() -> None:
    assert protocol.parse_expires_dt("20241107083713") == datetime(
        2024, 11, 7, 8, 37, 13, tzinfo=KST
    )
    assert protocol.parse_expires_dt("20241107083713").utcoffset() is not None
    for bad in ["2024-11-07T08:37:13", "2024110708371", "20241307083713", ""]:
        with pytest.raises(
            ValueError, match=r"yyyyMMddHHmmss|does not match|unconverted|out of range"
        ):
            protocol.parse_expires_dt(bad)


def test_parse_token_and_malformed() -> None:
    tok, exp = protocol.parse_token({"token": "abc", "expires_dt": "20260105180000"})
    assert tok == "abc"
    assert exp.tzinfo is not None
    with pytest.raises(TransportError) as ei:
        protocol.parse_token({"token": "sekrit-token-value", "expires_dt": "soon"})
    assert "sekrit" not in str(ei.value)
