"""Client-side pacing (engine.kiwoom.governor) without a server."""

from __future__ import annotations

import asyncio
import math

import pytest

from engine.clock import SYSTEM_CLOCK, ManualClock
from engine.config import RateConfig
from engine.kiwoom.governor import Governor, TokenBucket, backoff_delay
from engine.kiwoom.settings import GovernorSettings


def test_bucket_burst_then_rate() -> None:
    clock = ManualClock()
    b = TokenBucket(2.0, 3, clock)
    for _ in range(3):
        assert b.ready()
        b.take()
    assert not b.ready()
    assert b.wait_s() == pytest.approx(0.5)
    clock.advance(0.5)
    assert b.ready()
    b.take()
    clock.advance(100)
    taken = 0
    while b.ready():
        b.take()
        taken += 1
    assert taken == 3  # never more than the burst


def test_bucket_drain_and_infinite() -> None:
    clock = ManualClock()
    b = TokenBucket(1.0, 5, clock)
    b.drain()
    assert not b.ready()
    inf = TokenBucket(math.inf, 1, clock)
    for _ in range(1000):
        assert inf.ready()
        inf.take()
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 1, clock)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert backoff_delay(1, 0.5, 8.0, lambda: 1.0) == pytest.approx(0.5)
    assert backoff_delay(1, 0.5, 8.0, lambda: 0.0) == pytest.approx(0.25)
    assert backoff_delay(3, 0.5, 8.0, lambda: 1.0) == pytest.approx(2.0)
    assert backoff_delay(20, 0.5, 8.0, lambda: 1.0) == pytest.approx(8.0)
    assert backoff_delay(20, 0.5, 8.0, lambda: 0.0) == pytest.approx(4.0)


def _rate(**kw: object) -> GovernorSettings:
    return GovernorSettings.from_rate(RateConfig(**kw), "sim")  # type: ignore[arg-type]


async def test_orders_go_ahead_of_queued_queries() -> None:
    gov = Governor(_rate(account_per_s=20.0, account_burst=1), SYSTEM_CLOCK)
    await gov.acquire("ka10001")  # empties the account bucket
    done: list[str] = []

    async def go(name: str, api_id: str, order: bool) -> None:
        await gov.acquire(api_id, order=order)
        done.append(name)

    await asyncio.wait_for(
        asyncio.gather(
            go("q1", "ka10001", False), go("q2", "ka10004", False), go("o1", "kt10000", True)
        ),
        timeout=5,
    )
    assert done == ["o1", "q1", "q2"]


async def test_account_bucket_limits_across_api_ids() -> None:
    gov = Governor(_rate(account_per_s=50.0, account_burst=2), SYSTEM_CLOCK)
    t0 = SYSTEM_CLOCK.monotonic()
    await asyncio.gather(*(gov.acquire(f"ka1000{i}") for i in range(7)))
    # 2 from the burst, 5 more at 50/s -> at least ~0.1 s
    assert SYSTEM_CLOCK.monotonic() - t0 >= 0.09


async def test_a_slow_api_id_does_not_block_others() -> None:
    gov = Governor(
        _rate(per_api={"ka10081": 2.0}, per_api_burst=1, account_per_s=1000.0), SYSTEM_CLOCK
    )
    await gov.acquire("ka10081")
    done: list[str] = []

    async def go(api_id: str) -> None:
        await gov.acquire(api_id)
        done.append(api_id)

    await asyncio.wait_for(asyncio.gather(go("ka10081"), go("ka10001")), timeout=5)
    assert done == ["ka10001", "ka10081"]


async def test_cancelled_waiter_is_skipped() -> None:
    gov = Governor(_rate(account_per_s=20.0, account_burst=1), SYSTEM_CLOCK)
    await gov.acquire("ka10001")
    t = asyncio.ensure_future(gov.acquire("ka10001"))
    await asyncio.sleep(0)
    t.cancel()
    await asyncio.wait_for(gov.acquire("ka10004"), timeout=2)
    assert t.cancelled()


async def test_order_trs_have_their_own_per_api_rate() -> None:
    # Live pacing: queries ~1/s per api-id, orders 5/s per api-id (facts sheet).
    clock = ManualClock()
    gov = Governor(
        GovernorSettings.from_rate(RateConfig(account_per_s=100.0, account_burst=100), "live"),
        clock,
    )
    for _ in range(5):
        await asyncio.wait_for(gov.acquire("kt10000", order=True), 0.1)
    for _ in range(2):
        await asyncio.wait_for(gov.acquire("ka10001"), 0.1)
    blocked = asyncio.ensure_future(gov.acquire("ka10001"))
    await asyncio.sleep(0.02)
    assert not blocked.done()  # third query within the same second waits for its bucket
    blocked.cancel()


async def test_an_account_wide_refusal_slows_every_api_id() -> None:
    # Code 1701 counts every request of the account: draining only the refused api-id's
    # bucket would let the others keep hammering.
    clock = ManualClock()
    gov = Governor(_rate(account_per_s=10.0, account_burst=5), clock)
    await asyncio.wait_for(gov.acquire("ka10001"), 0.1)
    gov.note_rate_limited("ka10001")
    await asyncio.wait_for(gov.acquire("ka10004"), 0.1)  # per api-id: others go on
    gov.note_rate_limited("ka10001", account_wide=True)
    blocked = asyncio.ensure_future(gov.acquire("ka10005"))
    await asyncio.sleep(0.02)
    assert not blocked.done()
    clock.advance(0.1)  # one account token refills
    await asyncio.wait_for(blocked, 1)
