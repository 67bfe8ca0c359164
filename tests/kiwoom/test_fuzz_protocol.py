"""Fuzzing the REST answer parsers that need no server: `protocol.classify` (status, headers,
body), the token answer, and the typed rows of engine/kiwoom/api.py.

Every input ends in a result or a KiwoomError subclass, and a result holds no silent wrong
value: ints where ints are due, no negative quantity, a number equal to what the text says.
The oracles below state the wire rules (facts sheet, "Number formatting") independently of
engine/kiwoom/numbers.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, time
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.clock import KST
from engine.kiwoom import protocol
from engine.kiwoom.api import KiwoomApi, _order_row
from engine.kiwoom.errors import (
    AuthError,
    BrokerError,
    KiwoomError,
    OutcomeUnknownError,
    RateLimitError,
    RequestRefusedError,
    TransportError,
)
from engine.models import Exchange, Side

FUZZ = settings(max_examples=150, deadline=None)

# --- what the wire may carry -------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
kiwoom_numbers = st.builds(
    lambda pad, sign, digits, tail: pad + sign + digits + tail,
    st.sampled_from(["", " ", "  ", "\t", "\u3000"]),
    st.sampled_from(["", "", "+", "-", "--", "+-"]),
    st.text(alphabet="0123456789", max_size=16),
    st.sampled_from(["", "", " ", ".5", ".", "e3", "x", "_0", "\u0663", "\uff10"]),
)
WIRE_WORDS = (
    *("", "0000000", "0000139", "A005930", "005930", "005930_NX", " ", "+매수", "-매도"),
    *("매수정정", "매도취소", "KRX", "NXT", "SOR", "090513", "20250908", "20250908090500"),
)
field_values = st.one_of(
    kiwoom_numbers,
    kiwoom_numbers,
    json_values,
    st.sampled_from(WIRE_WORDS),
)
return_codes = st.one_of(
    st.integers(min_value=-5, max_value=10),
    st.sampled_from(["0", " 0 ", "+0", "-0", "0_0", "1_0", "\u0660", "\uff10", "3", "5", "x"]),
    st.sampled_from([True, False, None, 0.0, 1.5, [], {}]),
    kiwoom_numbers,
)
return_msgs = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda a, code, b: f"{a}[{code}:{b}]",
        st.text(max_size=5),
        st.sampled_from(["8005", "8001", "8030", "1700", "1701", "1702", "1902", "CODE=8005"]),
        st.text(max_size=5),
    ),
    json_values,
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A JSON object shaped like Kiwoom's answer, or any JSON, or any bytes."""
    kind = draw(st.sampled_from(["envelope", "envelope", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind == "json":
        return orjson.dumps(draw(json_values))
    body: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    if draw(st.booleans()):
        body["return_code"] = draw(return_codes)
    if draw(st.booleans()):
        body["return_msg"] = draw(return_msgs)
    return orjson.dumps(body)


header_names = st.sampled_from(["cont-yn", "Cont-Yn", "CONT-YN", "next-key", "Next-Key", "x"])
header_values = st.one_of(
    st.sampled_from(["Y", "N", "y", " Y ", "YES", "", " "]),
    st.text(max_size=10),
)
statuses = st.one_of(
    st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 404, 408, 413, 429, 500, 503]),
    st.integers(min_value=100, max_value=599),
)

# --- oracles: the wire rules, written out ------------------------------------------------

_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def strict_int(raw: Any) -> int | None:
    """An int JSON value, or optional whitespace around one sign and ASCII digits; else
    None (not a number Kiwoom sends)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and _ASCII_INT.fullmatch(raw.strip()):
        return int(raw.strip())
    return None


def wire_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else ("" if raw is None else str(raw))


def expect_signed(raw: Any) -> int | None:
    """Kiwoom's truly signed numbers: "" (an unused field) reads 0."""
    text = wire_text(raw)
    if not text.strip():
        return 0
    return strict_int(text)


def expect_unsigned(raw: Any) -> int | None:
    v = expect_signed(raw)
    return None if v is None or v < 0 else v


def expect_price(raw: Any) -> int | None:
    """A direction-signed price: the sign says up or down, the value is its magnitude."""
    v = expect_signed(raw)
    return None if v is None else abs(v)


def expect_return_code(envelope: Mapping[str, Any]) -> tuple[bool, int | None]:
    """(readable, value) of the envelope's return_code; absent reads (True, None)."""
    if "return_code" not in envelope:
        return True, None
    v = strict_int(envelope["return_code"])
    return v is not None, v


# --- classify ----------------------------------------------------------------------------

T = TypeVar("T")


def outcome(fn: Callable[[], T]) -> T | KiwoomError:
    """What `fn` returns, or the KiwoomError it raises; anything else propagates and fails
    the test."""
    try:
        return fn()
    except KiwoomError as e:
        return e


_RATE_CODE = re.compile(r"\[(?:CODE=)?170[012]\s*[:,]")


@FUZZ
@given(
    status=statuses,
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=envelopes(),
)
@example(status=200, headers={}, body=b'{"return_code": "0_0"}')  # was: success
@example(status=200, headers={}, body='{"return_code": "\uff10"}'.encode())  # was: success
@example(status=200, headers={}, body=b'{"return_code": "1_0", "return_msg": "x"}')
@example(status=429, headers={}, body=b'{"return_code": "x"}')  # was: TransportError
@example(status=401, headers={}, body=b'{"return_code": 1.5}')  # was: TransportError
def test_classify_any_answer_is_a_result_or_a_kiwoom_error(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    envelope = parsed if isinstance(parsed, dict) else None
    readable, rc = expect_return_code(envelope) if envelope is not None else (True, None)
    msg = wire_text(envelope.get("return_msg")) if envelope is not None else ""
    got = outcome(lambda: protocol.classify("ka10081", status, headers, body))
    if isinstance(got, KiwoomError):
        if status == 401:
            assert isinstance(got, AuthError)
            assert protocol.is_token_error(got)
        elif status == 429:
            assert isinstance(got, RateLimitError)
        elif isinstance(got, RateLimitError):
            assert rc == 5 or _RATE_CODE.search(msg), (rc, msg)
        elif status >= 500:
            assert isinstance(got, protocol.ServerError)
            assert got.status == status
        elif envelope is None and 400 <= status < 500 and status != 408:
            assert isinstance(got, RequestRefusedError)
            assert got.status == status
        elif envelope is None or not readable:
            assert type(got) is TransportError, got
        elif rc not in (None, 0):
            assert isinstance(got, BrokerError)
            assert got.return_code == rc
        return
    # A result only for a 2xx envelope whose return_code reads 0 (or is absent), and with
    # no token or pacing refusal in its message.
    assert 200 <= status < 300
    assert envelope is not None
    assert got.body == envelope
    assert readable, envelope.get("return_code")
    assert rc in (None, 0)
    assert type(got.cont_yn) is bool
    assert got.cont_yn == (header(headers, "cont-yn").strip().upper() == "Y")
    assert isinstance(got.next_key, str)
    assert got.next_key == (header(headers, "next-key").strip() if got.cont_yn else "")


def header(headers: Mapping[str, str], name: str) -> str:
    """The header as a case-insensitive multidict reads it: the first of that name."""
    if name in headers:
        return headers[name]
    return next((v for k, v in headers.items() if k.lower() == name), "")


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["token", "expires_dt", "x"]),
        st.one_of(field_values, st.sampled_from(["sekrit-token-value", "tok\x7fen", "토큰"])),
    )
)
@example(body={"token": "ab\x7fcd", "expires_dt": "20991231235959"})  # was: ValueError later
def test_a_token_answer_is_a_token_and_an_aware_expiry_or_a_transport_error(
    body: dict[str, Any],
) -> None:
    got = outcome(lambda: protocol.parse_token(body))
    if isinstance(got, KiwoomError):
        assert type(got) is TransportError
        token = wire_text(body.get("token"))
        assert len(token) < 8 or token not in str(got)  # a short one may be any word
        return
    token, expires = got
    assert isinstance(token, str)
    assert token
    assert token.isascii()  # it goes into the authorization header as it is
    assert token.isprintable()
    assert expires.tzinfo is not None
    assert expires.strftime("%Y%m%d%H%M%S") == body["expires_dt"].strip()


# --- typed rows --------------------------------------------------------------------------

ORDER_ROW_KEYS = (
    "ord_no",
    "stk_cd",
    "stk_nm",
    "io_tp_nm",
    "ord_qty",
    "ord_pric",
    "cntr_qty",
    "cntr_pric",
    "orig_ord_no",
    "tm",
    "stex_tp_txt",
)
rows = st.fixed_dictionaries({}, optional=dict.fromkeys(ORDER_ROW_KEYS, field_values))


@FUZZ
@given(row=rows)
def test_an_order_row_has_exactly_the_numbers_its_text_says_or_is_an_error(
    row: dict[str, Any],
) -> None:
    out = outcome(
        lambda: _order_row(
            "ka10075",
            row,
            price="ord_pric",
            fill_price="cntr_pric",
            orig="orig_ord_no",
            tm="tm",
            exchange="stex_tp_txt",
        )
    )
    expected = {
        "qty": expect_unsigned(row.get("ord_qty")),
        "price": expect_price(row.get("ord_pric")),
        "filled_qty": expect_unsigned(row.get("cntr_qty")),
        "fill_price": expect_price(row.get("cntr_pric")),
    }
    symbol_ok = bool(wire_text(row.get("stk_cd")).strip())
    if isinstance(out, KiwoomError):
        assert None in expected.values() or not symbol_ok, row
        return
    assert symbol_ok
    for key, want in expected.items():
        assert type(out[key]) is int, (key, row)
        assert out[key] == want, (key, row)
        assert out[key] >= 0
    assert isinstance(out["symbol"], str)
    assert out["symbol"]
    assert out["side"] in (Side.BUY, Side.SELL, None)
    assert out["time"] is None or isinstance(out["time"], time)
    orig = out["original_order_no"]
    assert orig is None or (isinstance(orig, str) and orig.strip("0"))


bar_times = st.one_of(
    field_values,
    st.dates().map(lambda d: d.strftime("%Y%m%d")),
    st.datetimes().map(lambda d: d.strftime("%Y%m%d%H%M%S")),
    st.text(alphabet="0123456789-: ", max_size=16),
)
CANDLE_KEYS = ("open_pric", "high_pric", "low_pric", "cur_prc", "trde_qty", "trde_prica")


@FUZZ
@given(
    at=bar_times,
    fields=st.fixed_dictionaries({}, optional=dict.fromkeys(CANDLE_KEYS, field_values)),
    minute=st.booleans(),
)
@example(at="2024111", fields={}, minute=False)  # was: read as 2024-11-01
@example(at="202411", fields={}, minute=False)  # was: read as 2024-01-01
@example(at="2024-1-10", fields={}, minute=False)  # was: read as 2024-01-10
def test_a_bar_has_the_time_its_text_says_or_is_an_error(
    at: Any, fields: dict[str, Any], minute: bool
) -> None:
    key = "cntr_tm" if minute else "dt"
    row = {**fields, key: at}
    candle = outcome(lambda: KiwoomApi._candle("ka10080", row, key))
    digits = "".join(c for c in wire_text(at) if c.isdigit())
    if isinstance(candle, KiwoomError):
        return
    assert candle.at.tzinfo is not None
    fmt = "%Y%m%d%H%M%S" if len(digits) == 14 else "%Y%m%d"
    # every digit of the text is in the time, in place: nothing guessed
    assert candle.at.strftime(fmt) == digits, (at, candle.at)
    for name, want in (
        ("open", expect_price(row.get("open_pric"))),
        ("high", expect_price(row.get("high_pric"))),
        ("low", expect_price(row.get("low_pric"))),
        ("close", expect_price(row.get("cur_prc"))),
        ("volume", expect_price(row.get("trde_qty"))),
    ):
        value = getattr(candle, name)
        assert type(value) is int, (name, row)
        assert value == want, (name, row)
    turnover = candle.turnover_m
    if turnover is not None:
        assert type(turnover) is int
        assert turnover == expect_price(row["trde_prica"])


@pytest.mark.parametrize("text", ["2024111", "202411", "2024110", "2024-1-10", "20241", "123"])
def test_a_bar_time_that_is_not_a_whole_date_is_refused(text: str) -> None:
    with pytest.raises(KiwoomError, match="bad bar time"):
        KiwoomApi._candle("ka10081", {"dt": text}, "dt")


def test_a_whole_date_or_date_and_time_still_reads() -> None:
    assert KiwoomApi._candle("ka10081", {"dt": "20250908"}, "dt").at == datetime(
        2025, 9, 8, tzinfo=KST
    )
    assert KiwoomApi._candle("ka10080", {"cntr_tm": "20250908090500"}, "cntr_tm").at == (
        datetime(2025, 9, 8, 9, 5, tzinfo=KST)
    )


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "ord_no": field_values,
            "dmst_stex_tp": field_values,
            "base_orig_ord_no": field_values,
            "mdfy_qty": field_values,
            "return_msg": field_values,
        },
    )
)
def test_an_order_ack_has_a_readable_number_or_the_outcome_is_unknown(
    body: dict[str, Any],
) -> None:
    ack = outcome(lambda: KiwoomApi._ack("kt10002", body, "mdfy_qty"))
    if isinstance(ack, KiwoomError):
        assert isinstance(ack, OutcomeUnknownError)
        assert ack.reason == "no_order_no"
        number = wire_text(body.get("ord_no")).strip()
        assert not (number.isascii() and number.isdigit())
        return
    assert ack.order_no.isascii()
    assert ack.order_no.isdigit()
    assert ack.order_no == wire_text(body["ord_no"]).strip()
    if ack.qty is not None:
        assert type(ack.qty) is int
        assert ack.qty == expect_unsigned(body["mdfy_qty"])
    assert ack.exchange is None or isinstance(ack.exchange, Exchange)
