"""One token per app key: `call` and `watch` run beside the daemon and leave its token alone;
the daemon revokes at its own shutdown (kiwoom.revoke_on_exit).

Kiwoom (and the simulator) hand the same token to every client of an app key while it is
valid, so one process revoking it cuts off all the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine import config, daemon, logs
from engine.config import SIM_APPKEY, SIM_SECRETKEY
from engine.sim.simulator import Simulator
from tests.support import until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _quiet_logs() -> object:
    yield
    logs.setup("warning", "json", io.StringIO())


def daemon_config(sim: Simulator, **kiwoom: object) -> config.Config:
    """The daemon pointed at `sim` (not its own), so that the test can look at the tokens."""
    cfg = config.load(None, env={})
    return dataclasses.replace(
        cfg,
        kiwoom=dataclasses.replace(cfg.kiwoom, rest_url=sim.rest_url, ws_url=sim.ws_url, **kiwoom),
        # Never ./var: the built-in simulator's journal directory is wiped at start.
        daemon=dataclasses.replace(
            cfg.daemon, symbols=("005930",), state_dir=tempfile.mkdtemp(prefix="kiwoom-test-")
        ),
    )


async def start_daemon(cfg: config.Config) -> tuple[asyncio.Task[int], asyncio.Event, io.StringIO]:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(cfg, stop=stop))
    await until(lambda: "daemon_running" in buf.getvalue() or task.done(), 15)
    assert not task.done(), buf.getvalue()
    return task, stop, buf


async def cli(cfg_file: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "KIWOOM_APPKEY": SIM_APPKEY, "KIWOOM_SECRETKEY": SIM_SECRETKEY}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine",
        "-c",
        str(cfg_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


def daemon_token(sim: Simulator) -> str:
    """The token the daemon's feed logged in with (the one session left when it alone is
    connected); its REST client holds the same one."""
    tokens = {s.token for s in sim.realtime.sessions if s.logged_in}
    assert len(tokens) == 1, tokens
    return tokens.pop()


async def rest_answer(sim: Simulator, token: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sim.rest_url + "/api/dostk/stkinfo",
            json={"stk_cd": "005930"},
            headers={"api-id": "ka10001", "authorization": f"Bearer {token}"},
        ) as resp,
    ):
        body: dict[str, object] = orjson.loads(await resp.read())
        return body


async def test_calls_beside_the_daemon_leave_its_token_alone(
    simulator: Simulator, tmp_path: Path
) -> None:
    sim = simulator
    task, stop, buf = await start_daemon(daemon_config(sim))
    try:
        token = daemon_token(sim)
        cfg_file = tmp_path / "cli.toml"
        cfg_file.write_text(
            f'[kiwoom]\nmode = "sim"\nrest_url = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n'
        )
        runs = await asyncio.gather(
            *(cli(cfg_file, "call", "ka10001", "stk_cd=005930") for _ in range(3)),
            cli(cfg_file, "watch", "0B", "005930", "--count", "1"),
        )
        assert [code for code, _ in runs] == [0, 0, 0, 0], runs
        assert sim.state.request_counts["au10002"] == 0  # nobody revoked
        assert sim.state.tokens.issued_count == 1  # so nobody needed a new one

        # The daemon's next REST call, with the token it holds, still goes through ...
        answer = await rest_answer(sim, token)
        assert answer["return_code"] == 0, answer
        # ... and so does its feed, logging in again with that token after a drop.
        logins = sim.realtime.logins
        sim.state.faults.ws_drop_now()
        await until(
            lambda: sim.realtime.logins > logins and "feed_reconnected" in buf.getvalue(), 10
        )
        assert sim.realtime.login_failures == 0
        assert daemon_token(sim) == token
        assert sim.state.tokens.issued_count == 1
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK
    # The daemon revokes at its own shutdown (kiwoom.revoke_on_exit defaults to true).
    assert sim.state.request_counts["au10002"] == 1
    assert not sim.state.tokens.is_valid(token)


async def test_the_daemon_keeps_the_token_when_told_to(simulator: Simulator) -> None:
    sim = simulator
    task, stop, buf = await start_daemon(daemon_config(sim, revoke_on_exit=False))
    token = daemon_token(sim)
    stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK
    assert sim.state.request_counts["au10002"] == 0
    assert sim.state.tokens.is_valid(token)
    assert "token_revoked" not in buf.getvalue()
