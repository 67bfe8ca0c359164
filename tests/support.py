"""Helpers shared by the test packages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(cond: Callable[[], bool], within_s: float = 3.0) -> None:
    """Poll `cond` (state owned by the client and the simulator) until it holds; fail with
    TimeoutError after `within_s`."""
    async with asyncio.timeout(within_s):
        while not cond():  # noqa: ASYNC110 - polling shared state is the point here
            await asyncio.sleep(0.01)
