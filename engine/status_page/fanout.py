"""Fan-out of encoded snapshots to the browsers watching, on the admin thread's loop.

Each browser has a queue of at most `depth` snapshots. Every snapshot is the whole state, so
a browser that has not taken the older one loses nothing by skipping it: a full queue drops
its oldest (counted in `skipped`). A browser that took none of the last `max_skips`
snapshots (its socket is not draining: a stuck tab, a dead link) is dropped: its stream is
cancelled and closed, and it reconnects when it can. The memory a browser can hold is
`depth` snapshots, plus what its socket buffers. Nothing here runs on the engine's loop:
the engine hands each snapshot over in one call (`publish`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

MAX_CLIENTS: Final = 16
DEPTH: Final = 2
MAX_SKIPS: Final = 20
"""At one snapshot a second, a browser that read nothing for about 20 s is dropped."""
RETRY_MS: Final = 2000
"""The browser's reconnect delay after a lost stream (EventSource's `retry`)."""


class Subscriber:
    """One browser's stream. `next` waits for the next snapshot; None once dropped."""

    def __init__(self, depth: int) -> None:
        self.queue: deque[bytes] = deque()
        self.depth = depth
        self.skipped = 0
        """Snapshots this browser never got (its queue was full)."""
        self.skip_run = 0
        """Snapshots in a row that found its queue full."""
        self.dropped = False
        self.why = ""
        """Why it was dropped: "slow" (it read none of the last max_skips), "closing"."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[object] | None = asyncio.current_task()

    def offer(self, payload: bytes) -> None:
        if len(self.queue) >= self.depth:
            self.queue.popleft()
            self.skipped += 1
            self.skip_run += 1
        else:
            self.skip_run = 0
        self.queue.append(payload)
        self._wake.set()

    async def next(self) -> bytes | None:
        """The oldest snapshot not yet taken, waiting for one; None when dropped."""
        while not self.queue and not self.dropped:
            self._wake.clear()
            await self._wake.wait()
        if self.dropped:
            return None
        return self.queue.popleft()

    def drop(self, why: str) -> None:
        """Stop this stream: `next` answers None, and the task serving it (blocked writing
        to a socket that does not drain) is cancelled."""
        self.dropped = True
        self.why = why
        self.queue.clear()
        self._wake.set()
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()


@dataclass
class FanoutStats:
    published: int = 0
    skipped: int = 0
    dropped: int = 0
    refused: int = 0
    """Browsers turned away: `max_clients` were watching."""


class Fanout:
    """The browsers watching, each with its bounded queue. All methods run on one loop (the
    admin thread's); `clients` may be read from any thread (one int)."""

    def __init__(
        self, *, max_clients: int = MAX_CLIENTS, depth: int = DEPTH, max_skips: int = MAX_SKIPS
    ) -> None:
        self.max_clients = max_clients
        self.depth = depth
        self.max_skips = max_skips
        self.subscribers: list[Subscriber] = []
        self.clients = 0
        self.last: bytes | None = None
        """The newest snapshot: what a browser that just came gets first."""
        self.stats = FanoutStats()

    def join(self) -> Subscriber | None:
        """A stream for the calling task (dropping it cancels that task); None when
        `max_clients` are watching already."""
        if len(self.subscribers) >= self.max_clients:
            self.stats.refused += 1
            return None
        sub = Subscriber(self.depth)
        if self.last is not None:
            sub.offer(self.last)
        self.subscribers.append(sub)
        self.clients = len(self.subscribers)
        return sub

    def leave(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)
            self.clients = len(self.subscribers)
            if not self.subscribers:
                self.last = None  # no longer kept fresh: the next browser waits for a new one

    def publish(self, payload: bytes) -> None:
        """Offer `payload` to every browser: O(browsers), no copy, no wait."""
        self.last = payload if self.subscribers else None
        self.stats.published += 1
        slow = []
        for sub in self.subscribers:
            before = sub.skipped
            sub.offer(payload)
            self.stats.skipped += sub.skipped - before
            if sub.skip_run >= self.max_skips:
                slow.append(sub)
        for sub in slow:
            self.stats.dropped += 1
            self.leave(sub)
            sub.drop("slow")

    def close(self) -> None:
        """Drop every stream (the endpoint is closing)."""
        for sub in list(self.subscribers):
            self.leave(sub)
            sub.drop("closing")


async def stream(
    request: web.Request, fanout: Fanout, *, on_join: Callable[[], None] | None = None
) -> web.StreamResponse:
    """Serve one browser's Server-Sent Events from `fanout` until it goes or is dropped
    (503 when `max_clients` watch already). `on_join` runs once it is subscribed (the page
    asks the engine for a fresh snapshot there)."""
    sub = fanout.join()
    if sub is None:
        return web.Response(status=503, text=f"{fanout.max_clients} browsers watch already")
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        if on_join is not None:
            on_join()
        while (payload := await sub.next()) is not None:
            await response.write(b"data: " + payload + b"\n\n")
        return response
    except (ConnectionResetError, asyncio.CancelledError):
        # The browser went, or it was dropped for not reading: its stream ends here.
        if sub.dropped:
            if sub.why == "slow":
                log.info("status_page_client_dropped", why="not reading", skipped=sub.skipped)
            if request.transport is not None:
                request.transport.abort()  # what its socket buffers goes with it
        raise
    finally:
        fanout.leave(sub)
