"""The daemon end to end against the built-in simulator: starts, streams, stops cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import io

import orjson
import pytest

from engine import config, daemon, logs


def sim_config(**sim: object) -> config.Config:
    cfg = config.load(None, env={})
    return dataclasses.replace(
        cfg,
        sim=dataclasses.replace(cfg.sim, **{"port": 0, "events_per_s": 500.0, **sim}),
        daemon=dataclasses.replace(cfg.daemon, symbols=("005930", "000660")),
    )


async def test_daemon_streams_from_the_simulator_and_stops_cleanly() -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(sim_config(), stop=stop))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "daemon_running" in buf.getvalue():
                break
        await asyncio.sleep(0.5)
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK
    lines = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    events = [line["event"] for line in lines]
    assert "daemon_running" in events
    assert "account_snapshot" in events
    stopping = next(line for line in lines if line["event"] == "daemon_stopping")
    assert stopping["events"].get("Trade", 0) > 0
    assert stopping["codec"]["bad_frames"] == 0
    # The token is revoked at shutdown, and never printed.
    assert "token_revoked" in events
    assert events[-1] == "daemon_stopped"


async def test_daemon_reports_a_taken_simulator_port() -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        code = await daemon.run(sim_config(port=port), stop=asyncio.Event())
    finally:
        blocker.close()
    assert code == daemon.EXIT_STARTUP
    assert "sim_start_failed" in buf.getvalue()
    assert "kiwoom-engine sim" in buf.getvalue()


@pytest.fixture(autouse=True)
def _quiet_logs() -> object:
    yield
    logs.setup("warning", "json", io.StringIO())
