"""Secret values (app key, secret key, tokens) and the registry that keeps them out of output.

A `Secret` never shows its value in repr/str. Every secret the process learns is registered
here, so the log redactor can scrub it, whole or in pieces, even when it hides inside an
exception text, a URL or a library's elided dump of a frame.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

_MIN_SECRET_LEN = 6  # shorter values would scrub ordinary words out of log lines

FRAGMENT_LEN = 12
"""Any run of this many characters of a known secret is scrubbed wherever it appears. Libraries
elide long values (websockets logs a LOGIN frame as ``{"token":"GdUH...Lg"}``, a prefix and a
suffix of the token), and a cut line or a truncated field does the same: a whole-value match
misses those pieces. Twelve characters of a random token are not guessable and almost never
occur by chance in a log line, while shorter runs of a human-chosen key (``secretke``) would
start eating ordinary words."""

REPLACEMENT = "***"


@dataclass(frozen=True)
class _Index:
    """What `scrub` needs, swapped in whole on every registration so readers on other threads
    never see half an update."""

    ordered: tuple[str, ...] = ()
    """Longest first: if one secret contains another (a token embedding the app key), replacing
    the shorter one first would leave the rest of the longer one in the text."""
    fragments: frozenset[str] = frozenset()
    """Every FRAGMENT_LEN-character substring of every secret at least that long."""
    runs: re.Pattern[str] | None = None
    """Runs of FRAGMENT_LEN or more characters drawn from those secrets' alphabet: only such
    runs can hold a fragment, and finding them is one C-speed scan of the text."""


_lock = threading.Lock()
_known: set[str] = set()
_index = _Index()


def _build(known: set[str]) -> _Index:
    ordered = tuple(sorted(known, key=len, reverse=True))
    long_ones = [v for v in ordered if len(v) >= FRAGMENT_LEN]
    if not long_ones:
        return _Index(ordered)
    fragments = frozenset(
        v[i : i + FRAGMENT_LEN] for v in long_ones for i in range(len(v) - FRAGMENT_LEN + 1)
    )
    alphabet = "".join(sorted({c for v in long_ones for c in v}))
    runs = re.compile(f"[{re.escape(alphabet)}]{{{FRAGMENT_LEN},}}")
    return _Index(ordered, fragments, runs)


def register(value: str) -> None:
    """Remember `value` as secret; the redactor removes it (and every FRAGMENT_LEN-character
    piece of it) from everything logged."""
    global _index
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            if value not in _known:
                _known.add(value)
                _index = _build(_known)


def known() -> frozenset[str]:
    with _lock:
        return frozenset(_known)


def scrub(text: str) -> str:
    """Return `text` with every registered secret, and every run of at least FRAGMENT_LEN
    characters taken from one, replaced by ``***``."""
    index = _index
    for value in index.ordered:
        if value in text:
            text = text.replace(value, REPLACEMENT)
    if index.runs is None or len(text) < FRAGMENT_LEN:
        return text
    fragments = index.fragments
    return index.runs.sub(lambda m: _scrub_run(m.group(), fragments), text)


def _scrub_run(run: str, fragments: frozenset[str]) -> str:
    """`run` with every stretch covered by known fragments replaced; overlapping or touching
    fragments (a longer piece of the secret) become one ``***``."""
    spans: list[list[int]] = []
    for i in range(len(run) - FRAGMENT_LEN + 1):
        if run[i : i + FRAGMENT_LEN] in fragments:
            if spans and i <= spans[-1][1]:
                spans[-1][1] = i + FRAGMENT_LEN
            else:
                spans.append([i, i + FRAGMENT_LEN])
    if not spans:
        return run
    out: list[str] = []
    last = 0
    for start, end in spans:
        out.append(run[last:start])
        out.append(REPLACEMENT)
        last = end
    out.append(run[last:])
    return "".join(out)


class Secret:
    """A string that does not print itself. Call `reveal()` where the wire needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, redact: str | None = None) -> None:
        """`redact`: the part of `value` the redactor scrubs, when the rest is public (a
        webhook URL's scheme and host: scrubbing their pieces would eat every other URL on
        the same host from the logs); default all of it."""
        self._value = value
        register(value if redact is None else redact)

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
