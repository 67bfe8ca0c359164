"""The processes of one chaos scenario: simulator, Mosquitto, daemon, and an MQTT recorder.

Everything lives in one temporary directory: configs, logs, the journal. Processes are ended
by their own pid (SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import shutil
import signal
import socket
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import orjson

PREFIX = "chaos"
SYMBOL = "005930"
SIM_PING_S = 2.0

TRADER = '''
from engine.strategy import Strategy


class ChaosTrader(Strategy):
    """Trades all the time: marketable buys and sells of one share (fills), and every third
    order a passive buy that it later modifies, then cancels (the whole order life)."""

    def on_start(self):
        self.seen = 0
        self.placed = 0

    def on_trade(self, trade):
        self.seen += 1
        if self.seen % self.params["every"] or not trade.best_bid or not trade.best_ask:
            return
        mine = self.orders()
        if mine:
            order = mine[0]
            if order.order_no and self.seen % (3 * self.params["every"]) == 0:
                self.cancel(order)
            elif order.order_no and order.price and order.price != trade.best_bid:
                self.modify(order, price=trade.best_bid)
            return
        self.placed += 1
        if self.placed % 3 == 0:
            self.buy(trade.symbol, 1, trade.best_bid)
        elif self.position(trade.symbol) < 3:
            self.buy(trade.symbol, 1, trade.best_ask)
        else:
            self.sell(trade.symbol, 1, trade.best_bid)
'''

RAISER = """
from engine.strategy import Strategy


class Raiser(Strategy):
    def on_trade(self, trade):
        raise RuntimeError("chaos: a strategy bug")
"""

BLOCKER = """
import time

from engine.strategy import Strategy


class Blocker(Strategy):
    def on_start(self):
        self.seen = 0

    def on_trade(self, trade):
        self.seen += 1
        if self.seen % 50 == 0:
            time.sleep(0.2)  # blocks the loop, as a buggy strategy would
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError("mosquitto is not installed (make mosquitto installs it)")
    return found


async def until(cond: Any, within_s: float, poll_s: float = 0.05) -> bool:
    """Poll `cond` (sync or async) until true; False after `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(poll_s)


async def _listening(port: int) -> bool:
    try:
        _r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    with contextlib.suppress(OSError):
        await w.wait_closed()
    return True


async def _end(proc: asyncio.subprocess.Process | None, within_s: float = 10.0) -> int | None:
    if proc is None or proc.returncode is not None:
        return None if proc is None else proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    try:
        return await asyncio.wait_for(proc.wait(), within_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()


@dataclass
class Recorder:
    """An MQTT subscriber with a persistent session (it hears what was published while the
    broker restarted), recording every order and fill message with the daemon run it came
    from."""

    port: int
    messages: list[tuple[int, str, bytes]] = field(default_factory=list)
    run: int = 0
    _task: asyncio.Task[None] | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="chaos-recorder", clean_session=False
                ) as client:
                    await client.subscribe([(f"{PREFIX}/order/#", 1), (f"{PREFIX}/fill", 1)])
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes) else str(payload).encode()
                        self.messages.append((self.run, message.topic.value, raw))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Stack:
    """One scenario's simulator, broker and daemon, in `dir`."""

    def __init__(self, dir: Path, *, strategies: tuple[str, ...] = ("trader",)) -> None:
        self.dir = dir
        self.sim_port = free_port()
        self.mqtt_port = free_port()
        self.admin_port = free_port()
        self.appkey = "chaos-appkey-" + secrets.token_hex(16)
        self.secretkey = "chaos-secret-" + secrets.token_hex(16)
        self.sim: asyncio.subprocess.Process | None = None
        self.broker: asyncio.subprocess.Process | None = None
        self.daemon: asyncio.subprocess.Process | None = None
        self.daemon_runs = 0
        self.daemon_exits: list[int] = []
        self.recorder = Recorder(self.mqtt_port)
        self.strategies = strategies
        self.sim_log = dir / "sim.log"
        self.daemon_log = dir / "daemon.log"
        self.tokens: list[str] = []
        self._http: aiohttp.ClientSession | None = None

    # --- configs ---------------------------------------------------------------------------

    def _write_configs(self) -> None:
        (self.dir / "sim.toml").write_text(
            textwrap.dedent(f"""\
                [kiwoom]
                mode = "sim"
                [sim]
                port = {self.sim_port}
                events_per_s = 200.0
                ping_interval_s = {SIM_PING_S}
                rest_rate_per_s = 1000.0
                rest_burst = 1000
                control = true
                """)
        )
        tables = []
        for name in self.strategies:
            source, cls, params = {
                "trader": (TRADER, "ChaosTrader", "every = 8"),
                "raiser": (RAISER, "Raiser", ""),
                "blocker": (BLOCKER, "Blocker", ""),
            }[name]
            path = self.dir / f"{name}.py"
            path.write_text(source)
            tables.append(
                f'[[strategies]]\nname = "{name}"\npath = "{path}"\nclass = "{cls}"\n'
                f'symbols = ["{SYMBOL}"]\nparams = {{ {params} }}\n'
            )
        (self.dir / "daemon.toml").write_text(
            textwrap.dedent(f"""\
                [kiwoom]
                mode = "sim"
                rest_url = "http://127.0.0.1:{self.sim_port}"
                ws_url = "ws://127.0.0.1:{self.sim_port}/api/dostk/websocket"
                request_timeout_s = 2.0
                connect_timeout_s = 2.0
                ws_stale_s = {2.25 * SIM_PING_S}
                ws_stale_grace_s = 1.0
                token_refresh_margin_s = 1.0
                [kiwoom.rate]
                account_per_s = 500.0
                account_burst = 100
                backoff_base_s = 0.1
                backoff_max_s = 1.0
                [sim]
                ping_interval_s = {SIM_PING_S}
                [daemon]
                symbols = ["{SYMBOL}"]
                state_dir = "{self.dir / "state"}"
                stop_timeout_s = 5.0
                [admin]
                port = {self.admin_port}
                [risk]
                max_orders_per_s = 20
                max_orders_per_min = 100000
                duplicate_window_s = 0
                [portfolio]
                reconcile_s = 5.0
                commission_bp = 0
                sell_tax_bp = 0
                [mqtt]
                host = "127.0.0.1"
                port = {self.mqtt_port}
                prefix = "{PREFIX}"
                reconnect_min_s = 0.2
                reconnect_max_s = 1.0
                """)
            + "\n".join(tables)
        )
        (self.dir / "mosquitto.conf").write_text(
            "\n".join(
                [
                    f"listener {self.mqtt_port} 127.0.0.1",
                    "allow_anonymous true",
                    # Sessions and their queued messages outlive a restart: the recorder
                    # then hears everything the daemon published meanwhile.
                    "persistence true",
                    f"persistence_location {self.dir}/",
                    f"user {getpass.getuser()}",
                    f"log_dest file {self.dir / 'mosquitto.log'}",
                ]
            )
            + "\n"
        )

    # --- processes -------------------------------------------------------------------------

    async def __aenter__(self) -> Stack:
        self._write_configs()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        await self.start_broker()
        self.recorder.start()
        if not await until(self.recorder.subscribed.is_set, 10):
            raise RuntimeError("the MQTT recorder could not subscribe")
        self.sim = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "engine", "-c", str(self.dir / "sim.toml"), "sim"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.sim_log.open("ab"),
        )
        if not await until(lambda: _listening(self.sim_port), 20):
            raise RuntimeError(f"the simulator did not start: {self.sim_log.read_text()[-2000:]}")
        await self.start_daemon()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.read_tokens()
        await self.stop_daemon()
        await _end(self.sim)
        await self.recorder.stop()
        await _end(self.broker)
        if self._http is not None:
            await self._http.close()

    async def start_broker(self) -> None:
        self.broker = await asyncio.create_subprocess_exec(
            mosquitto_binary(),
            *("-c", str(self.dir / "mosquitto.conf")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if not await until(lambda: _listening(self.mqtt_port), 10):
            raise RuntimeError("mosquitto did not start")

    async def restart_broker(self, down_s: float) -> None:
        await _end(self.broker)
        await asyncio.sleep(down_s)
        await self.start_broker()

    async def start_daemon(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "KIWOOM_APPKEY", "KIWOOM_SECRETKEY")
        }
        env["KIWOOM_APPKEY"] = self.appkey
        env["KIWOOM_SECRETKEY"] = self.secretkey
        self.daemon_runs += 1
        self.recorder.run = self.daemon_runs
        with self.daemon_log.open("ab") as f:
            f.write(orjson.dumps({"event": "chaos_daemon_start", "run": self.daemon_runs}) + b"\n")
        self.daemon = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "engine", "-c", str(self.dir / "daemon.toml"), "run"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.daemon_log.open("ab"),
            env=env,
        )
        if not await until(self.daemon_ready, 30):
            raise RuntimeError(f"the daemon did not come up: {self.daemon_log.read_text()[-3000:]}")

    async def daemon_ready(self) -> bool:
        if self.daemon is None or self.daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited: {self.daemon_log.read_text()[-3000:]}")
        status = await self.daemon_status()
        return bool(status and status.get("running"))

    async def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.returncode is None:
            code = await _end(self.daemon, 15)
            if code is not None:
                self.daemon_exits.append(code)

    async def kill_daemon(self) -> None:
        assert self.daemon is not None
        with contextlib.suppress(ProcessLookupError):
            self.daemon.kill()
        await self.daemon.wait()

    def signal_sim(self, sig: int) -> None:
        assert self.sim is not None
        self.sim.send_signal(sig)

    # --- HTTP ------------------------------------------------------------------------------

    async def daemon_status(self) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            async with self._http.get(f"http://127.0.0.1:{self.admin_port}/status") as r:
                return dict(orjson.loads(await r.read())) if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def halt(self) -> None:
        assert self._http is not None
        async with self._http.post(
            f"http://127.0.0.1:{self.admin_port}/halt", json={"reason": "chaos settle"}
        ) as r:
            r.raise_for_status()

    async def faults(self, **knobs: Any) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.post(
            f"http://127.0.0.1:{self.sim_port}/_sim/faults", json=knobs
        ) as r:
            body = dict(orjson.loads(await r.read()))
            if r.status != 200:
                raise RuntimeError(f"sim refused {sorted(knobs)}: {body}")
            return body

    async def ws_drop(self) -> None:
        assert self._http is not None
        async with self._http.post(f"http://127.0.0.1:{self.sim_port}/_sim/drop") as r:
            r.raise_for_status()

    async def book(self) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.get(f"http://127.0.0.1:{self.sim_port}/_sim/book") as r:
            r.raise_for_status()
            book = dict(orjson.loads(await r.read()))
        self.tokens = list(dict.fromkeys([*self.tokens, *book.pop("tokens")]))
        return book

    async def read_tokens(self) -> None:
        await self.book()
