"""The realtime feed's states, and when silence makes a live feed stale or dead.

Pure: the caller reports each frame's arrival and asks for a verdict, both with readings of
its clock. Kiwoom PINGs an idle connection, so a feed that has heard nothing, not even a
PING, for a little over two PING intervals has a frozen server or a broken path behind it,
while the TCP connection may look healthy for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class FeedState(StrEnum):
    """Where the realtime connection is in its life."""

    DOWN = "down"
    """No session: not started yet, or waiting out the backoff before a reconnect."""
    CONNECTING = "connecting"
    """Opening the socket, logging in, restoring registrations."""
    LIVE = "live"
    """Logged in, every registration restored, frames arriving."""
    STALE = "stale"
    """Logged in, but silent for `stale_after_s`: market data and order notices may be late."""
    CLOSED = "closed"
    """`close()` was called; nothing reconnects."""


class Verdict(Enum):
    OK = "ok"
    STALE = "stale"
    """Silent for `stale_after_s`: reported once per silent spell."""
    DEAD = "dead"
    """Silent for `stale_after_s + grace_s`: replace the connection."""


@dataclass(slots=True)
class Liveness:
    """Silence tracking for one session. `stale` holds from the STALE verdict until the next
    frame; `dead` from the DEAD verdict on (the session is then replaced, never revived)."""

    stale_after_s: float
    grace_s: float
    last_rx: float
    stale: bool = False
    dead: bool = False

    def heard(self, now: float) -> float | None:
        """A frame arrived at `now`. Returns the silence it ended when that silence had made
        the session stale, else None."""
        silent = now - self.last_rx
        self.last_rx = now
        if self.stale:
            self.stale = False
            return silent
        return None

    def check(self, now: float) -> Verdict:
        """The verdict at `now`; STALE is returned once per silent spell."""
        silent = now - self.last_rx
        if silent >= self.stale_after_s + self.grace_s:
            self.dead = True
            return Verdict.DEAD
        if not self.stale and silent >= self.stale_after_s:
            self.stale = True
            return Verdict.STALE
        return Verdict.OK

    def next_check_in(self, now: float) -> float:
        """Seconds until the verdict can change if no frame arrives meanwhile."""
        limit = self.stale_after_s + (self.grace_s if self.stale else 0.0)
        return max(0.0, self.last_rx + limit - now)
