"""`kiwoom-engine watch TYPE ITEM... [--count N]`: print normalised realtime events;
`watch --condition NAME`: the hits of a realtime condition search; `conditions`: the list.

Issues a token through the REST client, opens the WebSocket, registers TYPE for the ITEMs (or
starts the realtime search) and writes one JSON object per event and line (orjson) until
`count` events, or until stopped.
The token is never revoked here: Kiwoom hands the same one to every client of the app key,
a daemon running beside this included.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import orjson

from engine.config import Config
from engine.events import ConditionHit, Event, FeedStatus
from engine.kiwoom.errors import ValidationError
from engine.kiwoom.fids import ITEMLESS_TYPES
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.kiwoom.wsproto import resolve_condition
from engine.terminal import inert_json, one_line


def event_json(ev: Event) -> bytes:
    """One event as a JSON object: {"event": "Trade", <its fields>}."""
    body: dict[str, Any] = {"event": type(ev).__name__}
    for f in dataclasses.fields(ev):
        body[f.name] = getattr(ev, f.name)
    return orjson.dumps(body)


def check_request(rt_type: str, items: Sequence[str], count: int | None) -> None:
    """Raise ValidationError for a watch that could never print an event: a blank TYPE or
    ITEM, a market type without items (the REG would carry nothing and the watch would wait
    forever), or a count below 1. The account types (00, 04) and the session notices (0s) take
    no item."""
    if not rt_type.strip():
        raise ValidationError("watch: TYPE is empty (e.g. 0B, 0D, 00)")
    if any(not item.strip() for item in items):
        raise ValidationError(f"watch {rt_type}: an ITEM is empty")
    if not items and rt_type not in ITEMLESS_TYPES:
        raise ValidationError(
            f"watch {rt_type}: give at least one ITEM (e.g. 005930); "
            f"only the types {', '.join(sorted(ITEMLESS_TYPES))} take none"
        )
    if count is not None and count < 1:
        raise ValidationError(f"watch: --count must be at least 1, got {count}")


async def watch(
    config: Config,
    rt_type: str,
    items: list[str],
    count: int | None,
    out: TextIO = sys.stdout,
    *,
    stop: asyncio.Event | None = None,
) -> int:
    """Stream events of `rt_type` for `items` to `out`; returns 0 once `count` market or
    account events were written (None: run until stopped), or once `stop` is set (the CLI
    sets it on SIGTERM). Events about the feed itself (Disconnected, Reconnected, FeedStale,
    FeedResumed) are printed too but do not count.

    Raises ValidationError before connecting when the request could never print anything
    (see `check_request`), and else like the REST client (the CLI maps them to its exit
    codes): LoginError or RegistrationError when Kiwoom refuses, TransportError when it cannot
    be reached, BrokenPipeError when `out` was closed by its reader.
    """
    check_request(rt_type, items, count)

    async def begin(ws: KiwoomWebSocket) -> None:
        await ws.subscribe([rt_type], items)

    return await _run(_stream(config, begin, None, count, out), stop)


async def watch_condition(
    config: Config,
    condition: str,
    count: int | None,
    out: TextIO = sys.stdout,
    *,
    stop: asyncio.Event | None = None,
) -> int:
    """Stream the hits of the realtime condition search `condition` (its name, or "seq:N")
    to `out`: first an `entered` hit per current member, then every change, then after a
    reconnect what changed meanwhile. Events about the feed are printed and not counted.

    Raises ValidationError for a count below 1 or a condition the login does not have (the
    message lists those it has), ConditionError when Kiwoom refuses the search, and else as
    `watch`."""
    if count is not None and count < 1:
        raise ValidationError(f"watch: --count must be at least 1, got {count}")
    if not condition.strip():
        raise ValidationError("watch --condition: the name is empty")

    async def begin(ws: KiwoomWebSocket) -> None:
        try:
            seq, _name = resolve_condition(await ws.conditions(), condition)
        except ValueError as exc:
            raise ValidationError(f"watch --condition: {exc}") from None
        await ws.search(seq, realtime=True)

    def shown(ev: Event) -> bool:
        return isinstance(ev, ConditionHit | FeedStatus)

    return await _run(_stream(config, begin, shown, count, out), stop)


async def _login_conditions(config: Config) -> list[tuple[str, str]]:
    """Log in, and the login's (seq, name) conditions in the server's order."""
    async with KiwoomRest.from_config(config, revoke_on_close=False) as rest:
        ws = KiwoomWebSocket.from_config(config, rest, lambda _e: None)
        try:
            await ws.start()
            return await ws.conditions()
        finally:
            await ws.close()


async def conditions(config: Config, out: TextIO = sys.stdout, *, as_json: bool = False) -> int:
    """`kiwoom-engine conditions`: the login's conditions, one "seq<TAB>name" line each (JSON
    lines {"seq":, "name":} with `as_json`), in the server's order."""
    rows = await _login_conditions(config)
    for seq, name in rows:
        if as_json:
            out.write(inert_json(orjson.dumps({"seq": seq, "name": name})))
        else:
            out.write(f"{seq}\t{one_line(name)}")
        out.write("\n")
    out.flush()
    return 0


async def _run(stream: Awaitable[int], stop: asyncio.Event | None) -> int:
    session = asyncio.ensure_future(stream)
    waiters: set[asyncio.Future[Any]] = {session}
    stopping = asyncio.create_task(stop.wait()) if stop is not None else None
    if stopping is not None:
        waiters.add(stopping)
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopping is not None:
            stopping.cancel()
        if not session.done():  # stopped (or we were cancelled): close the feed on the way out
            session.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session
    if session.cancelled():
        return 0
    return session.result()


async def _stream(
    config: Config,
    begin: Callable[[KiwoomWebSocket], Awaitable[None]],
    shown: Callable[[Event], bool] | None,
    count: int | None,
    out: TextIO,
) -> int:
    done = asyncio.Event()
    seen = 0
    broken: list[BrokenPipeError] = []

    def on_event(ev: Event) -> None:
        nonlocal seen
        if done.is_set() or (shown is not None and not shown(ev)):
            return
        try:
            out.write(inert_json(event_json(ev)))
            out.write("\n")
        except BrokenPipeError as exc:  # the reader (`| head`) is gone: stop, do not spin
            broken.append(exc)
            done.set()
            return
        if isinstance(ev, FeedStatus):
            return
        seen += 1
        if count is not None and seen >= count:
            done.set()

    async with KiwoomRest.from_config(config, revoke_on_close=False) as rest:
        ws = KiwoomWebSocket.from_config(config, rest, on_event)
        try:
            await ws.start()
            await begin(ws)
            await done.wait()
        finally:
            await ws.close()
    if broken:
        raise broken[0]
    out.flush()
    return 0


async def check_conditions_online(config: Config, refs: list[tuple[str, str]]) -> list[str]:
    """`check --online`: log in and resolve each (key, condition reference) against the
    login's list. Returns the problems, each naming its key: a condition the login lacks (or
    a name several share), and the distinct conditions past `kiwoom.max_realtime_conditions`
    (counted by seq). In mode sim without `kiwoom.rest_url`, the built-in simulator is
    started for it on a free port, as `run` would start it. Raises like `conditions`."""
    if config.kiwoom.mode == "sim" and not config.kiwoom.rest_url:
        from engine.sim.simulator import Simulator

        async with Simulator(dataclasses.replace(config.sim, port=0)) as sim:
            kiwoom = dataclasses.replace(config.kiwoom, rest_url=sim.rest_url, ws_url=sim.ws_url)
            return await check_conditions_online(dataclasses.replace(config, kiwoom=kiwoom), refs)
    rows = await _login_conditions(config)
    problems: list[str] = []
    seqs: dict[str, None] = {}
    limit = config.kiwoom.max_realtime_conditions
    for key, ref in refs:
        try:
            seq, _name = resolve_condition(rows, ref)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        if seq not in seqs:
            seqs[seq] = None
            if len(seqs) == limit + 1:
                problems.append(
                    f"{key}: {ref!r} is realtime condition {limit + 1}; "
                    f"kiwoom.max_realtime_conditions allows {limit}"
                )
    return problems
