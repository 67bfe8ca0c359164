"""The whole simulator (REST + WebSocket + exchange on one port) and clients pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from engine import config
from engine.config import Config, RateConfig
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
