"""TTL cache of REST answers for reference data (per api-id TTLs from config).

Bounded (oldest entry evicted first). Callers must not mutate cached bodies. Account and
order calls are never offered to it (rest.py checks `ApiSpec.is_account_or_order`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from engine.clock import SYSTEM_CLOCK, Clock
from engine.kiwoom.protocol import RestResult

CacheKey = tuple[str, bytes, str | None]


class ResponseCache:
    """api-id -> TTL seconds; entries keyed by (api_id, request body bytes, cont key)."""

    def __init__(
        self, ttl_s: Mapping[str, float], clock: Clock = SYSTEM_CLOCK, max_entries: int = 1024
    ) -> None:
        self._ttl = {k: v for k, v in ttl_s.items() if v > 0}
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[CacheKey, tuple[float, RestResult]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def enabled(self, api_id: str) -> bool:
        return api_id in self._ttl

    def get(self, key: CacheKey) -> RestResult | None:
        """The cached answer, or None if absent or expired."""
        hit = self._entries.get(key)
        if hit is None:
            self.misses += 1
            return None
        expires, result = hit
        if self._clock.monotonic() >= expires:
            del self._entries[key]
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, key: CacheKey, result: RestResult) -> None:
        ttl = self._ttl.get(key[0])
        if ttl is None:
            return
        self._entries[key] = (self._clock.monotonic() + ttl, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
