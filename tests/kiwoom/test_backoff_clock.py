"""Every back-off of the Kiwoom client waits on the injected Clock (issue 14, item 22).

A ManualClock never moves unless the test moves it: a back-off that slept on asyncio instead
(real time) would go ahead without `advance`, and one that waits on the clock goes ahead only
after it. The back-offs are seconds long, so a real sleep would also run past the timeout.
"""

from __future__ import annotations

import asyncio

import pytest

from engine.clock import ManualClock
from engine.config import RateConfig, RetryConfig
from engine.events import Disconnected, Event, Reconnected
from engine.kiwoom.errors import OrderExpiredError
from engine.kiwoom.governor import Governor
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.settings import GovernorSettings
from tests.support import until

from .conftest import SimEnv
from .test_ws import Env, env  # noqa: F401 - the realtime simulator fixture

pytestmark = pytest.mark.timeout(20)

BODY = {"stk_cd": "005930"}
SLOW = 5.0
"""Seconds of every back-off here: far beyond the test's timeout if slept for real."""


def _slow_rate() -> RateConfig:
    return RateConfig(
        account_per_s=500.0,
        account_burst=100,
        per_api_per_s=500.0,
        per_api_burst=100,
        backoff_base_s=SLOW,
        backoff_max_s=SLOW,
        max_rate_limit_retries=3,
    )


async def test_rate_limit_backoff_waits_on_the_clock(sim: SimEnv) -> None:
    sim.cheap("ka10001")
    sim.state.faults.rate_limit_once.add("ka10001")
    clock = ManualClock()
    async with KiwoomRest.from_config(
        sim.config(rate=_slow_rate()), clock, rand=lambda: 1.0
    ) as rest:
        call = asyncio.ensure_future(rest.call("ka10001", BODY))
        await until(lambda: clock.sleeping == 1)
        assert sim.state.request_counts["ka10001"] == 1
        assert not call.done()
        clock.advance(SLOW - 0.1)  # not yet: the back-off is SLOW seconds
        await asyncio.sleep(0)
        assert not call.done()
        clock.advance(0.1)
        result = await asyncio.wait_for(call, 5)
    assert result.body["return_code"] == 0
    assert sim.state.request_counts["ka10001"] == 2


async def test_query_retry_after_a_5xx_waits_on_the_clock(sim: SimEnv) -> None:
    sim.cheap("ka10001")
    sim.state.faults.http_error_once["ka10001"] = 503
    clock = ManualClock()
    retry = RetryConfig(max_attempts=3, base_delay_s=SLOW, max_delay_s=SLOW)
    async with KiwoomRest.from_config(sim.config(retry=retry), clock, rand=lambda: 1.0) as rest:
        call = asyncio.ensure_future(rest.call("ka10001", BODY))
        await until(lambda: clock.sleeping == 1)
        assert sim.state.request_counts["ka10001"] == 1
        assert not call.done()
        clock.advance(SLOW)
        result = await asyncio.wait_for(call, 5)
    assert result.body["return_code"] == 0
    assert sim.state.request_counts["ka10001"] == 2


async def test_token_request_retry_waits_on_the_clock(sim: SimEnv) -> None:
    sim.state.faults.http_error_once["au10001"] = 503
    clock = ManualClock()
    retry = RetryConfig(base_delay_s=SLOW)  # also the first pause between token requests
    async with KiwoomRest.from_config(sim.config(retry=retry), clock) as rest:
        token = asyncio.ensure_future(rest.tokens.token())
        await until(lambda: clock.sleeping == 1)
        assert sim.state.request_counts["au10001"] == 1
        assert not token.done()
        clock.advance(SLOW)
        assert await asyncio.wait_for(token, 5)
    assert sim.state.request_counts["au10001"] == 2


async def test_reconnect_backoff_waits_on_the_clock(env: Env) -> None:  # noqa: F811
    clock = ManualClock()
    events: list[Event] = []
    ws = env.client(
        events.append,
        clock=clock,
        backoff_base_s=SLOW,
        backoff_max_s=SLOW,
        stale_after_s=3600.0,
    )
    await ws.start()
    assert ws.sessions == 1
    await env.rt.drop_all()
    await until(lambda: any(isinstance(e, Disconnected) for e in events))
    # The back-off is on the clock; the silence watchdog of the dropped session is gone.
    await until(lambda: clock.sleeping == 1)
    assert ws.sessions == 1
    clock.advance(SLOW)
    await until(lambda: ws.sessions == 2)
    assert any(isinstance(e, Reconnected) for e in events)


async def test_pacing_waits_on_the_clock() -> None:
    clock = ManualClock()
    rate = RateConfig(account_per_s=1.0, account_burst=1, per_api_per_s=1.0, per_api_burst=1)
    gov = Governor(GovernorSettings.from_rate(rate, "live"), clock)
    await asyncio.wait_for(gov.acquire("ka10001"), 1)
    second = asyncio.ensure_future(gov.acquire("ka10001"))
    await until(lambda: clock.sleeping == 1)
    assert not second.done()
    clock.advance(1.0)  # one token refills at 1/s
    await asyncio.wait_for(second, 1)


async def test_an_order_waiting_for_pacing_expires_on_the_clock(sim: SimEnv) -> None:
    clock = ManualClock()
    rate = RateConfig(order_per_api_per_s=1.0, order_per_api_burst=1, account_burst=100)
    cancel = {"dmst_stex_tp": "KRX", "orig_ord_no": "0000001", "stk_cd": "005930", "cncl_qty": "0"}
    async with KiwoomRest.from_config(sim.config(rate=rate), clock) as rest:
        await rest.call("kt10003", cancel)
        # The next slot comes in 1 s (on the clock); the deadline before it.
        late = asyncio.ensure_future(rest.call("kt10003", cancel, deadline=clock.monotonic() + 0.5))
        # Waiting for its slot (the governor, on the clock) and for its deadline (the clock).
        await until(lambda: clock.sleeping == 2)
        assert not late.done()
        clock.advance(0.5)
        with pytest.raises(OrderExpiredError):
            await asyncio.wait_for(late, 5)
    assert sim.state.request_counts["kt10003"] == 1
