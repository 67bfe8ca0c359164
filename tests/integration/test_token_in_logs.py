"""No piece of a token in any log, at any level: `watch` and `run` at --log-level debug over a
real LOGIN, and the redactor on its own when a library does dump the LOGIN frame."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine import config, daemon, logs
from engine.config import SIM_APPKEY, SIM_SECRETKEY
from engine.events import Event
from engine.sim.simulator import Simulator
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(60)

APPKEY = "fragments-test-appkey-5d1c"
SECRETKEY = "fragments-test-secretkey-9e0f"


PIECE = 12
"""The issue's bar: no run of 12 or more characters of the token anywhere in the output."""


def leaked_pieces(token: str, output: str) -> list[str]:
    """The pieces of `token` of PIECE characters found in `output`; every longer piece contains
    one of them, so none found means no piece of 12 or more characters is there."""
    n = PIECE
    assert len(token) > n
    return [token[i : i + n] for i in range(len(token) - n + 1) if token[i : i + n] in output]


async def test_watch_at_debug_level_logs_no_piece_of_the_token(
    simulator: Simulator, tmp_path: Path
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[kiwoom]\nmode = "sim"\n[sim]\nport = {simulator.port}\n')
    # The simulator, like Kiwoom, hands the same token to the same keys while it is valid.
    token, _expires = simulator.state.tokens.issue(APPKEY, SECRETKEY)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "engine", "-c", str(cfg), "watch", "0B", "005930", "--count", "3"),
        *("--log-level", "debug"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KIWOOM_APPKEY": APPKEY, "KIWOOM_SECRETKEY": SECRETKEY},
    )
    out_b, err_b = await asyncio.wait_for(proc.communicate(), 45)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err
    assert simulator.state.tokens.issued_count == 1  # watch logged in with that very token
    assert simulator.realtime.logins >= 1
    assert [orjson.loads(line)["event"] for line in out.splitlines()].count("Trade") == 3
    assert '"level":"debug"' in err  # debug lines were written
    assert leaked_pieces(token, out + err) == []


async def test_daemon_at_debug_level_logs_no_piece_of_the_token() -> None:
    buf = io.StringIO()
    logs.setup("debug", "json", buf)
    base = config.load(None, env={})
    cfg = dataclasses.replace(
        base,
        sim=dataclasses.replace(base.sim, port=0),
        daemon=dataclasses.replace(base.daemon, state_dir=tempfile.mkdtemp(prefix="kiwoom-test-")),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(cfg, stop=stop))
    try:
        await until(lambda: "daemon_running" in buf.getvalue(), 15)
        started = next(
            orjson.loads(line) for line in buf.getvalue().splitlines() if "sim_started" in line
        )
        # Ask the daemon's simulator for the daemon's token: same keys, same token.
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{started['port']}/oauth2/token",
                json={
                    "grant_type": "client_credentials",
                    "appkey": SIM_APPKEY,
                    "secretkey": SIM_SECRETKEY,
                },
                headers={"api-id": "au10001"},
            ) as r,
        ):
            token = (await r.json())["token"]
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 15) == daemon.EXIT_OK
    text = buf.getvalue()
    assert "token_issued" in text
    assert '"level":"debug"' in text
    assert leaked_pieces(token, text) == []
    logs.setup("warning", "json", io.StringIO())


async def test_redactor_scrubs_a_library_dump_of_the_login_frame(simulator: Simulator) -> None:
    # The frame logger is kept off by logs.setup; turn it on as a user's or a library's
    # logging config might, so the LOGIN frame really goes through the redactor.
    buf = io.StringIO()
    logs.setup("debug", "json", buf)
    frame_logger = logging.getLogger("websockets")
    frame_logger.setLevel(logging.DEBUG)
    events: list[Event] = []
    try:
        async with trading_session(simulator, events.append) as (api, _ws):
            token = await api.rest.tokens.token()
    finally:
        logs.setup("warning", "json", io.StringIO())
    text = buf.getvalue()
    login_frames = [line for line in text.splitlines() if "> TEXT" in line and "LOGIN" in line]
    assert login_frames  # the library did log the frame, elided
    assert leaked_pieces(token, text) == []
