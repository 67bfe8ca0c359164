"""Fixtures: a simulator on a free 127.0.0.1 port and a raw aiohttp client speaking to it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import SimConfig
from engine.sim.server import start
from engine.sim.state import SimState, build_state


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def rc(self) -> int:
        return int(self.body["return_code"])

    @property
    def msg(self) -> str:
        return str(self.body["return_msg"])


class SimClient:
    """A running simulator plus a plain ClientSession (no engine client code involved)."""

    def __init__(self, state: SimState, url: str, session: aiohttp.ClientSession) -> None:
        self.state = state
        self.url = url
        self.session = session
        self.token = ""

    async def post(
        self,
        path: str,
        body: Any,
        headers: dict[str, str] | None = None,
        total_s: float | None = None,
    ) -> Reply:
        data = body if isinstance(body, (bytes, str)) else None
        kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": body}
        if total_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=total_s)
        async with self.session.post(self.url + path, headers=headers or {}, **kwargs) as r:
            parsed = await r.json(content_type=None)
            return Reply(r.status, dict(r.headers), parsed)

    async def issue(self, appkey: str = "appkey-1", secretkey: str = "secret-1") -> Reply:
        reply = await self.post(
            "/oauth2/token",
            {"grant_type": "client_credentials", "appkey": appkey, "secretkey": secretkey},
            {"api-id": "au10001"},
        )
        if reply.rc == 0:
            self.token = reply.body["token"]
        return reply

    async def call(
        self,
        api_id: str,
        body: Any,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        total_s: float | None = None,
    ) -> Reply:
        """POST `body` to the catalogue path of `api_id` with the current token."""
        if not self.token and token is None:
            await self.issue()
        hdrs = {
            "api-id": api_id,
            "authorization": f"Bearer {self.token if token is None else token}",
            "content-type": "application/json;charset=UTF-8",
        }
        hdrs.update(headers or {})
        return await self.post(self.state.catalog[api_id].path, body, hdrs, total_s)


SimFactory = Callable[..., Awaitable[SimClient]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """`await make_sim(clock=..., **SimConfig overrides)` -> SimClient; all stopped after."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def factory(clock: Clock = SYSTEM_CLOCK, **overrides: Any) -> SimClient:
        config = SimConfig(**{"port": 0, **overrides})
        state = build_state(config, clock)
        runner, port = await start(state)
        session = aiohttp.ClientSession()
        cleanups.append(session.close)
        cleanups.append(runner.cleanup)
        return SimClient(state, f"http://127.0.0.1:{port}", session)

    yield factory
    for cleanup in cleanups:
        await cleanup()


@pytest.fixture
async def sim(make_sim: SimFactory) -> SimClient:
    return await make_sim()
