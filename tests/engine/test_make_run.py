"""`make run` as a user sees it: the shipped config and example strategy, against the built-in
simulator, show orders and fills in the log within 30 s, and SIGTERM stops it cleanly.

This one is about the log by definition: the log is what `make run` shows."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def shipped_config_in(tmp: Path) -> Path:
    """config.toml and strategies/ copied to `tmp`, with free simulator and admin ports and
    the journal under `tmp`; everything else as shipped."""
    shutil.copytree(ROOT / "strategies", tmp / "strategies")
    text = (ROOT / "config.toml").read_text()
    # Both ports free ones: tests run side by side (pytest-xdist), and the shipped admin port
    # is fixed, so two shipped configs at once would both bind it.
    replaced = (
        text.replace("\nport = 18765 ", "\nport = 0 ")
        .replace("\nport = 18780 ", "\nport = 0 ")
        .replace('\nstate_dir = "var" ', f'\nstate_dir = "{tmp / "var"}" ')
    )
    assert replaced.count("\n") == text.count("\n")
    assert replaced.count("\nport = 0 ") == 2
    assert str(tmp / "var") in replaced
    cfg = tmp / "config.toml"
    cfg.write_text(replaced)
    return cfg


async def run_daemon(cfg: Path) -> asyncio.subprocess.Process:
    """`kiwoom-engine -c cfg run` in cfg's directory, as `make run` starts it (no KIWOOM_*
    variables from this environment), its JSON log lines on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "-c", str(cfg), "run", cwd=cfg.parent, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_make_run_shows_the_example_strategys_orders_and_fills_within_30_s(
    tmp_path: Path,
) -> None:
    cfg = shipped_config_in(tmp_path)
    proc = await run_daemon(cfg)
    assert proc.stderr is not None
    seen: dict[str, dict[str, object]] = {}
    lines: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(30):
            while not {"order_update", "fill"} <= seen.keys():
                line = await proc.stderr.readline()
                assert line, f"the daemon ended early: exit {await proc.wait()}"
                entry = orjson.loads(line)  # JSON lines: stderr is not a terminal
                lines.append(entry)
                if entry.get("strategy") == "momentum" and entry["event"] in (
                    "order_update",
                    "fill",
                ):
                    seen.setdefault(str(entry["event"]), entry)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 20)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0, rest.decode()[-2_000:]
    fill = seen["fill"]
    assert fill["symbol"] in ("005930", "000660")
    assert isinstance(fill["qty"], int)
    assert fill["qty"] > 0
    assert isinstance(fill["price"], int)
    assert fill["price"] > 0
    events = [orjson.loads(line)["event"] for line in rest.splitlines()]
    assert events[-1] == "daemon_stopped"
    # At info, one line per order outcome: sent, filled (each fill with the strategy's
    # realised PnL), cancelled, rejected; the steps between and the 00/04 notices are debug.
    lines += [orjson.loads(line) for line in rest.splitlines()]
    states = {e["state"] for e in lines if e["event"] == "order_update"}
    assert "submitting" in states
    assert states <= {"submitting", "filled", "canceled", "rejected"}, states
    assert not [e for e in lines if e["event"] == "account_event"]
    fills = [e for e in lines if e["event"] == "fill"]
    assert fills
    assert all(isinstance(e["strategy_realized_pnl"], int) for e in fills)
