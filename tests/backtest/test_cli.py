"""`kiwoom-engine backtest` as a user runs it: a process, a config with no credentials, a store
written by engine/data's writer; the report's files; the same bytes from two processes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from tests.backtest.support import alternate_config, random_bars, write_bars

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
DAYS = [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]


def _setup(tmp: Path) -> Path:
    data = tmp / "data"
    write_bars(data, "005930", "1m", random_bars(7, DAYS))
    write_bars(data, "000660", "1m", random_bars(8, DAYS, start_price=120_000))
    cfg = tmp / "config.toml"
    cfg.write_text(
        alternate_config(
            ["005930", "000660"],
            qty=3,
            every=4,
            history=5,
            backtest='latency_ms = 50\nkinds = ["bars_1m"]\ncash = 10_000_000',
        ),
        encoding="utf-8",
    )
    return cfg


def _run(cfg: Path, data: Path, out: Path, seed: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")
    }  # no credentials at all
    env["PYTHONHASHSEED"] = seed
    return subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), "--log-level", "warning", "backtest",
         "--from", "2026-03-02", "--to", "2026-03-05", "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_backtest_writes_the_report_and_two_processes_write_the_same_bytes(
    tmp_path: Path,
) -> None:
    cfg = _setup(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    ra = _run(cfg, tmp_path / "data", a, "1")
    assert ra.returncode == 0, ra.stderr
    rb = _run(cfg, tmp_path / "data", b, "4242")
    assert rb.returncode == 0, rb.stderr
    names = sorted(p.name for p in a.iterdir())
    png = ["report.png"]  # matplotlib is a dependency: the report always has its plot
    assert names == sorted(["equity.csv", "orders.csv", "report.json", "trades.csv", *png])
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    rep = json.loads((a / "report.json").read_text())
    assert rep["days"] == 4
    assert rep["first_day"] == "2026-03-02"
    total = rep["total"]
    for key in ("total_return", "cagr", "annual_volatility", "sharpe", "sortino",
                "max_drawdown_won", "max_drawdown_pct", "max_drawdown_days", "calmar", "trades",
                "win_rate", "profit_factor", "avg_win", "avg_loss", "exposure", "turnover",
                "fees", "tax"):  # fmt: skip
        assert key in total, key
        assert key in rep["strategies"]["alt"], key
    assert total["fills"] > 10
    assert total["fees"] > 0
    assert total["tax"] > 0
    equity = list(csv.DictReader((a / "equity.csv").open()))
    assert [r["date"] for r in equity] == [d.isoformat() for d in DAYS]
    assert int(equity[-1]["equity"]) == total["end_equity"]
    orders = list(csv.DictReader((a / "orders.csv").open()))
    # Nothing is left open after the last day: KRX ends a day's orders at its close.
    assert {o["state"] for o in orders} <= {"filled", "canceled"}
    assert "total return" in ra.stdout


def test_backtest_refuses_bad_dates_and_a_missing_store(tmp_path: Path) -> None:
    cfg = _setup(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), "backtest", "--from", "2026-03-05",
         "--to", "2026-03-02", "--data", str(tmp_path / "data")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert "before --from" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), "backtest", "--from", "2026-03-02",
         "--to", "2026-03-05", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1
    assert "nowhere: no history store there" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), "backtest", "--from", "2026-04-01",
         "--to", "2026-04-03", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1
    assert "no data in" in r.stderr
    assert "kinds (bars_1m)" in r.stderr


def test_a_missing_month_or_a_torn_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    cfg = _setup(tmp_path)
    data = tmp_path / "data"
    part = data / "bars_1m" / "005930" / "month=2026-03" / "part.parquet"
    args = [sys.executable, "-m", "engine", "-c", str(cfg), "backtest", "--from", "2026-03-02",
            "--to", "2026-03-05", "--data", str(data), "--out", str(tmp_path / "o")]  # fmt: skip
    part.write_bytes(part.read_bytes()[:200])  # torn
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert f"{part}: torn or unreadable Parquet file" in r.stderr
    part.unlink()  # the manifest still lists it
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert f"{part}: missing" in r.stderr
    # (before it, the warm-up's warning that the same file stopped the history load)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"kiwoom-engine: backtest: history store: {part}: missing")


def test_ctrl_c_stops_a_running_backtest_at_once(tmp_path: Path) -> None:
    # A run busy trading never waits on the loop (it yields only to work that is ready):
    # Ctrl-C must still end it at once, as a one-shot command's interruption (130).
    import signal
    import time
    from datetime import timedelta

    days = [date(2026, 1, 5) + timedelta(days=i) for i in range(120)]
    data = tmp_path / "data"
    write_bars(data, "005930", "1m", random_bars(7, days, per_day=380))
    cfg = tmp_path / "config.toml"
    cfg.write_text(alternate_config(["005930"], qty=1, every=2), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "-c", str(cfg), "--log-level", "warning", "backtest",
         "--from", "2026-01-05", "--to", "2026-05-04", "--data", str(data),
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        time.sleep(4.0)  # imports, then the run (tens of seconds here)
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert took < 3.0, took
