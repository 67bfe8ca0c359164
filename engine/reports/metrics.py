"""Performance figures of a backtest, as pure functions of its daily equity and its fills
(the daily report takes its drawdown through figures.py).

Conventions: returns are daily (one per trading day of the run, the first against the
starting cash); a year is `TRADING_DAYS` of them; the risk-free rate is 0. A figure that
cannot be computed (a Sharpe ratio with no variance, a profit factor with no loss) is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TRADING_DAYS = 252


def daily_returns(start: int, equity: Sequence[int]) -> list[float]:
    out: list[float] = []
    prev = start
    for e in equity:
        out.append(e / prev - 1 if prev else 0.0)
        prev = e
    return out


def total_return(start: int, end: int) -> float:
    return end / start - 1


def cagr(start: int, end: int, days: int) -> float | None:
    """Compound annual growth over `days` trading days; None for no days or a wiped-out
    account."""
    if days <= 0 or end <= 0:
        return None
    return float((end / start) ** (TRADING_DAYS / days) - 1)


def _stdev(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def annual_volatility(returns: Sequence[float]) -> float:
    return _stdev(returns) * math.sqrt(TRADING_DAYS)


def sharpe(returns: Sequence[float]) -> float | None:
    sd = _stdev(returns)
    if not sd:
        return None
    return sum(returns) / len(returns) / sd * math.sqrt(TRADING_DAYS)


def sortino(returns: Sequence[float]) -> float | None:
    """Mean over downside deviation (root mean square of the negative returns, over all
    days), annualised."""
    if not returns:
        return None
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if not down:
        return None
    return sum(returns) / len(returns) / down * math.sqrt(TRADING_DAYS)


@dataclass(frozen=True, slots=True)
class Drawdown:
    won: int
    """The largest fall from a peak, in KRW (>= 0)."""
    pct: float
    """That fall as a fraction of its peak (>= 0)."""
    days: int
    """Trading days from that peak until equity was back at it (or until the end)."""


def max_drawdown(start: int, equity: Sequence[int]) -> Drawdown:
    peak, peak_i = start, -1
    best = Drawdown(0, 0.0, 0)
    best_peak_i = -1
    for i, e in enumerate(equity):
        if e >= peak:
            peak, peak_i = e, i
            continue
        pct = (peak - e) / peak
        if pct > best.pct:
            best = Drawdown(peak - e, pct, 0)
            best_peak_i = peak_i
    if best.won == 0:
        return best
    peak_value = start if best_peak_i < 0 else equity[best_peak_i]
    end = len(equity) - 1
    for i in range(best_peak_i + 1, len(equity)):
        if equity[i] >= peak_value:
            end = i
            break
    return Drawdown(best.won, best.pct, end - best_peak_i)


def calmar(cagr_: float | None, dd: Drawdown) -> float | None:
    if cagr_ is None or not dd.pct:
        return None
    return cagr_ / dd.pct


@dataclass(frozen=True, slots=True)
class Trades:
    count: int
    win_rate: float | None
    profit_factor: float | None
    avg_win: float | None
    avg_loss: float | None


def trade_stats(pnls: Sequence[int]) -> Trades:
    """Figures of closed round trips' PnL (after fees and tax)."""
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    n = len(pnls)
    return Trades(
        n,
        len(wins) / n if n else None,
        sum(wins) / -sum(losses) if losses else None,
        sum(wins) / len(wins) if wins else None,
        sum(losses) / len(losses) if losses else None,
    )
