"""report.png: the account's equity against buy-and-hold of the same symbols, its drawdown,
and each symbol's price with the fills marked.

Drawn with the daily report's pieces (engine/reports/plot.py: matplotlib imported only when
drawing; labels never drawn as boxes: symbols by their code). The file is byte-stable for the
same result (no timestamp in the PNG's metadata).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from engine.backtest.clock import NS
from engine.backtest.run import DAY_END, Result
from engine.clock import KST
from engine.events import Side
from engine.reports import plot as shared


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw(result: Result, path: Path) -> None:
    plt = shared.pyplot()

    days = [datetime.combine(d.day, DAY_END) for d in result.days]  # marked at the close
    equity = [d.equity for d in result.days]
    start = result.start_cash
    symbols = [s for s in result.symbols if s in result.first_prices]
    hold = []
    for d in result.days:
        ratios = [d.prices.get(s, result.first_prices[s]) / result.first_prices[s] for s in symbols]
        hold.append(start * sum(ratios) / len(ratios) if ratios else start)

    n = 2 + len(symbols)
    fig, axes = plt.subplots(n, 1, figsize=(10, 3 * n), sharex=False)
    ax: Any = axes[0]
    ax.plot(days, equity, label="strategies", color="tab:blue")
    ax.plot(days, hold, label="buy and hold " + " ".join(symbols), color="tab:gray")
    ax.set_title("equity (KRW)")
    ax.legend(loc="best")
    shared.drawdown_panel(axes[1], days, start, equity)
    for i, sym in enumerate(symbols):
        ax = axes[2 + i]
        ax.plot(days, [d.prices.get(sym, 0) for d in result.days], color="black", label="close")
        for side, marker, color in ((Side.BUY, "^", "tab:green"), (Side.SELL, "v", "tab:red")):
            fills = [f for f in result.fills if f.symbol == sym and f.side is side]
            ax.scatter(
                [datetime.fromtimestamp(f.ts_recv // NS, KST).replace(tzinfo=None) for f in fills],
                [f.price for f in fills],
                marker=marker,
                color=color,
                label=side.value,
                s=18,
            )
        ax.set_title(f"{sym} price and fills")
        ax.legend(loc="best")
    shared.save(fig, path)


def heatmap(
    names: list[str],
    grid: dict[str, list[Any]],
    cells: list[tuple[dict[str, Any], Any]],
    metric: str,
    path: Path,
) -> None:
    """grid.png: `metric` over the two varying parameters `names` (the first combination
    found for a pair, when others are fixed)."""
    plt = shared.pyplot()

    xs, ys = grid[names[0]], grid[names[1]]
    z = [[float("nan")] * len(xs) for _ in ys]
    for combo, value in cells:
        i, j = ys.index(combo[names[1]]), xs.index(combo[names[0]])
        if value is not None and z[i][j] != z[i][j]:
            z[i][j] = float(value)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    im = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(metric)
    fig.colorbar(im, ax=ax)
    shared.save(fig, path)
