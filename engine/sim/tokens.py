"""The simulator's access tokens (au10001 / au10002): issue, validate, revoke, expire.

Expiry follows the injected Clock's KST wall time, so tests move it with OffsetClock or
ManualClock. Like live Kiwoom, asking again while a token is valid returns the same token.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.clock import KST, SYSTEM_CLOCK, Clock

EXPIRES_FMT = "%Y%m%d%H%M%S"


@dataclass(frozen=True)
class _Issued:
    token: str
    key: tuple[str, str]
    """(appkey, secretkey) it was issued to."""
    expires_at: datetime


class TokenStore:
    """In-memory token table. Not thread-safe; used from the simulator's event loop only."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, ttl_s: float = 64_800.0) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self._by_token: dict[str, _Issued] = {}
        self._by_key: dict[tuple[str, str], _Issued] = {}
        self.issued_count = 0
        """Distinct tokens minted so far (re-issues of a valid token do not count)."""
        self.history: deque[str] = deque(maxlen=1000)
        """The last tokens minted, valid or not: a harness searches logs for them."""

    def issue(self, appkey: str, secretkey: str) -> tuple[str, str]:
        """Return (token, expires_dt) for the key pair; the same token while it is still valid.

        expires_dt is ``yyyyMMddHHmmss`` in KST, as au10001 answers it.
        """
        now = self.clock.now()
        key = (appkey, secretkey)
        current = self._by_key.get(key)
        if current is not None:
            if current.expires_at > now:
                return current.token, _fmt(current.expires_at)
            del self._by_token[current.token]  # expired: replaced below, never valid again
        # Whole seconds, because the wire format cannot say more and clients compare against it.
        expires_at = (now + timedelta(seconds=self.ttl_s)).replace(microsecond=0)
        item = _Issued(secrets.token_urlsafe(48), key, expires_at)
        self._by_token[item.token] = item
        self._by_key[key] = item
        self.issued_count += 1
        self.history.append(item.token)
        return item.token, _fmt(expires_at)

    def is_valid(self, token: str) -> bool:
        """True when `token` was issued here, is not revoked and has not expired."""
        item = self._by_token.get(token)
        return item is not None and item.expires_at > self.clock.now()

    def revoke(self, token: str) -> bool:
        """Forget `token`. Returns False when it was unknown (or already revoked)."""
        item = self._by_token.pop(token, None)
        if item is None:
            return False
        if self._by_key.get(item.key) is item:
            del self._by_key[item.key]
        return True

    def expire_all(self) -> None:
        """Make every issued token invalid now (the next au10001 mints a new one)."""
        self._by_token.clear()
        self._by_key.clear()


def _fmt(at: datetime) -> str:
    return at.astimezone(KST).strftime(EXPIRES_FMT)
