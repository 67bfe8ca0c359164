"""TokenManager against the simulator's OAuth endpoints (real sockets)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from engine.clock import OffsetClock
from engine.config import SIM_APPKEY, SIM_SECRETKEY
from engine.kiwoom.auth import TokenManager
from engine.kiwoom.errors import AuthError, TransportError
from engine.secrets import Secret, scrub

from .conftest import SimEnv

pytestmark = pytest.mark.timeout(20)


def _manager(session: aiohttp.ClientSession, sim: SimEnv, **kw: object) -> TokenManager:
    return TokenManager(
        session,
        sim.url,
        Secret(SIM_APPKEY),
        Secret(SIM_SECRETKEY),
        **kw,  # type: ignore[arg-type]
    )


async def test_issue_cache_invalidate_revoke(sim: SimEnv) -> None:
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim)
        tok = await tm.token()
        assert sim.state.tokens.is_valid(tok)
        assert scrub(f"x {tok} y") == "x *** y"  # registered for log scrubbing
        assert await tm.token() == tok
        assert sim.state.request_counts["au10001"] == 1
        await tm.invalidate("some-older-token")  # not current: ignored
        assert await tm.token() == tok
        assert sim.state.request_counts["au10001"] == 1
        await tm.invalidate(tok)
        assert await tm.token() == tok  # the server hands back the same valid token
        assert sim.state.request_counts["au10001"] == 2
        await tm.revoke()
        assert not sim.state.tokens.is_valid(tok)
        assert sim.state.request_counts["au10002"] == 1
        await tm.revoke()  # nothing to revoke: no request
        assert sim.state.request_counts["au10002"] == 1


async def test_single_flight_survives_a_cancelled_caller(sim: SimEnv) -> None:
    sim.state.faults.rest_delay_s["au10001"] = 0.2
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim)
        first = asyncio.ensure_future(tm.token())
        others = [asyncio.ensure_future(tm.token()) for _ in range(20)]
        await asyncio.sleep(0.05)
        first.cancel()
        tokens = await asyncio.gather(*others)
        assert len(set(tokens)) == 1
    assert sim.state.request_counts["au10001"] == 1


async def test_margin_refresh_with_offset_clock(sim: SimEnv) -> None:
    clock = OffsetClock(0.0)
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim, clock=clock, refresh_margin_s=600.0)
        await tm.token()
        assert tm.expires_at is not None
        clock.offset_s = sim.state.config.token_ttl_s - 700  # before the margin
        await tm.token()
        assert sim.state.request_counts["au10001"] == 1
        clock.offset_s = sim.state.config.token_ttl_s - 500  # inside the margin
        await tm.token()
        assert sim.state.request_counts["au10001"] == 2


async def test_a_token_handed_back_unchanged_is_used_to_its_end(sim: SimEnv) -> None:
    # Kiwoom returns the same token while it is valid: re-asking inside the margin gains
    # nothing, so the manager asks once, then uses the token until it expires.
    clock = OffsetClock(0.0)
    ttl = sim.state.config.token_ttl_s
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim, clock=clock, refresh_margin_s=600.0)
        tok = await tm.token()
        for left in (500, 250, 100, 30, 5):
            clock.offset_s = ttl - left
            assert await tm.token() == tok
        assert sim.state.request_counts["au10001"] == 2
        # Our clock past the expiry while the server still calls the token valid: at most
        # one request a second, not one per call.
        clock.offset_s = ttl + 5
        for _ in range(10):
            assert await tm.token() == tok
        assert sim.state.request_counts["au10001"] == 3


async def test_refused_keys_raise_auth_error_without_secrets(sim: SimEnv) -> None:
    async with aiohttp.ClientSession() as session:
        tm = TokenManager(session, sim.url, Secret("appkey-visible?"), Secret(""))
        with pytest.raises(AuthError) as ei:
            await tm.token()
    assert ei.value.code == 8020
    assert "appkey-visible?" not in str(ei.value)


async def test_unreachable_token_endpoint(sim: SimEnv) -> None:
    async with aiohttp.ClientSession() as session:
        tm = TokenManager(
            session,
            "http://127.0.0.1:9",
            Secret(SIM_APPKEY),
            Secret(SIM_SECRETKEY),
            retry_delay_s=0.01,
        )
        with pytest.raises(TransportError, match="au10001"):
            await tm.token()


async def test_token_issue_retries_5xx_and_rate_limit(sim: SimEnv) -> None:
    sim.state.faults.http_error_once["au10001"] = 503
    sim.state.faults.rate_limit_once.add("au10001")
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim, retry_delay_s=0.01)
        tok = await tm.token()
    assert sim.state.tokens.is_valid(tok)
    assert sim.state.request_counts["au10001"] == 3


async def test_a_token_request_sent_before_an_invalidation_is_not_joined(sim: SimEnv) -> None:
    # A refresh is on the wire when a call reports the current token dead. Kiwoom hands the
    # same token back while it thinks it valid, so that refresh may return the dead token:
    # callers after the invalidation must get a token from a request sent after it.
    clock = OffsetClock(0.0)
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim, clock=clock, refresh_margin_s=600.0)
        old = await tm.token()
        clock.offset_s = sim.state.config.token_ttl_s - 500  # inside the margin: refresh due
        sim.state.faults.rest_delay_s["au10001"] = 0.3  # answer computed now, sent 0.3 s later
        refresh = asyncio.ensure_future(tm.token())
        await asyncio.sleep(0.1)
        sim.state.expire_tokens()  # the server now calls `old` invalid ...
        await tm.invalidate(old)  # ... and a caller reported it
        sim.state.faults.rest_delay_s.clear()
        fresh = await tm.token()
        assert fresh != old
        assert sim.state.tokens.is_valid(fresh)
        assert await refresh == old  # the stale answer reached only those who asked before
        assert await tm.token() == fresh  # and was not installed over the fresh one
    assert sim.state.request_counts["au10001"] == 3


async def test_no_token_is_issued_after_revoke(sim: SimEnv) -> None:
    async with aiohttp.ClientSession() as session:
        tm = _manager(session, sim)
        tok = await tm.token()
        await tm.revoke()
        assert not sim.state.tokens.is_valid(tok)
        with pytest.raises(TransportError, match="closed"):
            await tm.token()
    assert sim.state.request_counts["au10001"] == 1  # nothing issued that nobody would revoke
