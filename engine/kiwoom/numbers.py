"""Decoding of Kiwoom's number and code strings into ints, once, at the edge.

Kiwoom sends every value as a string: direction-signed prices ("+70000", "-69800", " 67300"),
truly signed zero-padded amounts ("-00000000196888"), prefixed codes ("A005930") and
exchange-suffixed items ("005930_NX"). Decoders are strict: anything else raises ValueError.
"""

from __future__ import annotations

from typing import Literal

Exchange = Literal["KRX", "NXT", "SOR"]

_SUFFIX_TO_EXCHANGE: dict[str, Exchange] = {"_NX": "NXT", "_AL": "SOR"}
_EXCHANGE_TO_SUFFIX: dict[str, str] = {"KRX": "", "NXT": "_NX", "SOR": "_AL"}
_CODE_PREFIXES = frozenset("AJQ")  # A 주식, J ELW, Q ETN


def _split_sign(s: str) -> tuple[bool, str]:
    t = s.strip()
    if t and (t[0] == "+" or t[0] == "-"):
        return t[0] == "-", t[1:]
    return False, t


def _sign_and_digits(s: str, what: str) -> tuple[bool, int]:
    """(negative, magnitude) of optional spaces, one sign and ASCII digits; ``""`` -> 0."""
    neg, digits = _split_sign(s)
    if not digits:
        if s.strip():
            raise ValueError(f"not a Kiwoom {what}: {s!r}")
        return False, 0
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a Kiwoom {what}: {s!r}")
    return neg, int(digits)


def signed(s: str) -> int:
    """A truly signed integer: ``"-00000000196888"`` -> -196888, ``"+82"`` -> 82, ``""`` -> 0.

    Raises ValueError for anything but optional spaces, one sign and ASCII digits.
    """
    neg, v = _sign_and_digits(s, "integer")
    return -v if neg else v


def price(s: str) -> int:
    """A direction-signed price: ``"+70000"``, ``"-69800"``, ``" 67300"`` -> positive int.

    The sign says up/down against the previous close, not arithmetic. ``""`` -> 0.
    Raises ValueError on non-numeric text.
    """
    return _sign_and_digits(s, "price")[1]


def signed_or_none(s: str) -> int | None:
    """As `signed`, but ``""`` (an unused field) -> None."""
    return None if not s.strip() else signed(s)


def price_or_none(s: str) -> int | None:
    """As `price`, but ``""`` (an unused field) -> None."""
    return None if not s.strip() else price(s)


def unsigned(s: str) -> int:
    """A quantity or amount that must not be negative (``"000000000003"`` -> 3).

    Raises ValueError on a negative value or non-numeric text. ``""`` -> 0.
    """
    v = signed(s)
    if v < 0:
        raise ValueError(f"negative where a non-negative number is expected: {s!r}")
    return v


def rate(s: str) -> float:
    """A percentage or ratio with decimals: ``"+1.81"`` -> 1.81, ``"-52.71"``, ``""`` -> 0.0.

    Raises ValueError on non-numeric text (no inf/nan, no exponent).
    """
    neg, digits = _split_sign(s)
    if not digits:
        if s.strip():
            raise ValueError(f"not a Kiwoom rate: {s!r}")
        return 0.0
    whole, sep, frac = digits.partition(".")
    ok_whole = whole.isascii() and whole.isdigit()
    ok_frac = frac.isascii() and frac.isdigit()
    if not ((ok_whole and (not sep or ok_frac)) or (not whole and sep and ok_frac)):
        raise ValueError(f"not a Kiwoom rate: {s!r}")
    v = float(digits)
    return -v if neg else v


def code(s: str) -> str:
    """A plain symbol code: ``"A005930"`` -> ``"005930"`` (A/J/Q prefixes), spaces stripped.

    Codes without a prefix pass through. Raises ValueError on an empty code.
    """
    t = s.strip()
    if len(t) == 7 and t[0] in _CODE_PREFIXES:
        t = t[1:]
    if not t:
        raise ValueError("empty symbol code")
    return t


def split_exchange(item: str) -> tuple[str, Exchange]:
    """``"005930_NX"`` -> ("005930", "NXT"), ``"005930_AL"`` -> ("005930", "SOR"),
    ``"005930"`` -> ("005930", "KRX"). Raises ValueError on an empty code or unknown suffix."""
    t = item.strip()
    base, sep, suffix = t.rpartition("_")
    if sep:
        exch = _SUFFIX_TO_EXCHANGE.get("_" + suffix)
        if exch is None:
            raise ValueError(f"unknown exchange suffix in {item!r}")
        return code(base), exch
    return code(t), "KRX"


def with_exchange(symbol: str, exchange: str) -> str:
    """``("005930", "NXT")`` -> ``"005930_NX"``; KRX has no suffix. Raises ValueError."""
    try:
        return symbol + _EXCHANGE_TO_SUFFIX[exchange]
    except KeyError:
        raise ValueError(f"unknown exchange {exchange!r} (KRX, NXT, SOR)") from None
