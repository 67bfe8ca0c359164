"""The daily report of a live or simulated day: per strategy and in total, realised and
unrealised PnL, fees and tax, fills, orders by final state, rejections by reason, the
largest intraday drawdown, and the equity through the day (equity.png).

Built from the journal (engine/reports/source.py) with the backtest report's figures
(engine/reports/figures.py, metrics.py) and plot pieces (plot.py), so a live day and a
backtested day read alike. Realised PnL is the portfolio's own rule (average cost, fees and
tax taken off: engine/trading/portfolio.py `Position`) replayed over the journal's fills,
earlier days' included for the cost of what was sold; unrealised PnL and equity come from
the equity snapshots the daemon journals (`report.equity_interval_s`), the last one marking
the day's end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.clock import KST
from engine.reports import figures
from engine.reports.files import JSON_NAME, PNG_NAME, TEXT_NAME, ReportFiles
from engine.reports.source import EXTERNAL, DayFill, DayRecord
from engine.trading.portfolio import Position

NS = 1_000_000_000


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, KST).strftime("%H:%M:%S")


def _realized(
    earlier: Iterable[DayFill], today: Iterable[DayFill], group: Callable[[DayFill], str]
) -> dict[str, int]:
    """group -> the realised PnL of today's fills, each group's average cost per symbol
    carried over from the earlier fills (oldest first), by the portfolio's `Position.apply`."""
    books: dict[tuple[str, str], Position] = {}

    def book(f: DayFill) -> int:
        pos = books.setdefault((group(f), f.symbol), Position(f.symbol))
        return pos.apply(f.side, f.qty, f.price, f.fee + f.tax)

    for f in earlier:
        book(f)
    out: dict[str, int] = {}
    for f in today:
        g = group(f)
        out[g] = out.get(g, 0) + book(f)
    return out


def _rejections(rec: DayRecord, strategy: str | None) -> dict[str, int]:
    """Risk refusals by their code, and orders the broker refused by its reason."""
    refused = {r.client_id for r in rec.rejections}
    reasons = [r.reason for r in rec.rejections if strategy in (None, r.strategy)]
    reasons += [
        o.reason or "BROKER_REJECTED"
        for o in rec.orders
        if o.state == "rejected" and o.client_id not in refused and strategy in (None, o.strategy)
    ]
    return figures.count_by(reasons)


def build(rec: DayRecord) -> dict[str, Any]:
    """report.json's content."""
    snaps = rec.snapshots
    names = sorted(
        {f.strategy for f in rec.fills}
        | {o.strategy for o in rec.orders}
        | {r.strategy for r in rec.rejections}
        | {name for s in snaps for name in s.strategies}
    )
    # By strategy and symbol: each strategy's own average cost, as the portfolio keeps it.
    per_realized = _realized(rec.earlier_fills, rec.fills, lambda f: f.strategy)
    # The account's: one average cost per symbol over every strategy (the daily loss limit's).
    total_realized = sum(_realized(rec.earlier_fills, rec.fills, lambda f: "").values())
    start = snaps[0].equity if snaps else 0
    last = snaps[-1] if snaps else None

    def common(fills: list[DayFill], strategy: str | None) -> dict[str, Any]:
        orders = [o for o in rec.orders if strategy in (None, o.strategy)]
        return {
            **figures.fill_figures(fills),
            "orders": len(orders),
            "orders_by_state": figures.count_by(o.state for o in orders),
            "rejections_by_reason": _rejections(rec, strategy),
        }

    total: dict[str, Any] = {
        "realized_pnl": total_realized,
        "unrealized_pnl": last.unrealized if last else None,
        **common(rec.fills, None),
        "start_equity": start if snaps else None,
        "end_equity": last.equity if last else None,
        "cash": last.cash if last else None,
        **figures.drawdown_figures(start, [s.equity for s in snaps]),
    }
    per: dict[str, Any] = {}
    for name in names:
        marks = [s.strategies.get(name, {}) for s in snaps]
        pnl_line = [start + m.get("realized", 0) + m.get("unrealized", 0) for m in marks]
        per[name] = {
            "realized_pnl": per_realized.get(name, 0),
            "unrealized_pnl": marks[-1].get("unrealized", 0) if marks else None,
            **common([f for f in rec.fills if f.strategy == name], name),
            **figures.drawdown_figures(start, pnl_line),
        }
    return {
        "day": rec.day.isoformat(),
        "snapshots": len(snaps),
        "first_snapshot": _time(snaps[0].ts_ns) if snaps else None,
        "last_snapshot": _time(snaps[-1].ts_ns) if snaps else None,
        "total": total,
        "strategies": per,
    }


def _won(v: int | None) -> str:
    return "-" if v is None else f"{v:+,}"


def _line(name: str, fig: dict[str, Any]) -> list[str]:
    states = ", ".join(f"{k} {v}" for k, v in fig["orders_by_state"].items()) or "none"
    rejected = ", ".join(f"{k} {v}" for k, v in fig["rejections_by_reason"].items()) or "none"
    return [
        f"{name}: realised {_won(fig['realized_pnl'])}, unrealised {_won(fig['unrealized_pnl'])},"
        f" fees {fig['fees']:,}, tax {fig['tax']:,}, fills {fig['fills']},"
        f" max drawdown {fig['max_drawdown_won']:,} ({fig['max_drawdown_pct']:.2%})",
        f"  orders {fig['orders']}: {states}",
        f"  rejections: {rejected}",
    ]


def text(report: dict[str, Any]) -> str:
    """report.txt: a few plain lines (what the alerts send with the picture)."""
    total = report["total"]
    head = f"kiwoom-engine daily report {report['day']}"
    if total["end_equity"] is not None:
        head += (
            f": equity {total['start_equity']:,} -> {total['end_equity']:,}"
            f" ({report['first_snapshot']}-{report['last_snapshot']} KST,"
            f" {report['snapshots']} snapshots)"
        )
    lines = [head, *_line("total", total)]
    for name, fig in report["strategies"].items():
        lines += _line(name, fig)
    return "\n".join(lines) + "\n"


def draw(rec: DayRecord, report: dict[str, Any], path: Path) -> bool:
    """equity.png: the account's equity through the day, its drawdown, and each strategy's
    PnL (realised + unrealised). False (nothing drawn) without equity snapshots."""
    snaps = rec.snapshots
    if not snaps:
        return False
    from engine.reports import plot

    plt = plot.pyplot()
    x = [datetime.fromtimestamp(s.ts_ns / NS, KST).replace(tzinfo=None) for s in snaps]
    equity = [s.equity for s in snaps]
    # "strategy N" stands for the Nth strategy of report.txt, external orders counted.
    shown = plot.labels(list(report["strategies"]))
    names = [n for n in report["strategies"] if n != EXTERNAL]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    ax: Any = axes[0]
    ax.plot(x, equity, color="tab:blue", label="account")
    plot.won_axis(ax)
    ax.set_title(f"equity (KRW) {report['day']}")
    ax.legend(loc="best")
    plot.drawdown_panel(axes[1], x, equity[0], equity)
    ax = axes[2]
    for name in names:
        pnl = [
            s.strategies.get(name, {}).get("realized", 0)
            + s.strategies.get(name, {}).get("unrealized", 0)
            for s in snaps
        ]
        ax.plot(x, pnl, label=shown[name])
    ax.axhline(0, color="gray", linewidth=0.8)
    plot.won_axis(ax)
    plot.time_axis(ax)
    ax.set_title("PnL by strategy (KRW, realised + unrealised)")
    if names:
        ax.legend(loc="best")
    fig.autofmt_xdate()
    plot.save(fig, path)
    return True


def write(rec: DayRecord, out: Path) -> ReportFiles:
    """Write report.json, report.txt and (with snapshots) equity.png into `out` (made if
    missing). Each file is written beside and renamed into place: a reader (the alerts)
    never sees half a file."""
    out.mkdir(parents=True, exist_ok=True)
    report = build(rec)
    body = text(report)
    _replace(
        out / JSON_NAME,
        (json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(),
    )
    _replace(out / TEXT_NAME, body.encode())
    png: Path | None = out / PNG_NAME
    tmp = out / f".new.{PNG_NAME}"
    if draw(rec, report, tmp):
        tmp.replace(out / PNG_NAME)
    else:
        png = None
        (out / PNG_NAME).unlink(missing_ok=True)
    return ReportFiles(report["day"], out, out / JSON_NAME, out / TEXT_NAME, png, body)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".new.{path.name}")
    tmp.write_bytes(data)
    tmp.replace(path)
