"""A real Mosquitto per test on a free loopback port, and a subscriber that records what it
hears there. `make test` installs Mosquitto when it is missing (Makefile target `mosquitto`)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from engine.clock import ManualClock
from tests.support import until


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(
            "mosquitto is not installed: run `make test` (it installs it) or apt-get install mosquitto"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process: listener on 127.0.0.1:`port`, no persistence; anonymous unless
    `passwords` ({user: password}) is given. Its log (subscriptions included) is `log_text()`."""

    def __init__(
        self,
        tmp: Path,
        port: int | None = None,
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.dir = tmp
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            # Started as root, mosquitto would drop to user "mosquitto" and lose its log file.
            f"user {getpass.getuser()}",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type subscribe",
            "connection_messages true",
        ]
        if passwords:
            pwfile = tmp / "passwd"
            pwfile.write_text("")
            for user, password in passwords.items():
                subprocess.run(
                    [
                        shutil.which("mosquitto_passwd") or "mosquitto_passwd",
                        "-b",
                        str(pwfile),
                        user,
                        password,
                    ],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
            if acl is not None:
                (tmp / "acl").write_text(acl)
                lines.append(f"acl_file {tmp / 'acl'}")
        else:
            lines.append("allow_anonymous true")
        lines += extra
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    async def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; _accepting polls
            [mosquitto_binary(), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        await until(self._accepting, 10)

    def _accepting(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(
                f"mosquitto exited {self.proc.returncode}: {err} {self.log_text()}"
            )
        with socket.socket() as s:
            return s.connect_ex((self.host, self.port)) == 0

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL: no goodbye to any client."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    d = tmp_path / "broker"
    d.mkdir()
    b = Broker(d)
    await b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class Heard:
    topic: str
    body: dict[str, Any]
    retain: bool
    qos: int


@dataclass
class Subscriber:
    """Subscribes to `pattern` on `broker`, reconnecting whenever the broker comes back, and
    keeps every message (QoS 1 subscription: QoS 1 topics arrive at QoS 1)."""

    broker: Broker
    pattern: str
    heard: list[Heard] = field(default_factory=list)
    sessions: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    username: str | None = None
    password: str | None = None

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.username,
                    password=self.password,
                ) as c:
                    await c.subscribe(self.pattern, qos=1)
                    self.sessions += 1
                    self.subscribed.set()
                    async for m in c.messages:
                        assert isinstance(m.payload, bytes)
                        self.heard.append(
                            Heard(m.topic.value, orjson.loads(m.payload), m.retain, m.qos)
                        )
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.02)

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [h.body for h in self.heard if h.topic == topic]

    def of_bodies(self, kind: str) -> list[dict[str, Any]]:
        return [h.body for h in self.heard if h.body.get("type") == kind]

    def of_type(self, kind: str) -> list[Heard]:
        return [h for h in self.heard if h.body.get("type") == kind]


@contextlib.asynccontextmanager
async def subscribed(broker: Broker, pattern: str, **login: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber(broker, pattern, **login)
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.wait_for(sub.subscribed.wait(), 10)
        yield sub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish(broker: Broker, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """One QoS 1 message from a client of its own (an operator's mosquitto_pub)."""
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish(topic, payload, qos=1, retain=retain)


async def advance_until(clock: ManualClock, cond: Any, within_s: float = 10.0) -> None:
    """Move `clock` on a second at a time (waking the mirror's backoff) until `cond()`."""

    def step() -> bool:
        if cond():
            return True
        clock.advance(1.0)
        return False

    await until(step, within_s)
