"""Issue 14 item 1 as it was found: `halt`, then kill -9 (or SIGTERM) of the daemon, then a
restart on the same state directory. The halt holds after each, new orders are refused, and
the retained MQTT `risk_state` the restarted daemon publishes says halted with its reason."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine import config, daemon
from engine.events import OrderState, TradingState
from engine.trader import Trader
from tests.engine.test_crash_recovery import free_port, sim_process, tail
from tests.mirror.conftest import Broker, publish, subscribed
from tests.support import until

pytestmark = pytest.mark.timeout(120)

SYMBOL = "005930"
PREFIX = "test/acct"
QUIET = "from engine.strategy import Strategy\n\n\nclass Quiet(Strategy):\n    pass\n"


def daemon_toml(tmp: Path, sim_port: int, admin_port: int, broker: Broker) -> Path:
    cfg = tmp / "engine.toml"
    cfg.write_text(
        f"""
[kiwoom]
mode = "sim"
rest_url = "http://127.0.0.1:{sim_port}"
ws_url = "ws://127.0.0.1:{sim_port}/api/dostk/websocket"
revoke_on_exit = false

[log]
format = "json"

[daemon]
symbols = ["{SYMBOL}"]
state_dir = "{tmp / "state"}"

[admin]
port = {admin_port}

[mqtt]
host = "{broker.host}"
port = {broker.port}
prefix = "{PREFIX}"
client_id = "halt-test"

[[strategies]]
name = "quiet"
path = "{tmp / "quiet.py"}"
class = "Quiet"
symbols = ["{SYMBOL}"]
"""
    )
    return cfg


async def admin(port: int, method: str, path: str, body: bytes | None = None) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"http://127.0.0.1:{port}{path}", data=body) as r,
    ):
        answer = orjson.loads(await r.read())
        assert isinstance(answer, dict)
        return answer


async def run_daemon(cfg: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    with log.open("a") as err:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "engine", "-c", str(cfg), "run"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


async def answering(port: int, proc: asyncio.subprocess.Process, log: Path) -> dict[str, object]:
    async with asyncio.timeout(20):
        while True:
            assert proc.returncode is None, tail(log)
            try:
                status = await admin(port, "GET", "/status")
                if status.get("running"):
                    return status
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def test_a_halt_holds_through_kill_9_and_sigterm_until_resume(
    broker: Broker, tmp_path: Path
) -> None:
    (tmp_path / "quiet.py").write_text(QUIET)
    log = tmp_path / "daemon.log"
    admin_port = free_port()
    with sim_process(tmp_path) as sim_port:
        cfg = daemon_toml(tmp_path, sim_port, admin_port, broker)

        # 1. Halted by the operator, then killed with SIGKILL.
        proc = await run_daemon(cfg, log)
        await answering(admin_port, proc, log)
        halted = await admin(admin_port, "POST", "/halt", b'{"reason": "lunch"}')
        assert halted["trading_state"] == "halted"
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL

        # 2. Restarted: still halted; then stopped with SIGTERM.
        proc = await run_daemon(cfg, log)
        status = await answering(admin_port, proc, log)
        assert status["trading_state"] == "halted", tail(log)
        assert status["trading_state_reasons"] == {"OPERATOR": "OPERATOR_HALT: lunch"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0, tail(log)

        # 3. Restarted again, in this process: halted, orders refused, risk_state retained
        # as halted by this run (the earlier runs' retained message is cleared first).
        await publish(broker, f"{PREFIX}/risk_state", b"", retain=True)
        stop = asyncio.Event()
        ready: list[Trader] = []
        task = asyncio.create_task(
            daemon.run(config.load(str(cfg), env={}), stop=stop, on_ready=ready.append)
        )
        try:
            await until(lambda: bool(ready), 20)
            trader = ready[0]
            assert trader.risk.state is TradingState.HALTED
            await until(lambda: SYMBOL in trader.portfolio.last, 10)
            order = trader.host.by_name["quiet"].instance.buy(SYMBOL, 1, None)
            assert (order.state, order.reason) == (OrderState.REJECTED, "HALTED")
            async with subscribed(broker, f"{PREFIX}/risk_state") as sub:
                await until(lambda: bool(sub.on(f"{PREFIX}/risk_state")), 10)
                # The first message a new subscriber gets is the retained one; live updates
                # (the refused order moved the counters) may follow it.
                retained = sub.heard[0]
                assert retained.retain
                assert retained.body["state"] == "halted"
                assert retained.body["reasons"] == {"OPERATOR": "OPERATOR_HALT: lunch"}
                # The resume is journaled and published like the halt.
                trader.resume("OPERATOR_RESUME")
                await until(lambda: sub.heard[-1].body["state"] == "active", 10)
                assert sub.heard[-1].body["reasons"] == {}
        finally:
            stop.set()
        assert await asyncio.wait_for(task, 20) == daemon.EXIT_OK
