"""`kiwoom-engine watch TYPE ITEM... [--count N]`: print normalised realtime events.

Issues a token through the REST client, opens the WebSocket, registers TYPE for the ITEMs and
writes one JSON object per event and line (orjson) until `count` events.
The token is never revoked here: Kiwoom hands the same one to every client of the app key,
a daemon running beside this included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import Any, TextIO

import orjson

from engine.config import Config
from engine.events import Disconnected, Event, Reconnected
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket


def event_json(ev: Event) -> bytes:
    """One event as a JSON object: {"event": "Trade", <its fields>}."""
    body: dict[str, Any] = {"event": type(ev).__name__}
    for f in dataclasses.fields(ev):
        body[f.name] = getattr(ev, f.name)
    return orjson.dumps(body)


async def watch(
    config: Config,
    rt_type: str,
    items: list[str],
    count: int | None,
    out: TextIO = sys.stdout,
) -> int:
    """Stream events of `rt_type` for `items` to `out`; returns 0 once `count` market or
    account events were written (None: run until cancelled). Connection events are printed
    too but do not count.

    Raises like the REST client (the CLI maps them to its exit codes): LoginError or
    RegistrationError when Kiwoom refuses, TransportError when it cannot be reached,
    BrokenPipeError when `out` was closed by its reader.
    """
    done = asyncio.Event()
    seen = 0
    broken: list[BrokenPipeError] = []

    def on_event(ev: Event) -> None:
        nonlocal seen
        if done.is_set():
            return
        try:
            out.write(event_json(ev).decode())
            out.write("\n")
        except BrokenPipeError as exc:  # the reader (`| head`) is gone: stop, do not spin
            broken.append(exc)
            done.set()
            return
        if isinstance(ev, Disconnected | Reconnected):
            return
        seen += 1
        if count is not None and seen >= count:
            done.set()

    async with KiwoomRest(config, revoke_on_close=False) as rest:
        ws = KiwoomWebSocket(
            config.ws_url,
            rest.tokens.token,
            rest.tokens.invalidate,
            on_event=on_event,
            connect_timeout_s=config.kiwoom.connect_timeout_s,
        )
        try:
            await ws.start()
            await ws.subscribe([rt_type], items)
            await done.wait()
        finally:
            await ws.close()
    if broken:
        raise broken[0]
    out.flush()
    return 0
