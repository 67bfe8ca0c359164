"""The simulator's per-api-id request limit: a token bucket per api-id on the injected clock."""

from __future__ import annotations

from engine.clock import Clock


class TokenBucket:
    """A token bucket on the injected clock's monotonic time; `rate` tokens per second."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = clock.monotonic()

    def try_take(self) -> bool:
        """Take one token if there is one. Never blocks."""
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per api-id, sized from the state's current rate and burst."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, api_id: str, rate: float, burst: int) -> bool:
        """Take one request from `api_id`'s bucket; False means answer 429. Never blocks.

        A changed rate or burst starts that api-id's bucket afresh (full)."""
        bucket = self._buckets.get(api_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[api_id] = TokenBucket(self.clock, rate, burst)
        return bucket.try_take()

    def reset(self) -> None:
        self._buckets.clear()
