"""Pure rules of the run-time universe: condition references, data kinds, the realtime limit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

SEQ_PREFIX: Final = "seq:"
"""A condition reference `seq:N` names the condition by its seq, not its name."""

DATA_KINDS: Final = ("trades", "quotes", "book")
"""What `Strategy.subscribe(symbol, data=...)` may ask for: trade prints (on_trade, bars),
best ask/bid (on_quote), the ten-level book (on_book)."""
DEFAULT_DATA: Final = ("trades", "quotes")
"""What `Strategy.subscribe` asks for when given no `data`."""

LIMIT_KEY: Final = "kiwoom.max_realtime_conditions"


def ref_problem(ref: object) -> str | None:
    """Why `ref` cannot name a condition (a non-empty name, or `seq:N` with N non-empty), or
    None. Shape only: whether the login has it is known once logged in."""
    if not isinstance(ref, str):
        return f"must be a condition's name or 'seq:N', got {ref!r}"
    if not ref.strip():
        return "is empty: give a condition's name or 'seq:N'"
    if ref.startswith(SEQ_PREFIX) and not ref[len(SEQ_PREFIX) :].strip():
        return f"{ref!r} names no seq: write e.g. 'seq:3'"
    return None


def data_kinds(data: object) -> frozenset[str]:
    """The data kinds `data` asks for (a sequence of DATA_KINDS, or one of them). Raises
    ValueError naming what is wrong."""
    items: Sequence[object] = (data,) if isinstance(data, str) else data  # type: ignore[assignment]
    try:
        kinds = list(items)
    except TypeError:
        raise ValueError(f"data must be a tuple of {', '.join(DATA_KINDS)}; got {data!r}") from None
    bad = [k for k in kinds if k not in DATA_KINDS]
    if bad or not kinds:
        raise ValueError(f"data must name at least one of {', '.join(DATA_KINDS)}; got {data!r}")
    return frozenset(kinds)  # type: ignore[arg-type]


def over_limit(in_use: Iterable[str], wanted: Iterable[str], limit: int) -> list[str]:
    """The conditions of `wanted` (in order) that would not fit: those not already `in_use`,
    past `limit` distinct realtime conditions in all."""
    used = dict.fromkeys(in_use)
    refused: list[str] = []
    for w in wanted:
        if w in used:
            continue
        if len(used) >= limit:
            refused.append(w)
        else:
            used[w] = None
    return refused


def limit_message(in_use: int, limit: int) -> str:
    return (
        f"realtime condition limit reached: {in_use} of {limit} in use "
        f"(Kiwoom allows about 10 per login; raise {LIMIT_KEY} only if your account allows more)"
    )


def resolve_condition(conditions: Iterable[tuple[str, str]], ref: str) -> tuple[str, str]:
    """The (seq, name) `ref` names: a condition's name, or "seq:N" for its seq (so a condition
    named "3" is no trap). Raises ValueError naming what is known when none or several match."""
    rows = list(conditions)
    if ref.startswith(SEQ_PREFIX):
        seq = ref[len(SEQ_PREFIX) :].strip()
        found = [r for r in rows if r[0] == seq]
    else:
        found = [r for r in rows if r[1] == ref]
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{n!r} (seq:{s})" for s, n in rows) or "none"
    if not found:
        raise ValueError(f"no condition {ref!r}; the login has: {known}")
    raise ValueError(f"{len(found)} conditions are named {ref!r}: give it as seq:N ({known})")
