"""Commission and tax of a fill, in int KRW, from rates in basis points of the traded value.

One rounding for everyone who charges or estimates them: the simulator charges what
`[portfolio]` estimates, so a fill's fee plus tax is floor(value x (commission_bp +
sell_tax_bp on a sell) / 10,000), rounded once per fill. Rates are config floats (1.5 bp must
be sayable); they are taken at their decimal spelling (`str(1.1)` is "1.1"), so 0.7 bp of
100,000 won is 7 won, not the 6 a binary 0.69999... would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

BP_PER_UNIT = 10_000


def _exact(bp: float) -> Fraction:
    if bp < 0 or bp != bp or bp == float("inf"):
        raise ValueError(f"a rate in basis points must be finite and >= 0, not {bp!r}")
    return Fraction(str(bp))


def _won(value: int, bp: Fraction) -> int:
    """floor(value x bp / 10,000) for value >= 0, exactly."""
    return int(value * bp.numerator // (bp.denominator * BP_PER_UNIT))


@dataclass(frozen=True)
class FeeRates:
    """Commission on every fill and transaction tax on sells, basis points of the value."""

    commission_bp: float = 0.0
    sell_tax_bp: float = 0.0
    _commission: Fraction = field(init=False, repr=False, compare=False)
    _all_in_sell: Fraction = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        commission = _exact(self.commission_bp)
        object.__setattr__(self, "_commission", commission)
        object.__setattr__(self, "_all_in_sell", commission + _exact(self.sell_tax_bp))

    def total(self, value: int, *, sell: bool) -> int:
        """Fee and tax together on a fill worth `value` won (>= 0): the portfolio's estimate."""
        return _won(value, self._all_in_sell if sell else self._commission)

    def charge(self, value: int, *, sell: bool) -> tuple[int, int]:
        """(commission, tax) on a fill worth `value` won. Their sum is `total`: the tax is
        what is left after the commission, so the pair never rounds to more than the one
        figure an estimate gives."""
        fee = _won(value, self._commission)
        return fee, (self.total(value, sell=True) - fee) if sell else 0
