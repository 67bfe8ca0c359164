"""Secret values (app key, secret key, tokens) and the registry that keeps them out of output.

A `Secret` never shows its value in repr/str. Every secret the process learns is registered
here, so the log redactor can scrub it even when it hides inside an exception text or a URL.
"""

from __future__ import annotations

import threading

_MIN_SECRET_LEN = 6  # shorter values would scrub ordinary words out of log lines

_lock = threading.Lock()
_known: set[str] = set()
# Longest first: if one secret contains another (a token embedding the app key), replacing the
# shorter one first would leave the rest of the longer one in the text.
_ordered: tuple[str, ...] = ()


def register(value: str) -> None:
    """Remember `value` as secret; the redactor removes it from everything logged."""
    global _ordered
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            if value not in _known:
                _known.add(value)
                _ordered = tuple(sorted(_known, key=len, reverse=True))


def known() -> frozenset[str]:
    with _lock:
        return frozenset(_known)


def scrub(text: str) -> str:
    """Return `text` with every registered secret replaced by ``***``."""
    for value in _ordered:
        if value in text:
            text = text.replace(value, "***")
    return text


class Secret:
    """A string that does not print itself. Call `reveal()` where the wire needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
