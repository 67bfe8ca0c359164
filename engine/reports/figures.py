"""Figures a live day's report and a backtest's report compute alike: what the fills cost
and traded, orders by final state, rejections by reason, the drawdown of an equity line.
Pure functions over plain values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from engine.events import Side
from engine.reports import metrics as m

DIGITS = 6


class FillLike(Protocol):
    @property
    def side(self) -> Side: ...
    @property
    def qty(self) -> int: ...
    @property
    def price(self) -> int: ...
    @property
    def fee(self) -> int: ...
    @property
    def tax(self) -> int: ...


def fill_figures(fills: Sequence[FillLike]) -> dict[str, Any]:
    """fills (count), fees, tax, bought and sold (KRW traded each way)."""
    return {
        "fills": len(fills),
        "fees": sum(f.fee for f in fills),
        "tax": sum(f.tax for f in fills),
        "bought": sum(f.qty * f.price for f in fills if f.side is Side.BUY),
        "sold": sum(f.qty * f.price for f in fills if f.side is Side.SELL),
    }


def count_by(keys: Iterable[str]) -> dict[str, int]:
    """How many times each key occurs, keys sorted (stable JSON)."""
    return dict(sorted(Counter(keys).items()))


def drawdown_figures(start: int, equity: Sequence[int]) -> dict[str, Any]:
    """max_drawdown_won (KRW, >= 0) and max_drawdown_pct (a fraction of the peak) of an
    equity line that starts at `start`."""
    dd = m.max_drawdown(start, equity)
    return {"max_drawdown_won": dd.won, "max_drawdown_pct": round(dd.pct, DIGITS)}
