"""Every wait of the engine goes through its Clock (the backtest runs the same code on a
simulated clock): the daemon's own timers as it runs against the built-in simulator, and no
`asyncio.sleep` of a real duration anywhere in engine/ that does not say why it must stay
real."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import socket
import uuid
from pathlib import Path

import pytest

import engine
from engine import admin, config, daemon
from engine.clock import Clock
from engine.notify import Notifier
from engine.status_page import page
from engine.trader import Trader
from tests.support import until

pytestmark = pytest.mark.timeout(60)

WATCHDOG_USEC = 60_000_000
"""systemd's WatchdogSec=60 for the test's daemon: a ping every 30 s."""


class RecordingClock(Clock):
    """The live clock, noting which task asked for each sleep and for how long."""

    def __init__(self) -> None:
        self.slept: list[tuple[str, float]] = []

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.slept.append((task.get_name() if task is not None else "", seconds))
        await super().sleep(seconds)


async def test_the_daemon_s_timers_wait_on_its_clock(tmp_path: Path) -> None:
    base = config.load(None, env={})
    cfg = dataclasses.replace(
        base,
        sim=dataclasses.replace(base.sim, port=0, events_per_s=200.0),
        daemon=dataclasses.replace(base.daemon, state_dir=str(tmp_path / "state")),
        admin=config.AdminConfig(port=0),
    )
    clock = RecordingClock()
    name = f"kiwoom-notify-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name)
        systemd.setblocking(False)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
        stop = asyncio.Event()
        ready: list[Trader] = []
        task = asyncio.create_task(
            daemon.run(cfg, stop=stop, clock=clock, notifier=notifier, on_ready=ready.append)
        )
        wanted = {
            ("watchdog", WATCHDOG_USEC / 2 / 1e6),
            ("stats", daemon.STATS_INTERVAL_S),
            ("admin-snapshots", admin.PUBLISH_S),
            ("status-page", page.INTERVAL_S),
        }
        try:
            await until(lambda: bool(ready) or task.done(), 20)
            assert ready, "the daemon did not start"
            with contextlib.suppress(TimeoutError):  # the assertion below says what is missing
                await until(lambda: wanted <= set(clock.slept), 5)
            assert wanted - set(clock.slept) == set()
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 20) == daemon.EXIT_OK
        pings = []
        while True:
            try:
                pings.append(systemd.recv(4096))
            except BlockingIOError:
                break
        assert b"WATCHDOG=1" in pings  # the first ping goes at once, then one per interval


REAL_TIME_MARK = "real time:"
"""The comment that keeps an `asyncio.sleep` of a real duration (on its line or the lines of
comment just above it), saying why it cannot wait on the engine's Clock."""


def test_no_asyncio_sleep_of_a_real_duration_outside_the_clock_says_nothing_of_why() -> None:
    root = Path(engine.__file__).parent
    unexplained = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "sim" or rel == Path("clock.py"):
            continue  # the simulator is the market's own time; the Clock is the seam itself
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "sleep"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "asyncio"
            ):
                continue
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0:
                continue  # a turn of the loop, not a wait
            i = node.lineno - 1
            said = [lines[i]]
            while i > 0 and lines[i - 1].strip().startswith("#"):
                i -= 1
                said.append(lines[i])
            if not any(REAL_TIME_MARK in line for line in said):
                unexplained.append(f"engine/{rel}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert unexplained == []
