"""`backtest --recording FILE`: a recording made against the simulator (the same recorder the
daemon's `daemon.record` uses), with malformed lines appended, run through the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import KST
from tests.data.test_import import record

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).parent.parent.parent


async def test_a_recording_runs_through_the_engine_and_malformed_lines_are_counted(
    tmp_path: Path,
) -> None:
    rec = tmp_path / "feed.ndjson"
    await record(rec)
    with rec.open("ab") as f:
        f.write(b'not json\n{"frame": 12}\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[backtest]
latency_ms = 20

[[strategies]]
name = "momentum"
path = "{ROOT / "strategies" / "momentum.py"}"
class = "Momentum"
symbols = ["005930"]
params = {{ window = 3, every = 1, qty = 1, max_position = 3, cooldown_s = 0.0 }}
""",
        encoding="utf-8",
    )
    today = datetime.now(KST).date()
    out = tmp_path / "out"
    r = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine", "-c", str(cfg), "--log-level", "warning", "backtest",
         "--from", (today - timedelta(days=1)).isoformat(),
         "--to", (today + timedelta(days=1)).isoformat(),
         "--recording", str(rec), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=100,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "skipped 2 malformed lines" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["events"] >= 20  # the recorded trades (and quotes, books), not the 00/04
    assert rep["total"]["fills"] >= 1
    orders = (out / "orders.csv").read_text().splitlines()
    assert len(orders) >= 2
