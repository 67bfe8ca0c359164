"""The report's figures (engine/reports/metrics.py) on literal numbers, worked by hand."""

from __future__ import annotations

import math

import pytest

from engine.reports.metrics import (
    Drawdown,
    annual_volatility,
    cagr,
    calmar,
    daily_returns,
    max_drawdown,
    sharpe,
    sortino,
    total_return,
    trade_stats,
)


def test_returns_and_growth() -> None:
    assert daily_returns(100, [110, 99, 99]) == pytest.approx([0.1, -0.1, 0.0])
    assert total_return(1_000, 1_250) == pytest.approx(0.25)
    assert cagr(100, 121, 504) == pytest.approx(0.1)  # two years of 252 days: 1.1 ** 2
    assert cagr(100, 0, 10) is None
    assert cagr(100, 110, 0) is None


def test_volatility_sharpe_and_sortino() -> None:
    r = [0.01, -0.01, 0.02, 0.0]
    # mean 0.005; sample variance (0.005² + 0.015² + 0.015² + 0.005²) / 3 = 0.0005 / 3
    sd = math.sqrt(0.0005 / 3)
    assert annual_volatility(r) == pytest.approx(sd * math.sqrt(252))
    assert sharpe(r) == pytest.approx(0.005 / sd * math.sqrt(252))
    # downside deviation sqrt(0.01² / 4) = 0.005
    assert sortino(r) == pytest.approx(0.005 / 0.005 * math.sqrt(252))
    assert sharpe([0.01, 0.01]) is None
    assert sortino([0.01, 0.02]) is None


def test_max_drawdown_its_depth_and_how_long_it_lasted() -> None:
    # Peak 120 on day 1, trough 90 on day 3 (-30, 25 %), back at 120 on day 5: 4 days.
    dd = max_drawdown(100, [120, 100, 90, 110, 125, 120])
    assert dd == Drawdown(30, 0.25, 4)
    # Never recovered: the duration runs to the last day.
    assert max_drawdown(100, [90, 80, 85]) == Drawdown(20, 0.2, 3)
    assert max_drawdown(100, [100, 101]) == Drawdown(0, 0.0, 0)
    assert calmar(0.5, Drawdown(30, 0.25, 4)) == pytest.approx(2.0)
    assert calmar(0.5, Drawdown(0, 0.0, 0)) is None


def test_trade_figures() -> None:
    t = trade_stats([300, -100, 200, -50])
    assert (t.count, t.win_rate, t.profit_factor) == (4, 0.5, pytest.approx(500 / 150))
    assert (t.avg_win, t.avg_loss) == (250, -75)
    assert trade_stats([]).win_rate is None
    assert trade_stats([10]).profit_factor is None
