"""A strategy that answers every refused order with a new one: the daemon disables it, its
memory stays flat, and SIGTERM still stops it. `kiwoom-engine run` in its own process against
the built-in simulator, as systemd runs it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.service import (
    Daemon,
    daemon,
    free_port,
    strategy_file,
    until_running,
    write_config,
)
from tests.support import until

pytestmark = pytest.mark.timeout(120)

# max_order_qty is 5 below: every order of 10 shares is refused (MAX_ORDER_QTY), at once.
REPLACES = """
class Replaces(Strategy):
    def on_start(self):
        self.buy(self.symbols[0], 10, None)

    def on_order(self, order):
        if order.state is OrderState.REJECTED:
            self.buy(order.symbol, 10, None)
"""

# Under a halt every order is refused for the trading state's reason, which never counts; a
# strategy that answers each such refusal with a new order is paced, not disabled.
REPLACES_WHEN_HALTED = """
class ReplacesWhenHalted(Strategy):
    def on_start(self):
        self.set_timer("go", 0.05)

    def on_timer(self, name):
        if self.trading_state.state is TradingState.HALTED:
            self.cancel_timer("go")
            self.buy(self.symbols[0], 1, None)

    def on_order(self, order):
        if order.state is OrderState.REJECTED:
            self.buy(order.symbol, 1, None)
"""


def _table(name: str, path: Path, cls: str) -> str:
    return (
        f'[[strategies]]\nname = "{name}"\npath = "{path}"\nclass = "{cls}"\nsymbols = ["005930"]\n'
    )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _rejections(d: Daemon) -> int:
    return len(d.events("risk_rejected"))


async def test_a_strategy_replacing_every_refused_order_is_disabled_and_sigterm_is_honoured(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        admin_port=port,
        stop_timeout_s=3.0,
        risk="max_order_qty = 5",
        strategies=_table("flood", strategy_file(tmp_path, "flood", REPLACES), "Replaces"),
    )
    async with daemon(cfg, port) as d:
        await until_running(d)
        await until(lambda: bool(d.events("strategy_disabled")), 15)
        (disabled,) = d.events("strategy_disabled")
        assert disabled["strategy"] == "flood"
        assert disabled["reason"] == "too_many_rejections"
        # The default bound is 100 refusals a minute: the 101st disables it, and then no more.
        assert disabled["rejections"] == 101
        rss_then = rss_kb(d.proc.pid)
        await asyncio.sleep(2)
        assert rss_kb(d.proc.pid) - rss_then < 20_000  # KB: it stopped growing
        status, body = await d.get("/status")
        assert status == 200
        (flood,) = body["strategies"]
        assert flood["state"] == "disabled: too_many_rejections"
        d.signal(signal.SIGTERM)
        assert await d.wait(3.0 + 5) == 0, d.log[-10:]


async def test_refusals_of_a_halt_never_disable_a_strategy(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        admin_port=port,
        stop_timeout_s=3.0,
        strategies=_table(
            "timer",
            strategy_file(tmp_path, "timer", REPLACES_WHEN_HALTED),
            "ReplacesWhenHalted",
        ),
    )
    async with daemon(cfg, port) as d:
        await until_running(d)
        async with asyncio.timeout(10):
            import aiohttp

            async with (
                aiohttp.ClientSession() as s,
                s.post(f"http://127.0.0.1:{port}/halt", json={"reason": "test"}) as r,
            ):
                assert r.status == 200
        halted = len(d.log)
        # 150 refusals for HALTED, more than the bound of 100: still running.
        await until(
            lambda: (
                sum(
                    1
                    for e in d.log[halted:]
                    if e.get("event") == "risk_rejected" and e.get("reason") == "HALTED"
                )
                > 150
            ),
            30,
        )
        status, body = await d.get("/status")
        assert status == 200
        (timer,) = body["strategies"]
        assert timer["state"] == "running"
        assert not d.events("strategy_disabled")
        d.signal(signal.SIGTERM)
        assert await d.wait(3.0 + 5) == 0, d.log[-10:]


FRAGILE = """
class Fragile(Strategy):
    def __init__(self, slot):
        super().__init__(slot)
        raise RuntimeError("no model file")
"""

IDLE = """
class Idle(Strategy):
    pass
"""


async def test_a_strategy_whose_constructor_raises_is_named_and_the_daemon_is_degraded(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        admin_port=port,
        strategies=_table("fragile", strategy_file(tmp_path, "fragile", FRAGILE), "Fragile")
        + _table("idle", strategy_file(tmp_path, "idle", IDLE), "Idle"),
    )
    async with daemon(cfg, port) as d:
        await until_running(d)
        await until(lambda: bool(d.events("strategies_started")), 10)
        status, health = await d.get("/healthz")
        # One broken optional strategy does not make the daemon unhealthy: 200, degraded.
        assert status == 200, health
        assert health["healthy"] is True
        assert health["degraded"] is True
        assert health["strategies_not_started"] == [{"name": "fragile", "reason": "init_failed"}]
        status, body = await d.get("/status")
        states = {s["name"]: s["state"] for s in body["strategies"]}
        assert states == {"fragile": "disabled: init_failed", "idle": "running"}
        res = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "engine", "-c", str(cfg), "status"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        first = res.stdout.splitlines()[0]
        assert first.endswith("healthy, degraded: could not start fragile"), first
        assert "  fragile: disabled: init_failed;" in res.stdout
        (failed,) = d.events("strategy_init_failed")
        assert failed["strategy"] == "fragile"
        assert "no model file" in failed["error"]
        d.signal(signal.SIGTERM)
        assert await d.wait(10) == 0
