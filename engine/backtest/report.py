"""A backtest's report files in `--out`: report.json (per strategy and total), trades.csv
(round trips: flat to flat per strategy and symbol), orders.csv, equity.csv.

Byte-stable: rows in a fixed order, floats rounded, JSON keys sorted, times as KST text from
the simulated clock, so the same run writes the same bytes (the determinism test compares
them across processes).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.backtest.clock import NS
from engine.backtest.run import Result
from engine.clock import KST
from engine.events import Fill, Side
from engine.reports import figures
from engine.reports import metrics as m

DIGITS = 6


def _t(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, KST).replace(microsecond=ns % NS // 1000).isoformat()


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, DIGITS)


@dataclass
class RoundTrip:
    strategy: str
    symbol: str
    entry: str
    exit: str
    qty: int
    bought: int
    sold: int
    fees: int
    tax: int

    @property
    def pnl(self) -> int:
        return self.sold - self.bought - self.fees - self.tax


def round_trips(fills: Sequence[Fill]) -> tuple[list[RoundTrip], list[RoundTrip]]:
    """(closed, still open) round trips: from a strategy's first share in a symbol until it
    holds none again."""
    open_: dict[tuple[str, str], tuple[int, RoundTrip]] = {}
    closed: list[RoundTrip] = []
    for f in fills:
        key = (f.strategy or "", f.symbol)
        held, rt = open_.get(key, (0, None))
        if rt is None:
            rt = RoundTrip(key[0], f.symbol, _t(f.ts_recv), "", 0, 0, 0, 0, 0)
        value = f.qty * f.price
        if f.side is Side.BUY:
            held += f.qty
            rt.bought += value
            rt.qty = max(rt.qty, held)
        else:
            held -= f.qty
            rt.sold += value
        rt.fees += f.fee
        rt.tax += f.tax
        if held <= 0:
            rt.exit = _t(f.ts_recv)
            closed.append(rt)
            open_.pop(key, None)
        else:
            open_[key] = (held, rt)
    return closed, [rt for _, rt in open_.values()]


def _figures(
    start: int, equity: list[int], exposure: list[float], fills: Sequence[Fill], trips: list[int]
) -> dict[str, Any]:
    end = equity[-1] if equity else start
    rets = m.daily_returns(start, equity)
    growth = m.cagr(start, end, len(equity))
    dd = m.max_drawdown(start, equity)
    tr = m.trade_stats(trips)
    traded = sum(f.qty * f.price for f in fills)
    avg_equity = sum(equity) / len(equity) if equity else start
    return {
        "start_equity": start,
        "end_equity": end,
        "total_return": _r(m.total_return(start, end)),
        "cagr": _r(growth),
        "annual_volatility": _r(m.annual_volatility(rets)),
        "sharpe": _r(m.sharpe(rets)),
        "sortino": _r(m.sortino(rets)),
        "max_drawdown_won": dd.won,
        "max_drawdown_pct": _r(dd.pct),
        "max_drawdown_days": dd.days,
        "calmar": _r(m.calmar(growth, dd)),
        "trades": tr.count,
        "win_rate": _r(tr.win_rate),
        "profit_factor": _r(tr.profit_factor),
        "avg_win": _r(tr.avg_win),
        "avg_loss": _r(tr.avg_loss),
        "exposure": _r(sum(exposure) / len(exposure) if exposure else 0.0),
        "turnover": _r(traded / avg_equity if avg_equity else 0.0),
        # As the daily report counts them (engine/reports/figures.py).
        **figures.fill_figures(fills),
    }


def build(result: Result) -> dict[str, Any]:
    """report.json's content."""
    start = result.start_cash
    days = result.days
    closed, _ = round_trips(result.fills)
    total = _figures(
        start,
        [d.equity for d in days],
        [d.positions_value / d.equity if d.equity else 0.0 for d in days],
        result.fills,
        [t.pnl for t in closed],
    )
    total["orders_by_state"] = figures.count_by(u.state.value for u in result.orders.values())
    per: dict[str, Any] = {}
    for name in sorted(result.strategies):
        # Each strategy is measured on the whole starting cash: its PnL over that capital.
        marks = [d.strategies.get(name, (0, 0)) for d in days]
        eq = [start + pnl for pnl, _ in marks]
        per[name] = _figures(
            start,
            eq,
            [val / e if e else 0.0 for (_, val), e in zip(marks, eq, strict=True)],
            [f for f in result.fills if f.strategy == name],
            [t.pnl for t in closed if t.strategy == name],
        )
        per[name]["orders_by_state"] = figures.count_by(
            u.state.value for u in result.orders.values() if u.strategy == name
        )
        per[name]["health"] = result.strategies[name]
    return {
        "days": len(days),
        "first_day": days[0].day.isoformat() if days else None,
        "last_day": days[-1].day.isoformat() if days else None,
        "events": result.events,
        "symbols": list(result.symbols),
        "total": total,
        "strategies": per,
    }


def write(result: Result, out: Path) -> dict[str, Any]:
    """Write the four files into `out` (made if missing); returns report.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    report = build(result)
    (out / "report.json").write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    closed, still_open = round_trips(result.fills)
    _csv(
        out / "trades.csv",
        ["strategy", "symbol", "entry", "exit", "qty", "bought", "sold", "fees", "tax", "pnl"],
        [
            [t.strategy, t.symbol, t.entry, t.exit, t.qty, t.bought, t.sold, t.fees, t.tax, t.pnl]
            for t in [*closed, *still_open]
        ],
    )
    _csv(
        out / "orders.csv",
        [
            "client_id",
            "strategy",
            "symbol",
            "side",
            "qty",
            "price",
            "state",
            "filled_qty",
            "avg_fill_price",
            "reason",
            "updated",
        ],
        [
            [
                u.client_id,
                u.strategy or "",
                u.symbol,
                u.side.value,
                u.qty,
                u.price or "",
                u.state.value,
                u.filled_qty,
                u.avg_fill_price or "",
                u.reason,
                _t(u.ts_recv),
            ]
            for u in result.orders.values()
        ],
    )
    names = sorted(result.strategies)
    _csv(
        out / "equity.csv",
        ["date", "equity", "cash", "positions_value", *(f"pnl_{n}" for n in names)],
        [
            [
                d.day.isoformat(),
                d.equity,
                d.cash,
                d.positions_value,
                *(d.strategies.get(n, (0, 0))[0] for n in names),
            ]
            for d in result.days
        ],
    )
    return report


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
