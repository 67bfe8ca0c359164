"""The daemon under a service manager: READY/WATCHDOG/STOPPING on NOTIFY_SOCKET, SIGTERM within
its deadline whatever hangs, SIGHUP reloads, and the operator's status / halt / resume."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.sim.simulator import Simulator
from tests.integration.service import (
    NotifySocket,
    daemon,
    free_port,
    strategy_file,
    until_running,
    write_config,
)
from tests.support import until

pytestmark = pytest.mark.timeout(90)

STALLER = """
import pathlib, time

class Staller(Strategy):
    def on_trade(self, trade):
        flag = pathlib.Path(self.params["flag"])
        if flag.exists():
            pathlib.Path(self.params["marker"]).write_text("stalled")
            while flag.exists():  # blocks the event loop, as a buggy strategy would
                time.sleep(0.02)
"""

BUY_ONCE = """
class BuyOnce(Strategy):
    def on_start(self):
        self.sent = False

    def on_trade(self, trade):
        if not self.sent and trade.best_ask:
            self.sent = True
            self.buy(trade.symbol, 1, trade.best_ask)
"""

KEEPS_BUYING = """
class KeepsBuying(Strategy):
    def on_trade(self, trade):
        if trade.best_ask and not self.orders():
            self.buy(trade.symbol, self.params["qty"], trade.best_ask)
"""


def strategy_table(name: str, path: Path, cls: str, params: str = "") -> str:
    return (
        f'[[strategies]]\nname = "{name}"\npath = "{path}"\nclass = "{cls}"\n'
        f'symbols = ["005930"]\nparams = {{ {params} }}\n'
    )


@pytest.fixture
def notify() -> NotifySocket:
    n = NotifySocket()
    yield n  # type: ignore[misc]
    n.close()


async def test_systemd_hears_ready_after_start_up_then_watchdog_then_stopping(
    tmp_path: Path, notify: NotifySocket
) -> None:
    port = free_port()
    cfg = write_config(tmp_path, admin_port=port)
    async with daemon(cfg, port, notify, watchdog_usec=400_000) as d:
        ready = await notify.wait_for("READY=1")
        # READY=1 means logged in, subscribed, reconciled, strategies started: the daemon is
        # healthy the moment systemd hears it.
        code, health = await d.get("/healthz")
        assert code == 200, health
        assert health["feed_live"] is True
        assert health["engine_running"] is True
        starting = [m for m in notify.messages[:ready] if m.startswith("STATUS=starting")]
        assert "STATUS=starting: reconciling with the broker" in starting
        assert "STATUS=trading active; feed live" in notify.messages[ready]
        assert not any("WATCHDOG=1" in m for m in notify.messages[:ready])
        await notify.wait_for("WATCHDOG=1")
        d.signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1")
        assert await d.wait(15) == 0
    order = [m.split("\n")[0] for m in notify.messages]
    assert order.index("READY=1") < order.index("WATCHDOG=1") < order.index("STOPPING=1")


async def test_a_stalled_event_loop_stops_the_watchdog_pings(
    tmp_path: Path, notify: NotifySocket
) -> None:
    port = free_port()
    flag, marker = tmp_path / "stall", tmp_path / "stalled"
    path = strategy_file(tmp_path, "staller", STALLER)
    cfg = write_config(
        tmp_path,
        admin_port=port,
        strategies=strategy_table(
            "staller", path, "Staller", f'flag = "{flag}", marker = "{marker}"'
        ),
    )
    async with daemon(cfg, port, notify, watchdog_usec=200_000) as d:  # a ping every 0.1 s
        await notify.wait_for("READY=1")
        await notify.wait_for("WATCHDOG=1")
        flag.write_text("")
        await until(marker.exists, 10)
        notify.drain()  # what was sent before the stall began
        await asyncio.sleep(1.0)  # ten ping intervals
        assert "WATCHDOG=1" not in notify.drain()
        flag.unlink()
        await notify.wait_for("WATCHDOG=1", within_s=10)  # the loop runs again: so do pings
        d.signal(signal.SIGTERM)
        assert await d.wait(15) == 0


async def test_sigterm_with_an_order_post_hanging_exits_0_within_the_deadline(
    simulator: Simulator, tmp_path: Path
) -> None:
    # The order is taken and its answer held past the deadline (the request timeout is longer
    # still): shutdown gives up waiting for it, still flushes and revokes, and exits 0.
    simulator.state.faults.rest_delay_s["kt10000"] = 3.0
    port = free_port()
    path = strategy_file(tmp_path, "buy_once", BUY_ONCE)
    stop_timeout_s = 1.5
    cfg = write_config(
        tmp_path,
        admin_port=port,
        rest_url=simulator.rest_url,
        ws_url=simulator.ws_url,
        stop_timeout_s=stop_timeout_s,
        request_timeout_s=30.0,
        strategies=strategy_table("buy_once", path, "BuyOnce"),
    )
    async with daemon(cfg, port) as d:
        await until_running(d)
        await until(lambda: simulator.state.handled_counts["kt10000"] == 1, 15)
        d.signal(signal.SIGTERM)
        assert await d.wait(stop_timeout_s + 5) == 0, d.log[-10:]
    (done,) = d.events("shutdown_done")
    assert done["within_s"] <= stop_timeout_s
    assert d.events("order_calls_still_in_flight")  # it did not wait for the answer
    assert d.events("token_revoked")  # and the token was still revoked
    assert simulator.state.request_counts["au10002"] == 1


async def test_sigterm_with_the_broker_frozen_exits_0_within_the_deadline(
    tmp_path: Path,
) -> None:
    # `kiwoom-engine sim` in its own process, then SIGSTOPped: its sockets stay open and
    # nothing answers (the WS closing handshake, the revoke).
    sim_port = free_port()
    sim_cfg = tmp_path / "sim.toml"
    sim_cfg.write_text(f'[kiwoom]\nmode = "sim"\n[sim]\nport = {sim_port}\nevents_per_s = 100.0\n')
    sim = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "engine", "-c", str(sim_cfg), "sim"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port = free_port()
        stop_timeout_s = 1.5
        cfg = write_config(
            tmp_path,
            admin_port=port,
            rest_url=f"http://127.0.0.1:{sim_port}",
            ws_url=f"ws://127.0.0.1:{sim_port}/api/dostk/websocket",
            stop_timeout_s=stop_timeout_s,
            request_timeout_s=30.0,
        )
        await _until_listening(sim_port, sim)
        async with daemon(cfg, port) as d:
            await until_running(d)
            sim.send_signal(signal.SIGSTOP)
            d.signal(signal.SIGTERM)
            assert await d.wait(stop_timeout_s + 5) == 0, d.log[-10:]
        (done,) = d.events("shutdown_done")
        assert done["within_s"] <= stop_timeout_s
        assert d.events("token_revoke_abandoned")
    finally:
        sim.send_signal(signal.SIGCONT)
        sim.terminate()
        await asyncio.wait_for(sim.wait(), 15)


async def _until_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    async def listening() -> bool:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        w.close()
        return True

    for _ in range(300):
        if await listening():
            return
        assert proc.returncode is None, "the simulator did not start"
        await asyncio.sleep(0.05)
    raise AssertionError("the simulator did not start listening")


async def test_sighup_changes_a_risk_limit_live_and_a_bad_file_keeps_it(tmp_path: Path) -> None:
    port = free_port()
    path = strategy_file(tmp_path, "keeps_buying", KEEPS_BUYING)
    table = strategy_table("keeps_buying", path, "KeepsBuying", "qty = 5")

    def configure(max_order_qty: int) -> None:
        write_config(
            tmp_path,
            admin_port=port,
            risk=f"max_order_qty = {max_order_qty}\nduplicate_window_s = 0.0",
            strategies=table,
        )

    configure(10)
    rejected = 'kiwoom_engine_risk_rejections_total{reason="MAX_ORDER_QTY"}'
    async with daemon(tmp_path / "config.toml", port) as d:
        await until_running(d)
        await until(lambda: bool(d.events("fill")), 15)
        assert await d.metric(rejected) == 0
        configure(3)
        d.signal(signal.SIGHUP)
        await until(lambda: bool(d.events("config_reloaded")), 10)
        _, status = await d.get("/status")
        assert status["limits"]["max_order_qty"] == 3
        for _ in range(500):
            if await d.metric(rejected) > 0:
                break
            await asyncio.sleep(0.02)
        assert await d.metric(rejected) > 0  # the strategy's 5 shares are now too many
        # The same connections: no new session, no reconnect.
        assert await d.metric("kiwoom_engine_ws_reconnects_total") == 0
        assert status["connections"]["feed"]["sessions"] == 1

        configure(0)  # out of range: refused, the running limit stays
        d.signal(signal.SIGHUP)
        await until(lambda: bool(d.events("config_reload_failed")), 10)
        assert "risk.max_order_qty" in d.events("config_reload_failed")[0]["error"]
        _, status = await d.get("/status")
        assert status["limits"]["max_order_qty"] == 3
        d.signal(signal.SIGTERM)
        assert await d.wait(15) == 0


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")},
    )


async def test_status_halt_and_resume_against_a_running_daemon(tmp_path: Path) -> None:
    port = free_port()
    path = strategy_file(tmp_path, "buy_once", BUY_ONCE)
    cfg = write_config(
        tmp_path, admin_port=port, strategies=strategy_table("buy_once", path, "BuyOnce")
    )
    async with daemon(cfg, port) as d:
        await until_running(d)
        await until(lambda: bool(d.events("fill")), 15)
        res = await asyncio.to_thread(cli, cfg, "status")
        assert res.returncode == 0, res.stderr
        out = res.stdout
        assert "mode sim" in out
        assert "healthy" in out
        assert "trading: active" in out
        assert "feed: live" in out
        assert "buy_once: running" in out
        assert "005930: 1 shares" in out
        assert "open orders:\n  (none)" in out
        assert "pnl: realized today" in out
        assert "risk: active; orders sent 1" in out

        res = await asyncio.to_thread(cli, cfg, "halt", "--reason", "lunch")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "trading halted (OPERATOR_HALT: lunch)"
        _, status = await d.get("/status")
        assert status["trading_state"] == "halted"
        res = await asyncio.to_thread(cli, cfg, "status")
        assert "trading: halted (OPERATOR_HALT: lunch)" in res.stdout

        res = await asyncio.to_thread(cli, cfg, "resume")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "trading active (OPERATOR_RESUME)"
        _, status = await d.get("/status")
        assert status["trading_state"] == "active"
        d.signal(signal.SIGTERM)
        assert await d.wait(15) == 0


def test_status_with_no_daemon_is_one_line_and_exit_6(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, admin_port=free_port())
    for command in ("status", "halt", "resume"):
        res = cli(cfg, command)
        assert res.returncode == 6, res
        assert res.stdout == ""
        (line,) = res.stderr.splitlines()
        assert line.startswith("kiwoom-engine: no daemon answers at http://127.0.0.1:")
    no_admin = tmp_path / "no_admin.toml"
    no_admin.write_text('[kiwoom]\nmode = "live"\n')  # and no credentials: none are needed
    res = cli(no_admin, "status")
    assert res.returncode == 6
    assert "no [admin] endpoint enabled" in res.stderr
