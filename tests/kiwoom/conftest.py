"""A real simulator on 127.0.0.1 (port 0) and client configs pointing at it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from engine.clock import Clock, OffsetClock
from engine.config import (
    SIM_APPKEY,
    SIM_SECRETKEY,
    CacheConfig,
    Config,
    KiwoomConfig,
    RateConfig,
    RetryConfig,
    SimConfig,
)
from engine.secrets import Secret
from engine.sim.rest import SimReply
from engine.sim.server import start
from engine.sim.state import SimState, build_state


@dataclass
class SimEnv:
    state: SimState
    port: int
    clock: Clock

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, **kiwoom: Any) -> Config:
        """A client config for this simulator: fast pacing and retries, no cache, unless
        overridden (`rate=`, `retry=`, `cache=`, `request_timeout_s=`, ...)."""
        base = KiwoomConfig(
            mode="sim",
            rest_url=self.url,
            request_timeout_s=5.0,
            connect_timeout_s=2.0,
            rate=RateConfig(
                account_per_s=2000.0,
                account_burst=500,
                per_api_per_s=2000.0,
                per_api_burst=500,
                backoff_base_s=0.02,
                backoff_max_s=0.2,
                max_rate_limit_retries=50,
            ),
            retry=RetryConfig(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05),
            cache=CacheConfig(ttl_s={}),
            appkey=Secret(SIM_APPKEY),
            secretkey=Secret(SIM_SECRETKEY),
        )
        return Config(kiwoom=dataclasses.replace(base, **kiwoom), sim=self.state.config)

    def cheap(self, api_id: str, reply: dict[str, Any] | None = None) -> None:
        """Answer `api_id` with a constant body: pacing tests then measure the client, not
        the simulator's data generation (which costs milliseconds per ka10001)."""
        fixed = SimReply(reply if reply is not None else {"stk_cd": "005930", "stk_nm": "삼성전자"})

        async def handler(body: dict[str, Any], next_key: str) -> SimReply:
            return fixed

        self.state.rest_handlers[api_id] = handler

    def refused(self, api_id: str) -> int:
        """Requests the simulator refused before handling (429s, token errors, 5xx faults)."""
        return self.state.request_counts[api_id] - self.state.handled_counts[api_id]


@pytest.fixture
def sim_clock() -> OffsetClock:
    return OffsetClock(0.0)


@pytest.fixture
async def sim(sim_clock: OffsetClock) -> AsyncIterator[SimEnv]:
    cfg = SimConfig(host="127.0.0.1", port=0, rest_rate_per_s=5000.0, rest_burst=5000)
    state = build_state(cfg, sim_clock)
    runner, port = await start(state)
    try:
        yield SimEnv(state, port, sim_clock)
    finally:
        await runner.cleanup()
