"""The whole simulator (REST + WebSocket + exchange on one port) and clients pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from engine import config
from engine.config import Config, RateConfig
from engine.events import Event
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.simulator import Simulator


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim_cfg = dataclasses.replace(config.load(None, env={}).sim, port=0, events_per_s=200.0)
    async with Simulator(sim_cfg) as sim:
        yield sim


def client_config(sim: Simulator) -> Config:
    """The shipped defaults, with the hosts pointed at `sim` and generous pacing."""
    cfg = config.load(None, env={})
    kiwoom = dataclasses.replace(
        cfg.kiwoom,
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        rate=RateConfig(account_per_s=500.0, account_burst=100),
    )
    return dataclasses.replace(cfg, kiwoom=kiwoom)


@asynccontextmanager
async def trading_session(
    sim: Simulator, on_event: Callable[[Event], None], recorder: FrameRecorder | None = None
) -> AsyncIterator[tuple[KiwoomApi, KiwoomWebSocket]]:
    """A REST client and a started realtime feed on `sim`, closed (token revoked) on exit."""
    cfg = client_config(sim)
    async with KiwoomRest.from_config(cfg) as rest:
        ws = KiwoomWebSocket(
            cfg.ws_url,
            rest.tokens.token,
            rest.tokens.invalidate,
            on_event=on_event,
            recorder=recorder,
        )
        await ws.start()
        try:
            yield KiwoomApi(rest), ws
        finally:
            await ws.close()
