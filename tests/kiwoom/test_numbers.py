"""Decoding of Kiwoom number and code strings (engine.kiwoom.numbers)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.kiwoom import numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+70000", 70000),
        ("-69800", 69800),
        (" 67300", 67300),
        ("70000", 70000),
        ("", 0),
        ("000000059000", 59000),
        ("-000000059000", 59000),
    ],
)
def test_price_drops_the_direction_sign(raw: str, expected: int) -> None:
    assert numbers.price(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-00000000196888", -196888),
        ("+82", 82),
        ("-50", -50),
        ("000000017598258", 17598258),
        ("", 0),
        ("  ", 0),
        ("0", 0),
    ],
)
def test_signed_keeps_the_sign(raw: str, expected: int) -> None:
    assert numbers.signed(raw) == expected


@pytest.mark.parametrize(
    "raw", ["abc", "+", "-", "1.5", "1_000", "+-5", "--5", "12a", "٣", "1e3", "0x10", "+ 5"]
)
def test_non_numeric_raises(raw: str) -> None:
    with pytest.raises(ValueError, match="not a Kiwoom"):
        numbers.signed(raw)
    with pytest.raises(ValueError, match="not a Kiwoom"):
        numbers.price(raw)


def test_or_none_variants() -> None:
    assert numbers.price_or_none("") is None
    assert numbers.signed_or_none(" ") is None
    assert numbers.price_or_none("-5") == 5
    assert numbers.signed_or_none("-5") == -5


def test_unsigned_refuses_negative() -> None:
    assert numbers.unsigned("000000000003") == 3
    with pytest.raises(ValueError, match="negative"):
        numbers.unsigned("-1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+1.81", 1.81), ("-52.71", -52.71), ("46.25", 46.25), ("", 0.0), ("3", 3.0), (".5", 0.5)],
)
def test_rate(raw: str, expected: float) -> None:
    assert numbers.rate(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["nan", "inf", "1e5", "1.2.3", "+", "1.", "abc"])
def test_rate_is_strict(raw: str) -> None:
    with pytest.raises(ValueError, match="not a Kiwoom rate"):
        numbers.rate(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A005930", "005930"),
        ("J123456", "123456"),
        ("Q500001", "500001"),
        ("005930", "005930"),
        (" 005930 ", "005930"),
        ("0008Z0", "0008Z0"),
    ],
)
def test_code_strips_prefixes(raw: str, expected: str) -> None:
    assert numbers.code(raw) == expected


def test_code_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        numbers.code("")


def test_split_and_join_exchange() -> None:
    assert numbers.split_exchange("005930_NX") == ("005930", "NXT")
    assert numbers.split_exchange("005930_AL") == ("005930", "SOR")
    assert numbers.split_exchange("005930") == ("005930", "KRX")
    assert numbers.split_exchange("A005930") == ("005930", "KRX")
    with pytest.raises(ValueError, match="suffix"):
        numbers.split_exchange("005930_XX")
    assert numbers.with_exchange("005930", "NXT") == "005930_NX"
    assert numbers.with_exchange("005930", "SOR") == "005930_AL"
    assert numbers.with_exchange("005930", "KRX") == "005930"
    with pytest.raises(ValueError, match="exchange"):
        numbers.with_exchange("005930", "NYSE")


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=0, max_value=16))
def test_signed_roundtrips_zero_padded(value: int, width: int) -> None:
    text = ("-" if value < 0 else "") + str(abs(value)).zfill(width)
    assert numbers.signed(text) == value
    assert numbers.price(text) == abs(value)
