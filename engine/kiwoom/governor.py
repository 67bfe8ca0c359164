"""Client-side pacing of REST calls: a token bucket per api-id plus one for the account.

Waiters are served by priority (orders before queries), FIFO within a priority. A waiter held
only by its own api-id's bucket does not block other api-ids. Time comes from the injected
Clock, and so does every wait (`Clock.sleep`): a simulated clock drives the pacing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections.abc import Callable

from engine.clock import SYSTEM_CLOCK, Clock
from engine.kiwoom.settings import GovernorSettings

ORDER_PRIORITY = 0
QUERY_PRIORITY = 1


class TokenBucket:
    """`rate` tokens per second, at most `burst` stored. Pure arithmetic on clock.monotonic()."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 (use math.inf for no limit)")
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if now > self._last:
            if math.isinf(self.rate):
                self._tokens = float(self.burst)
            else:
                self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def ready(self) -> bool:
        """True if a token is available now (does not take it)."""
        if math.isinf(self.rate):
            return True
        self._refill()
        return self._tokens >= 1.0

    def take(self) -> None:
        """Take one token (call after `ready()` said True)."""
        if not math.isinf(self.rate):
            self._tokens -= 1.0

    def wait_s(self) -> float:
        """Seconds until a token is available (0 if one is)."""
        if math.isinf(self.rate):
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def drain(self) -> None:
        """Empty the bucket: the server just said we were too fast."""
        if not math.isinf(self.rate):
            self._refill()
            self._tokens = min(self._tokens, 0.0)


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter for retry number `attempt` (1, 2, ...): a delay in
    [d/2, d] where d = min(max_s, base_s * 2**(attempt-1))."""
    d = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    return d / 2 + rand() * d / 2


class Governor:
    """Paces calls to the configured per-api-id and account-wide rates.

    `acquire()` blocks until the call may go; it never raises except CancelledError.
    """

    def __init__(self, rate: GovernorSettings, clock: Clock = SYSTEM_CLOCK) -> None:
        self._rate = rate
        self._clock = clock
        self._account = TokenBucket(rate.account_per_s, rate.account_burst, clock)
        self._apis: dict[str, TokenBucket] = {}
        self._waiters: list[tuple[int, int, str, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None

    def _bucket(self, api_id: str, order: bool = False) -> TokenBucket:
        """The api-id's bucket, created on first use with the order or the query rate."""
        b = self._apis.get(api_id)
        if b is None:
            r = self._rate
            default, burst = (
                (r.order_per_api_per_s, r.order_per_api_burst)
                if order
                else (r.per_api_per_s, r.per_api_burst)
            )
            b = TokenBucket(r.per_api.get(api_id, default), burst, self._clock)
            self._apis[api_id] = b
        return b

    def try_acquire(self, api_id: str, *, order: bool = False) -> bool:
        """Take a slot for `api_id` if one is free now and nobody queues ahead; never waits."""
        bucket = self._bucket(api_id, order)
        if not self._waiters and bucket.ready() and self._account.ready():
            bucket.take()
            self._account.take()
            return True
        return False

    async def acquire(self, api_id: str, *, order: bool = False) -> None:
        """Wait for a slot for `api_id`. Orders are served before queued queries."""
        if self.try_acquire(api_id, order=order):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        prio = ORDER_PRIORITY if order else QUERY_PRIORITY
        heapq.heappush(self._waiters, (prio, next(self._seq), api_id, fut))
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._run())
        await fut

    def note_rate_limited(self, api_id: str, *, account_wide: bool = False) -> None:
        """The server answered "too many requests" for `api_id`: slow its bucket down, and the
        account's too when the refusal was for the account-wide count (code 1701)."""
        self._bucket(api_id).drain()
        if account_wide:
            self._account.drain()

    def _serve(self) -> float | None:
        """Grant what can go now; return seconds until the next grant may be possible."""
        kept: list[tuple[int, int, str, asyncio.Future[None]]] = []
        next_wait: float | None = None
        while self._waiters:
            item = heapq.heappop(self._waiters)
            fut = item[3]
            if fut.done():  # cancelled waiter
                continue
            if not self._account.ready():
                kept.append(item)
                w = self._account.wait_s()
                next_wait = w if next_wait is None else min(next_wait, w)
                break
            bucket = self._bucket(item[2])
            if not bucket.ready():
                kept.append(item)
                w = bucket.wait_s()
                next_wait = w if next_wait is None else min(next_wait, w)
                continue
            bucket.take()
            self._account.take()
            fut.set_result(None)
        for item in kept:
            heapq.heappush(self._waiters, item)
        return next_wait

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            wait = self._serve()
            if not self._waiters:
                return
            if wait is None:
                await self._wake.wait()
                continue
            # Until a token refills (on the clock) or a new waiter arrives, whichever is first.
            refill = asyncio.ensure_future(self._clock.sleep(max(wait, 0.001)))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((refill, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                refill.cancel()
                woken.cancel()
