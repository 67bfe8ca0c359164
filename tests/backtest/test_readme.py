"""The README's three commands, from nothing to a report: `history` from `kiwoom-engine sim`
over real sockets, `backtest` over what it stored, and the PNG to open."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from engine.clock import SYSTEM_CLOCK
from tests.backtest.support import alternate_config
from tests.data.test_history_sim import config, run, sim  # noqa: F401  (sim: the fixture)

pytestmark = pytest.mark.timeout(240)


def test_history_then_backtest_then_the_png(sim: tuple[int, Path]) -> None:  # noqa: F811
    cfg = config(sim, "readme")
    cfg.write_text(cfg.read_text() + alternate_config(["005930"], qty=1, every=15))
    end = SYSTEM_CLOCK.now().date() - timedelta(days=1)
    start = end - timedelta(days=9)
    dates = ("--from", f"{start}", "--to", f"{end}")
    pulled = run(cfg, "history", "005930", "--interval", "1m", *dates)
    assert pulled.returncode == 0, pulled.stderr
    out = cfg.parent / "readme-out"
    done = run(cfg, "--log-level", "warning", "backtest", *dates, "--out", str(out))
    assert done.returncode == 0, done.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["days"] >= 3  # the simulator serves 5 trading days of minute bars
    assert rep["total"]["fills"] >= 2
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
