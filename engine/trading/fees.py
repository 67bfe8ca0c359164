"""Commission and tax of a fill, in int KRW, from rates in basis points of the traded value.

One rounding for everyone who charges or estimates them: the simulator charges what
`[portfolio]` estimates, so a fill's fee plus tax is floor(value x (commission_bp +
sell_tax_bp on a sell) / 10,000), rounded once per fill. Rates are config floats (1.5 bp must
be sayable); they are taken at their decimal spelling (`str(1.1)` is "1.1"), so 0.7 bp of
100,000 won is 7 won, not the 6 a binary 0.69999... would give.

The sell tax (증권거래세, with the 농어촌특별세 KOSPI adds) changes by year and differs by
market: `SELL_TAX_TABLE` below, as published, keyed by the day a rate took effect and the
market. `FeeRates(..., sell_tax_table=True)` charges it by the fill's day and the symbol's
market (`FeeRates.on`) instead of the fixed `sell_tax_bp`: the live portfolio's estimate
(`[portfolio] sell_tax_table`), the simulator (`[sim] sell_tax_table`) and the backtest (the
portfolio's) read the one table, by default (a config that sets `sell_tax_bp` gets its flat
rate; engine/config.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from fractions import Fraction

BP_PER_UNIT = 10_000


class Market(StrEnum):
    """Where a symbol is listed, as far as the sell tax cares."""

    KOSPI = "KOSPI"
    KOSDAQ = "KOSDAQ"
    KONEX = "KONEX"
    ETF = "ETF"
    """Exchange-traded funds (and ETNs): no securities transaction tax on a sale."""


SELL_TAX_TABLE: tuple[tuple[date, Mapping[Market, float]], ...] = (
    # Before 2019-06-03: 0.30 % on every stock market (KOSPI 0.15 % + 0.15 % rural tax).
    (date.min, {Market.KOSPI: 30, Market.KOSDAQ: 30, Market.KONEX: 30, Market.ETF: 0}),
    # 2019-06-03: KOSPI 0.10 % + 0.15 % rural, KOSDAQ 0.25 %, KONEX 0.10 %.
    (date(2019, 6, 3), {Market.KOSPI: 25, Market.KOSDAQ: 25, Market.KONEX: 10, Market.ETF: 0}),
    # 2021: KOSPI 0.08 % + 0.15 % rural, KOSDAQ 0.23 %.
    (date(2021, 1, 1), {Market.KOSPI: 23, Market.KOSDAQ: 23, Market.KONEX: 10, Market.ETF: 0}),
    # 2023: KOSPI 0.05 % + 0.15 % rural, KOSDAQ 0.20 %.
    (date(2023, 1, 1), {Market.KOSPI: 20, Market.KOSDAQ: 20, Market.KONEX: 10, Market.ETF: 0}),
    # 2024: KOSPI 0.03 % + 0.15 % rural, KOSDAQ 0.18 %.
    (date(2024, 1, 1), {Market.KOSPI: 18, Market.KOSDAQ: 18, Market.KONEX: 10, Market.ETF: 0}),
    # 2025: KOSPI 0 % + 0.15 % rural, KOSDAQ 0.15 %.
    (date(2025, 1, 1), {Market.KOSPI: 15, Market.KOSDAQ: 15, Market.KONEX: 10, Market.ETF: 0}),
    # 2026 (the 2025 tax revision, back to the 2023 level): KOSPI 0.05 % + 0.15 % rural,
    # KOSDAQ 0.20 %, KONEX unchanged at 0.10 %.
    (date(2026, 1, 1), {Market.KOSPI: 20, Market.KOSDAQ: 20, Market.KONEX: 10, Market.ETF: 0}),
)
"""(first day, market -> basis points), oldest first: a row holds from its day to the next's."""


def sell_tax_bp(day: date, market: Market) -> float:
    """The sell tax, in basis points of the value sold, on `day` in `market` (rural tax
    included): the last `SELL_TAX_TABLE` row that took effect by `day`."""
    rates = SELL_TAX_TABLE[0][1]
    for start, row in SELL_TAX_TABLE:
        if start > day:
            break
        rates = row
    return rates[market]


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
    sell_tax_table: bool = False
    """Charge `SELL_TAX_TABLE`'s rate of the fill's day and market (see `on`), not
    `sell_tax_bp`."""
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

    def on(self, day: date | None, market: Market) -> FeeRates:
        """The rates a fill on `day` in `market` pays: these, or with `sell_tax_table` the
        commission with the table's sell tax (no day: these, whose `sell_tax_bp` stands)."""
        if not self.sell_tax_table or day is None:
            return self
        return _with_tax(self, sell_tax_bp(day, market))


@functools.lru_cache(maxsize=64)
def _with_tax(rates: FeeRates, tax_bp: float) -> FeeRates:
    return replace(rates, sell_tax_bp=tax_bp, sell_tax_table=False)
