"""`kiwoom-engine history` as a user runs it, against `kiwoom-engine sim` over real sockets:
a 429 and kill -9 at several points mid-pull, then a second run: no duplicate, no gap, and
only the gap fetched. The truth is the simulator's own chart as `call --all` prints it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
import pytest

from engine.clock import SYSTEM_CLOCK
from tests.integration.test_cli import free_port

pytestmark = pytest.mark.timeout(180)


def run(cfg: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    if crash:
        env["KIWOOM_ENGINE_CRASH_AT"] = crash
    return subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    import socket
    import time

    port = free_port()
    home = tmp_path_factory.mktemp("history")
    cfg = home / "sim.toml"
    cfg.write_text(f'[kiwoom]\nmode = "sim"\n[sim]\nport = {port}\ncontrol = true\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "-c", str(cfg), "sim"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("sim did not start") from None
                time.sleep(0.05)
        yield port, home
    finally:
        proc.terminate()
        proc.wait(10)


def config(sim: tuple[int, Path], name: str) -> Path:
    port, home = sim
    cfg = home / f"{name}.toml"
    data = home / f"{name}-data"
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\n[sim]\nport = {port}\n[data]\ndir = "{data}"\n'
        '[log]\nformat = "json"\n'
    )
    return cfg


def faults(port: int, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sim/faults",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


def truth(cfg: Path, start: date, end: date) -> list[str]:
    """The simulator's daily chart over [start, end], as `call --all` prints it."""
    res = run(
        cfg, "call", "ka10081", "stk_cd=005930", f"base_dt={end:%Y%m%d}", "upd_stkpc_tp=0", "--all"
    )
    assert res.returncode == 0, res.stderr
    rows = orjson.loads(res.stdout)["stk_dt_pole_chart_qry"]
    days = sorted(r["dt"] for r in rows if f"{start:%Y%m%d}" <= r["dt"] <= f"{end:%Y%m%d}")
    assert days  # the range holds trading days
    return days


def data_dir(cfg: Path) -> Path:
    return Path(cfg.read_text().split('dir = "')[1].split('"')[0])


def stored_days(cfg: Path) -> list[str]:
    """Every stored day as a hive reader sees the dataset (duplicates kept)."""
    t = ds.dataset(data_dir(cfg) / "bars_1d", partitioning="hive").to_table()
    return sorted(x.strftime("%Y%m%d") for x in t.column("time").to_pylist())


def manifest_gaps(cfg: Path) -> list[list[str]]:
    data = data_dir(cfg)
    path = data / "bars_1d" / "005930" / "_manifest.json"
    covered: list[list[str]] = json.loads(path.read_text())["covered"] if path.exists() else []
    return covered


# (crash point, the how-manieth time it is reached): after a page, with a temporary file
# written, between the rename and the manifest, and after two months made it whole
CRASHES = ["page:2", "before_rename:1", "after_rename:1", "after_rename:3"]


@pytest.mark.parametrize("crash", CRASHES)
def test_kill9_and_429_mid_pull_then_the_rest(sim: tuple[int, Path], crash: str) -> None:
    port = sim[0]
    cfg = config(sim, "k" + crash.replace(":", "-"))
    today = SYSTEM_CLOCK.now().date()
    end = today - timedelta(days=1)
    start = end - timedelta(days=200)
    args = ("history", "005930", "--interval", "1d", "--from", f"{start}", "--to", f"{end}")
    expected = truth(cfg, start, end)

    faults(port, {"rate_limit_once": ["ka10081"]})
    killed = run(cfg, *args, crash=crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert faults(port, {})["rate_limit_once"] == []  # the 429 was served

    covered_after_kill = manifest_gaps(cfg)
    again = run(cfg, *args)
    assert again.returncode == 0, again.stderr
    days = stored_days(cfg)
    assert len(days) == len(set(days))  # no duplicate
    assert days == expected  # no gap
    # the second run asked only for what the manifest did not hold
    fetched = again.stdout.split("fetched ")[1].split(":")[0]
    if covered_after_kill:
        ((first, last),) = covered_after_kill
        assert last == f"{end}"
        assert fetched == f"{start}..{date.fromisoformat(first) - timedelta(days=1)}"
    else:
        assert fetched == f"{start}..{end}"
    data = data_dir(cfg)
    assert not [p for p in data.rglob(".tmp-*")]  # nothing torn left behind


def test_a_second_run_fetches_only_the_gaps(sim: tuple[int, Path]) -> None:
    cfg = config(sim, "gaps")
    end = SYSTEM_CLOCK.now().date() - timedelta(days=1)
    mid_a, mid_b = end - timedelta(days=120), end - timedelta(days=60)
    first = run(
        cfg, "history", "005930", "--interval", "1d", "--from", f"{mid_a}", "--to", f"{mid_b}"
    )
    assert first.returncode == 0, first.stderr
    start = end - timedelta(days=200)
    second = run(
        cfg, "history", "005930", "--interval", "1d", "--from", f"{start}", "--to", f"{end}"
    )
    assert second.returncode == 0, second.stderr
    assert (
        f"fetched {start}..{mid_a - timedelta(days=1)}, {mid_b + timedelta(days=1)}..{end}:"
        in second.stdout
    )
    assert stored_days(cfg) == truth(cfg, start, end)
    third = run(
        cfg, "history", "005930", "--interval", "1d", "--from", f"{start}", "--to", f"{end}"
    )
    assert "already stored, nothing fetched" in third.stdout


def test_list_and_export_and_the_files_they_name(sim: tuple[int, Path], tmp_path: Path) -> None:
    cfg = config(sim, "export")
    end = SYSTEM_CLOCK.now().date() - timedelta(days=1)
    start = end - timedelta(days=100)
    rng = ("--from", f"{start}", "--to", f"{end}")
    assert run(cfg, "history", "005930", "--interval", "1d", *rng).returncode == 0
    listed = run(cfg, "history", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "bars_1d" in listed.stdout
    assert "005930" in listed.stdout
    out = tmp_path / "csv"
    exported = run(cfg, "history", "005930", "--interval", "1d", *rng, "--export", "csv", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = (out / "005930_1d.csv").read_text().splitlines()
    assert len(lines) - 1 == len(truth(cfg, start, end))
    adjusted = run(
        cfg,
        "history",
        "005930",
        "--interval",
        "1d",
        *rng,
        "--adjusted",
        "--export",
        "csv",
        str(tmp_path / "adj"),
    )
    assert adjusted.returncode == 0, adjusted.stderr

    data = data_dir(cfg)
    parts = sorted((data / "bars_1d" / "005930").glob("month=*/part.parquet"))
    torn = parts[-1]
    torn.write_bytes(torn.read_bytes()[:100])
    res = run(cfg, "history", "005930", "--interval", "1d", *rng, "--export", "csv", str(out))
    assert res.returncode == 1
    assert str(torn) in res.stderr
    assert "torn" in res.stderr

    gone = parts[0]
    gone.unlink()
    res = run(cfg, "history", "005930", "--interval", "1d", *rng, "--export", "csv", str(out))
    assert res.returncode == 1
    assert f"{gone}: missing" in res.stderr
