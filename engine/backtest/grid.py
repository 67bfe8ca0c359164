"""`backtest --grid name=v1,v2 ...`: every combination of strategy parameters, one process per
CPU, a results table ranked by one metric (`--rank`), and with `--split DATE` the in-sample
(before DATE) and out-of-sample (from DATE) figures side by side: a grid picks the best past,
not the best future.

A parameter is set in the `params` of every `[[strategies]]` table. Values are TOML scalars
(`10`, `1.5`, `"fast"`, `true`).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import os
import tomllib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from engine.config import Config

COLUMNS = ("total_return", "sharpe", "max_drawdown_pct", "trades", "win_rate")
"""Figures shown for each combination (and each side of a split)."""
RANKS = ("total_return", "cagr", "sharpe", "sortino", "calmar", "profit_factor", "win_rate")


class GridError(ValueError):
    """A --grid or --rank argument that cannot be used (the message names it)."""


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """["window=10,20", "qty=1"] -> {"window": [10, 20], "qty": [1]}."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.isidentifier() or not values:
            raise GridError(f"--grid: expected name=v1,v2,..., got {spec!r}")
        if name in grid:
            raise GridError(f"--grid: {name} given twice")
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(tomllib.loads(f"v = {v.strip()}")["v"])
            except tomllib.TOMLDecodeError:
                raise GridError(f"--grid: {name}: {v!r} is not a TOML value") from None
        grid[name] = parsed
    return grid


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, vs, strict=True)) for vs in itertools.product(*grid.values())]


def with_params(cfg: Config, params: dict[str, Any]) -> Config:
    return dataclasses.replace(
        cfg,
        strategies=tuple(
            dataclasses.replace(sc, params={**sc.params, **params}) for sc in cfg.strategies
        ),
    )


def _one(job: tuple[Config, Path, date, date]) -> dict[str, Any]:
    """One run in a worker process: its report's total figures."""
    from engine import logs
    from engine.backtest import report
    from engine.backtest.run import run_backtest
    from engine.plugins import load_all

    cfg, data, start, end = job
    logs.setup("warning", cfg.log.format)
    strategies, problems = load_all(cfg)
    if problems:
        raise GridError("; ".join(problems))
    total: dict[str, Any] = report.build(run_backtest(cfg, strategies, data, start, end))["total"]
    return total


def run_grid(
    cfg: Config,
    data: Path,
    start: date,
    end: date,
    grid: dict[str, list[Any]],
    out: Path,
    *,
    rank: str,
    split: date | None,
    stdout: TextIO,
) -> int:
    if rank not in RANKS:
        raise GridError(f"--rank must be one of {', '.join(RANKS)}, got {rank!r}")
    if split is not None and not start < split <= end:
        raise GridError(f"--split {split} must lie after --from {start} and by --to {end}")
    combos = combinations(grid)
    spans = [(start, end)] if split is None else [(start, split - timedelta(days=1)), (split, end)]
    jobs = [(with_params(cfg, c), data, a, b) for c in combos for a, b in spans]
    workers = min(len(jobs), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_one, jobs))
    rows = []
    for i, combo in enumerate(combos):
        figs = results[i * len(spans) : (i + 1) * len(spans)]
        rows.append((combo, figs))

    def key(row: tuple[dict[str, Any], list[dict[str, Any]]]) -> float:
        v = row[1][0].get(rank)  # in-sample decides the rank
        return float("-inf") if v is None else float(v)

    rows.sort(key=key, reverse=True)  # stable: ties keep the grid's order
    sides = ["in", "out"] if split is not None else [""]
    header = [*grid, *(f"{s}_{c}" if s else c for s in sides for c in COLUMNS)]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "grid.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for combo, figs in rows:
            w.writerow([*combo.values(), *(fig.get(c) for fig in figs for c in COLUMNS)])
    width = [max(len(h), 9) for h in header]
    print("  ".join(f"{h:>{n}}" for h, n in zip(header, width, strict=True)), file=stdout)
    for combo, figs in rows:
        cells = [*combo.values(), *(fig.get(c) for fig in figs for c in COLUMNS)]
        print(
            "  ".join(
                f"{'-' if v is None else (f'{v:.4f}' if isinstance(v, float) else v)!s:>{n}}"
                for v, n in zip(cells, width, strict=True)
            ),
            file=stdout,
        )
    print(f"{len(combos)} combinations ranked by {rank}; grid.csv in {out}", file=stdout)
    varying = [n for n, vs in grid.items() if len(vs) > 1]
    if len(varying) == 2:
        from engine.backtest import plot

        if plot.available():
            plot.heatmap(
                varying, grid, [(c, f[0].get(rank)) for c, f in rows], rank, out / "grid.png"
            )
    return 0
