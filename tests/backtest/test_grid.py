"""`backtest --grid`: every combination, ranked; each row's figures are those a single run
with the same params writes; `--split` puts in- and out-of-sample side by side."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backtest.grid import GridError, combinations, parse_grid
from tests.backtest.test_cli import ROOT, _setup


def test_grid_arguments_parse_as_toml_scalars() -> None:
    assert parse_grid(["qty=1,2", 'mode="a","b"', "k=1.5"]) == {
        "qty": [1, 2],
        "mode": ["a", "b"],
        "k": [1.5],
    }
    assert combinations({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    with pytest.raises(GridError, match="expected name=v1,v2"):
        parse_grid(["qty"])
    with pytest.raises(GridError, match="not a TOML value"):
        parse_grid(["qty=1,two"])


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), "--log-level", "warning", "backtest",
         "--from", "2026-03-02", "--to", "2026-03-05", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_a_grid_ranks_every_combination_as_single_runs_would_report_it(tmp_path: Path) -> None:
    cfg = _setup(tmp_path)
    data = str(tmp_path / "data")
    r = _cli(cfg, "--data", data, "--out", str(tmp_path / "g"), "--grid", "qty=1,2",
             "every=2,4", "--rank", "total_return")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "g" / "grid.csv").open()))
    assert sorted((row["qty"], row["every"]) for row in rows) == [
        ("1", "2"), ("1", "4"), ("2", "2"), ("2", "4"),
    ]  # fmt: skip
    returns = [float(row["total_return"]) for row in rows]
    assert returns == sorted(returns, reverse=True)
    cfg.write_text(cfg.read_text().replace("qty = 3, every = 4", "qty = 2, every = 2"))
    single = _cli(cfg, "--data", data, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    total = json.loads((tmp_path / "one" / "report.json").read_text())["total"]
    (row,) = [row for row in rows if (row["qty"], row["every"]) == ("2", "2")]
    assert float(row["total_return"]) == total["total_return"]
    assert int(row["trades"]) == total["trades"]


def test_split_shows_in_and_out_of_sample_side_by_side(tmp_path: Path) -> None:
    cfg = _setup(tmp_path)
    r = _cli(cfg, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "g"),
             "--grid", "qty=1", "--split", "2026-03-04")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (row,) = csv.DictReader((tmp_path / "g" / "grid.csv").open())
    assert {"in_total_return", "out_total_return", "in_trades", "out_trades"} <= set(row)
    bad = _cli(cfg, "--data", str(tmp_path / "data"), "--grid", "qty=1", "--split", "2026-03-09")
    assert bad.returncode == 2
    assert "--split 2026-03-09 must lie after" in bad.stderr
