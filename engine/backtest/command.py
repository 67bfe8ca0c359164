"""`kiwoom-engine backtest`: load the strategies, run, write the report, print a summary.

Loaded by the CLI only when asked (never by the daemon)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TextIO

from engine.backtest import report
from engine.backtest.run import run_backtest
from engine.config import Config
from engine.data.store import StoreError
from engine.plugins import load_all

SUMMARY = (
    ("total_return", "total return", "{:.2%}"),
    ("cagr", "CAGR", "{:.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("max_drawdown_pct", "max drawdown", "{:.2%}"),
    ("trades", "trades", "{}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("fees", "fees", "{:,}"),
    ("tax", "tax", "{:,}"),
)


class BacktestProblem(Exception):
    """The run cannot start or the store cannot be read: a one-line message naming why."""


RECORDED_KINDS = ("books", "quotes", "trades", "vi")


def backtest_recording(
    cfg: Config, recording: Path, start: date, end: date, out: Path, *, stdout: TextIO = sys.stdout
) -> int:
    """`--recording FILE`: normalise the recording into a temporary store (the same import
    as `history --import`: malformed lines counted and skipped, the account's own 00/04
    notices kept apart, never fed), then run over its trades, quotes and books."""
    import dataclasses
    import tempfile

    from engine.data.recorded import ImportCounts, import_recording
    from engine.kiwoom.recording_import import recorded_events

    with tempfile.TemporaryDirectory(prefix="kiwoom-backtest-store-") as tmp:
        counts = ImportCounts()
        try:
            import_recording(Path(tmp), recorded_events(str(recording), counts), counts)
        except OSError as e:
            raise BacktestProblem(f"{recording}: cannot read the recording: {e}") from None
        if counts.malformed_lines or counts.bad_entries:
            print(
                f"{recording}: skipped {counts.malformed_lines} malformed lines and "
                f"{counts.bad_entries} undecodable entries",
                file=stdout,
            )
        cfg = dataclasses.replace(
            cfg, backtest=dataclasses.replace(cfg.backtest, kinds=RECORDED_KINDS)
        )
        return backtest(cfg, Path(tmp), start, end, out, stdout=stdout)


def backtest(
    cfg: Config, data: Path, start: date, end: date, out: Path, *, stdout: TextIO = sys.stdout
) -> int:
    strategies, problems = load_all(cfg)
    if problems:
        raise BacktestProblem("; ".join(problems))
    if not strategies:
        raise BacktestProblem("the config has no enabled [[strategies]] to backtest")
    if not data.is_dir():
        raise BacktestProblem(f"{data}: no history store there (kiwoom-engine history fills it)")
    tty = stdout.isatty()

    def progress(d: date) -> None:
        if tty:
            done = (d - start).days + 1
            whole = (end - start).days + 1
            bar = "#" * (30 * done // whole)
            print(f"\r{d}  [{bar:<30}] {done}/{whole} days", end="", file=stdout, flush=True)

    try:
        result = run_backtest(cfg, strategies, data, start, end, progress=progress)
    except StoreError as e:
        raise BacktestProblem(f"history store: {e}") from None
    if tty:
        print(file=stdout)
    if not result.events:
        kinds = ", ".join(cfg.backtest.kinds)
        raise BacktestProblem(
            f"no data in {data} for {', '.join(result.symbols)} from {start} to {end} in "
            f"[backtest] kinds ({kinds}); `kiwoom-engine history --list` shows what is stored"
        )
    rep = report.write(result, out)
    from engine.backtest import plot

    if plot.available():
        plot.draw(result, out / "report.png")
    else:
        print("report.png skipped: matplotlib is not installed (the `plot` group)", file=stdout)
    rows = [("total", rep["total"]), *rep["strategies"].items()]
    width = max(len(n) for n, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{label:>13}" for _, label, _ in SUMMARY), file=stdout)
    for name, fig in rows:
        cells = []
        for key, _, fmt in SUMMARY:
            v = fig.get(key)
            cells.append(f"{'-' if v is None else fmt.format(v):>13}")
        print(f"{name:<{width}}  " + "  ".join(cells), file=stdout)
    print(f"{rep['days']} days, {rep['events']} events; report in {out}", file=stdout)
    return 0
