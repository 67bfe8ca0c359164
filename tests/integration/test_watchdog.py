"""A strategy handler that never returns, against the real daemon process: the admin endpoint
still answers and names it, the watchdog breaks it or ends the process (holding the strategy
disabled until `kiwoom-engine enable`), and SIGTERM ends the daemon within its deadline."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.holds import Holds
from engine.sim.simulator import Simulator
from tests.integration.conftest import trading_session
from tests.integration.service import (
    Daemon,
    daemon,
    free_port,
    strategy_file,
    until_running,
    until_started,
    write_config,
)
from tests.support import until

pytestmark = pytest.mark.timeout(120)

EXIT_STALLED = 7  # the exit code the operator sees (README "Exit codes")
GRACE_S = 2.0  # README: "2 s more" after daemon.handler_stall_s

SPIN = """
import pathlib

class Spin(Strategy):
    def on_trade(self, trade):
        pathlib.Path(self.params["marker"]).write_text("in")
        while True:
            pass
"""

SWALLOW = """
import pathlib

class Swallow(Strategy):
    def on_trade(self, trade):
        pathlib.Path(self.params["marker"]).write_text("in")
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
"""

SLEEP = """
import pathlib, time

class Sleep(Strategy):
    def on_trade(self, trade):
        pathlib.Path(self.params["marker"]).write_text("in")
        time.sleep(60)
"""

C_WAIT = """
import hashlib, pathlib

class CWait(Strategy):
    def on_trade(self, trade):
        pathlib.Path(self.params["marker"]).write_text("in")
        # Minutes in C with the GIL released and no signal check: nothing raised reaches it.
        hashlib.pbkdf2_hmac("sha256", b"x", b"salt", 10**9)
"""

STOP_SLEEPS = """
import time

class StopSleeps(Strategy):
    def on_stop(self):
        time.sleep(30)
"""

STOP_SPINS = """
class StopSpins(Strategy):
    def on_stop(self):
        while True:
            pass
"""

BODIES = {
    "spin": (SPIN, "Spin"),
    "swallow": (SWALLOW, "Swallow"),
    "sleep": (SLEEP, "Sleep"),
    "c_wait": (C_WAIT, "CWait"),
}


def config(
    tmp: Path, name: str, body: str, cls: str, *, stall_s: float, stop_s: float = 3.0
) -> tuple[Path, int, Path]:
    port = free_port()
    marker = tmp / f"{name}.in"
    path = strategy_file(tmp, name, body)
    table = (
        f'[[strategies]]\nname = "{name}"\npath = "{path}"\nclass = "{cls}"\n'
        f'symbols = ["005930"]\nparams = {{ marker = "{marker}" }}\n'
    )
    cfg = write_config(
        tmp,
        admin_port=port,
        stop_timeout_s=stop_s,
        daemon=f"handler_stall_s = {stall_s}",
        strategies=table,
    )
    return cfg, port, marker


async def get(d: Daemon, path: str) -> tuple[int, Any]:
    # The endpoint must answer while the loop is stuck: a short timeout, not the client's.
    async with asyncio.timeout(3.0):
        return await d.get(path)


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


# `python -m engine ARGS` once a line comes on stdin, its imports done before: what the command
# does must happen within a window (a handler stall), its interpreter's start-up (seconds on a
# loaded machine) need not.
WARM_CLI = """
import sys
import engine.cli, engine.control
sys.stdin.readline()
raise SystemExit(engine.cli.main(sys.argv[1:]))
"""


@pytest.fixture
def warm_cli() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(cfg: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", WARM_CLI, "-c", str(cfg), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate()


def run_warm(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate("go\n", timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


async def test_a_spinning_handler_is_named_broken_and_disabled_and_the_daemon_goes_on(
    tmp_path: Path, warm_cli: Callable[..., subprocess.Popen[str]]
) -> None:
    cfg, port, marker = config(tmp_path, "spin", SPIN, "Spin", stall_s=8.0)
    async with daemon(cfg, port) as d:
        status_cli = warm_cli(cfg, "status")
        # Not until_running: the first trade may set the handler spinning before the daemon
        # logs daemon_running (a loaded machine), and the wait would outlast the stall.
        await until_started(d)
        await until(marker.exists, 10)
        # While it spins (loop_stall_s 1 s, handler_stall_s 8 s): 503, naming the culprit.
        for _ in range(40):
            code, health = await get(d, "/healthz")
            if health.get("stalled"):
                break
            await asyncio.sleep(0.05)
        assert code == 503, health
        assert health["loop_ok"] is False
        assert health["stalled"]["strategy"] == "spin"
        assert health["stalled"]["handler"] == "on_trade"
        shown = await asyncio.to_thread(run_warm, status_cli)
        assert shown.returncode == 0, shown.stderr
        assert "STALLED: strategy spin, handler on_trade" in shown.stdout
        code, status = await get(d, "/status")
        assert code == 200
        assert status["health"]["stalled"]["strategy"] == "spin"
        code, metrics = await get(d, "/metrics")
        assert code == 200
        assert 'kiwoom_engine_handler_running_seconds{strategy="spin",handler="on_trade"}' in (
            metrics
        )
        # The kill switch cannot reach a stuck loop: it says so, and the halt stays queued.
        async with asyncio.timeout(5.0):
            code, answer = await d.post("/halt", {"reason": "spinning"})
        assert code == 503, answer
        assert answer["queued"] is True
        assert "strategy spin, handler on_trade" in answer["error"]
        # Broken after handler_stall_s: the strategy is disabled, the daemon trades on.
        await until(
            lambda: any(e.get("reason") == "stalled" for e in d.events("strategy_disabled")), 10
        )
        (stalled,) = d.events("handler_stalled")
        assert (stalled["strategy"], stalled["handler"]) == ("spin", "on_trade")
        await until(lambda: bool(d.events("handler_stall_ended")), 5)
        for _ in range(40):
            code, health = await get(d, "/healthz")
            if code == 200:
                break
            await asyncio.sleep(0.05)
        assert code == 200, health
        _, status = await get(d, "/status")
        (spin,) = status["strategies"]
        assert spin["state"] == "disabled: stalled"
        # The queued halt applied once the loop ran again.
        assert status["trading_state"] == "halted"
        assert status["trading_state_reason"] == "OPERATOR_HALT: spinning"
        # Disabled in this run, not held: `enable` does not restart it live.
        shown = await asyncio.to_thread(cli, cfg, "enable", "spin")
        assert shown.returncode == 0, shown.stderr
        assert "spin: not held disabled; the running daemon did not start it" in shown.stdout
        assert "HTTP 409" in shown.stdout
        assert d.proc.returncode is None
        d.signal(signal.SIGTERM)
        assert await d.wait(3.0 + 1.0) == 0, d.log[-10:]
    assert not Holds(tmp_path / "state").load()  # broken, so not held across restarts


@pytest.mark.parametrize("name", ["swallow", "sleep"])
async def test_an_unbreakable_handler_ends_the_daemon_and_its_strategy_stays_disabled(
    tmp_path: Path, name: str
) -> None:
    body, cls = BODIES[name]
    stall_s = 1.0
    cfg, port, marker = config(tmp_path, name, body, cls, stall_s=stall_s)
    async with daemon(cfg, port) as d:
        await until_started(d)
        await until(marker.exists, 10)
        code = await d.wait(stall_s + GRACE_S + 1.0)
        assert code == EXIT_STALLED, d.log[-10:]
    (stalled,) = d.events("handler_stalled")
    assert (stalled["strategy"], stalled["handler"]) == (name, "on_trade")
    (exit_line,) = d.events("watchdog_exit")
    assert exit_line["strategy"] == name
    assert exit_line["why"] == "handler_unbreakable"
    assert exit_line["held_disabled"] is True
    assert "not done" in exit_line["token_revoke"]
    assert list(Holds(tmp_path / "state").load()) == [name]

    # systemd restarts it: the strategy stays disabled, the daemon is healthy.
    marker.unlink()
    async with daemon(cfg, port) as d:
        await until_running(d)
        (held,) = d.events("strategy_held_disabled")
        assert held["strategy"] == name
        code, health = await get(d, "/healthz")
        assert code == 200, health
        _, status = await get(d, "/status")
        (st,) = status["strategies"]
        assert st["state"].startswith("disabled: held")
        await asyncio.sleep(0.5)
        assert not marker.exists()  # never called
        # Until the operator enables it: the running daemon starts it at once (and here it
        # hangs the daemon again, and is held again).
        done = await asyncio.to_thread(cli, cfg, "enable", name)
        assert done.returncode == 0, done.stderr
        assert f"{name}: enabled; started in the running daemon" in done.stdout
        await until(marker.exists, 10)
        assert await d.wait(stall_s + GRACE_S + 2.0) == EXIT_STALLED, d.log[-10:]
    assert list(Holds(tmp_path / "state").load()) == [name]

    # With no daemon running, `enable` releases the hold for the next start.
    marker.unlink()
    done = cli(cfg, "enable", name)
    assert done.returncode == 0, done.stderr
    assert f"{name}: enabled; it runs from the daemon's next start" in done.stdout
    assert Holds(tmp_path / "state").load() == {}
    again = cli(cfg, "enable", name)
    assert again.returncode == 0, again.stderr
    assert "not held" in again.stdout
    unknown = cli(cfg, "enable", "nosuch")
    assert unknown.returncode == 2
    assert "nosuch" in unknown.stderr
    async with daemon(cfg, port) as d:
        await until_started(d)
        await until(marker.exists, 10)  # it runs again


@pytest.mark.parametrize(
    ("name", "code"), [("spin", 0), ("sleep", 0), ("swallow", 0), ("c_wait", EXIT_STALLED)]
)
async def test_sigterm_during_a_stall_ends_the_daemon_within_stop_timeout(
    tmp_path: Path, name: str, code: int
) -> None:
    body, cls = BODIES[name]
    stop_s = 3.0
    # handler_stall_s far away: only the stop breaks in.
    cfg, port, marker = config(tmp_path, name, body, cls, stall_s=60.0, stop_s=stop_s)
    async with daemon(cfg, port) as d:
        await until_started(d)  # the stall may come before daemon_running (see until_started)
        await until(marker.exists, 10)
        await asyncio.sleep(0.5)
        d.signal(signal.SIGTERM)
        assert await d.wait(stop_s + 1.0) == code, d.log[-10:]
    (stalled,) = d.events("handler_stalled")
    assert (stalled["strategy"], stalled["stopping"]) == (name, True)
    if code == 0:
        # Broken: by the signal's handler (a spin, a sleep), or, for a handler swallowing
        # BaseException, by the watchdog's raise and the signal sent again landing together,
        # the second outside its `try`.
        (failed,) = d.events("strategy_handler_failed")
        assert failed["strategy"] == name
        (done,) = d.events("shutdown_done")
        assert done["within_s"] <= stop_s
        assert d.events("token_revoked")
        assert not Holds(tmp_path / "state").load()
    else:
        (exit_line,) = d.events("watchdog_exit")
        assert (exit_line["why"], exit_line["strategy"]) == ("shutdown_deadline", name)
        assert stop_s <= exit_line["since_stop_s"] <= stop_s + 1.0
        assert "not done" in exit_line["token_revoke"]
        assert list(Holds(tmp_path / "state").load()) == [name]
        assert not d.events("shutdown_done")


@pytest.mark.parametrize(("body", "cls"), [(STOP_SLEEPS, "StopSleeps"), (STOP_SPINS, "StopSpins")])
async def test_a_blocking_on_stop_keeps_the_shutdown_deadline_and_the_token_is_revoked(
    tmp_path: Path, body: str, cls: str
) -> None:
    stop_s = 3.0
    cfg, port, _ = config(tmp_path, "stopper", body, cls, stall_s=60.0, stop_s=stop_s)
    async with daemon(cfg, port) as d:
        await until_running(d)
        d.signal(signal.SIGTERM)
        assert await d.wait(stop_s + 1.0) == 0, d.log[-10:]
    (done,) = d.events("shutdown_done")
    # The truth: on_stop was cut after its share, and the figure is the time it really took.
    assert 0.5 <= done["within_s"] <= stop_s
    assert d.events("token_revoked")
    (stalled,) = d.events("handler_stalled")
    assert (stalled["strategy"], stalled["handler"]) == ("stopper", "on_stop")


def test_enable_reads_the_configured_state_dir(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, admin_port=free_port())
    Holds(tmp_path / "state").hold("x", "handler_unbreakable: on_trade ran 7.0 s")
    (tmp_path / "state" / "other.json").write_bytes(orjson.dumps({}))
    # "x" is held though no longer configured: enabling it is still allowed.
    done = cli(cfg, "enable", "x")
    assert done.returncode == 0, done.stderr
    assert Holds(tmp_path / "state").load() == {}


async def test_an_unreadable_held_file_refuses_start_up(tmp_path: Path) -> None:
    cfg, port, _ = config(tmp_path, "spin", SPIN, "Spin", stall_s=5.0)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "held_strategies.json").write_bytes(b"{torn")
    async with daemon(cfg, port) as d:
        assert await d.wait(30) == 1
    (line,) = d.events("held_strategies_unreadable")
    assert "enable" in line["hint"]
    assert not d.events("daemon_running")


RESTS_THEN_SPINS = """
import pathlib
from engine.trading.krx import round_to_tick

class RestsThenSpins(Strategy):
    def on_start(self):
        self.order = None

    def on_trade(self, trade):
        if self.order is None:
            # 3% under the market: it rests.
            self.order = self.buy(trade.symbol, 1, round_to_tick(trade.price * 97 // 100, "down"))
        elif self.order.state is OrderState.ACCEPTED:
            pathlib.Path(self.params["marker"]).write_text("in")
            while True:
                pass
"""


async def test_a_strategy_broken_by_the_stop_keeps_its_orders_when_on_stop_is_keep(
    simulator: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    marker = tmp_path / "in"
    path = strategy_file(tmp_path, "rests", RESTS_THEN_SPINS)
    cfg = write_config(
        tmp_path,
        admin_port=port,
        rest_url=simulator.rest_url,
        ws_url=simulator.ws_url,
        stop_timeout_s=3.0,
        daemon="handler_stall_s = 60.0",  # on_stop = "keep", the default
        strategies=(
            f'[[strategies]]\nname = "rests"\npath = "{path}"\nclass = "RestsThenSpins"\n'
            f'symbols = ["005930"]\nparams = {{ marker = "{marker}" }}\n'
        ),
    )
    async with daemon(cfg, port) as d:
        await until_started(d)  # the stall may come before daemon_running (see until_started)
        await until(marker.exists, 15)
        await asyncio.sleep(0.5)
        d.signal(signal.SIGTERM)
        assert await d.wait(4.0) == 0, d.log[-10:]
    (failed,) = d.events("strategy_handler_failed")
    assert failed["strategy"] == "rests"
    async with trading_session(simulator, lambda _ev: None) as (api, _ws):
        opened = await api.open_orders()
    assert [(o.symbol, o.qty) for o in opened] == [("005930", 1)]
