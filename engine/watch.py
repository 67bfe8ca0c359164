"""`kiwoom-engine watch TYPE ITEM... [--count N]`: print normalised realtime events.

Issues a token through engine.kiwoom.auth.TokenManager, opens the WebSocket, registers TYPE for
the ITEMs and writes one JSON object per event and line (orjson) until `count` events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import Any, TextIO

import aiohttp
import orjson
import structlog

from engine.config import Config
from engine.events import Disconnected, Event, Reconnected
from engine.kiwoom.auth import TokenManager
from engine.kiwoom.errors import KiwoomError, TransportError
from engine.kiwoom.ws import KiwoomWebSocket

log = structlog.get_logger(__name__)


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
    """Stream events of `rt_type` for `items` to `out`; return an exit status.

    0 after `count` market/account events (None: run until cancelled), 2 when the login or the
    registration is refused, 1 on a transport failure. Connection events are printed too but
    do not count.
    """
    kc = config.kiwoom
    if kc.appkey is None or kc.secretkey is None:
        print("watch: no app key / secret key configured", file=sys.stderr)
        return 2
    done = asyncio.Event()
    seen = 0

    def on_event(ev: Event) -> None:
        nonlocal seen
        if done.is_set():
            return
        out.write(event_json(ev).decode())
        out.write("\n")
        if isinstance(ev, Disconnected | Reconnected):
            return
        seen += 1
        if count is not None and seen >= count:
            done.set()

    async with aiohttp.ClientSession() as session:
        tokens = TokenManager(
            session,
            config.rest_url,
            kc.appkey,
            kc.secretkey,
            refresh_margin_s=kc.token_refresh_margin_s,
            request_timeout_s=kc.request_timeout_s,
        )
        ws = KiwoomWebSocket(
            config.ws_url,
            tokens.token,
            tokens.invalidate,
            on_event=on_event,
            connect_timeout_s=kc.connect_timeout_s,
        )
        try:
            await ws.start()
            await ws.subscribe([rt_type], items)
            await done.wait()
        except KiwoomError as exc:
            print(f"watch: {exc}", file=sys.stderr)
            return 1 if isinstance(exc, TransportError) else 2
        finally:
            await ws.close()
            out.flush()
    return 0
