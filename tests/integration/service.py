"""The daemon as systemd runs it: a `kiwoom-engine run` process, its NOTIFY_SOCKET, its admin
endpoint and its JSON log, for the service tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.support import until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NotifySocket:
    """What systemd's end of NOTIFY_SOCKET sees: one message per datagram, in order."""

    def __init__(self) -> None:
        self.name = f"kiwoom-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)  # abstract: no path length or cleanup to mind
        self.sock.setblocking(False)
        self.messages: list[str] = []

    @property
    def env(self) -> str:
        return "@" + self.name

    def drain(self) -> list[str]:
        """Every datagram that has arrived, without waiting."""
        got = []
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break
        self.messages.extend(got)
        return got

    async def wait_for(self, line: str, within_s: float = 30.0) -> int:
        """Wait until a message with `line` arrives; returns its index in `messages`."""
        start = len(self.messages)

        def seen() -> bool:
            self.drain()
            return any(line in m.split("\n") for m in self.messages[start:])

        await until(seen, within_s)
        return next(i for i in range(start, len(self.messages)) if line in self.messages[i])

    def close(self) -> None:
        self.sock.close()


def strategy_file(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.py"
    path.write_text(
        "from engine.strategy import Strategy\nfrom engine.events import *  # noqa\n\n"
        + textwrap.dedent(body)
    )
    return path


def write_config(
    tmp: Path,
    *,
    admin_port: int,
    rest_url: str | None = None,
    ws_url: str | None = None,
    stop_timeout_s: float = 5.0,
    request_timeout_s: float = 10.0,
    risk: str = "",
    strategies: str = "",
    daemon: str = "",
) -> Path:
    """A config file for `kiwoom-engine run`: the built-in simulator unless URLs are given.
    `daemon` adds lines to the [daemon] table."""
    urls = f'rest_url = "{rest_url}"\nws_url = "{ws_url}"\n' if rest_url else ""
    path = tmp / "config.toml"
    path.write_text(
        f'[kiwoom]\nmode = "sim"\n{urls}request_timeout_s = {request_timeout_s}\n'
        "[kiwoom.rate]\naccount_per_s = 500.0\naccount_burst = 100\n"
        "[sim]\nport = 0\nevents_per_s = 200.0\n"
        f'[daemon]\nsymbols = ["005930"]\nstate_dir = "{tmp / "state"}"\n'
        f"stop_timeout_s = {stop_timeout_s}\n{textwrap.dedent(daemon)}\n"
        f"[admin]\nport = {admin_port}\n"
        f"[risk]\n{risk}\n" + textwrap.dedent(strategies)
    )
    return path


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    config: Path
    admin_port: int
    log: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log if line.get("event") == name]

    async def get(self, path: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.admin_port}{path}") as r,
        ):
            body = await r.read()
            if r.content_type == "application/json":
                return r.status, orjson.loads(body)
            return r.status, body.decode()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{self.admin_port}{path}", json=body) as r,
        ):
            return r.status, orjson.loads(await r.read())

    async def metric(self, sample: str) -> float:
        """One sample of /metrics (name with labels, as printed), 0 when absent."""
        _, text = await self.get("/metrics")
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def wait(self, within_s: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), within_s)


async def _read_log(proc: asyncio.subprocess.Process, into: list[dict[str, Any]]) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        try:
            into.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            into.append({"event": "<not json>", "text": raw.decode(errors="replace")})


@asynccontextmanager
async def daemon(
    config: Path, admin_port: int, notify: NotifySocket | None = None, watchdog_usec: int = 0
) -> AsyncIterator[Daemon]:
    """`kiwoom-engine run` with `config`; killed on the way out if still running."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.env
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "engine", "-c", str(config), "--log-level", "info", "run"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    d = Daemon(proc, config, admin_port)
    d._reader = asyncio.create_task(_read_log(proc, d.log))
    try:
        yield d
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(d._reader, 5)


async def until_started(d: Daemon, within_s: float = 30.0) -> None:
    """Until the daemon started its strategies. A strategy that stalls on its first event may
    hang the loop before `daemon_running` is logged (on a loaded machine the first trade can
    come first), so tests of such strategies wait for this instead."""
    await until(
        lambda: bool(d.events("strategies_started")) or d.proc.returncode is not None, within_s
    )
    assert d.events("strategies_started"), d.log[-20:]


async def until_running(d: Daemon, within_s: float = 30.0) -> None:
    """Until the daemon logged daemon_running (or died: then fail with its log)."""
    await until(lambda: bool(d.events("daemon_running")) or d.proc.returncode is not None, within_s)
    assert d.proc.returncode is None, d.log[-20:]
