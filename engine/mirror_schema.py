"""What the MQTT mirror publishes: topics, QoS and JSON payloads per event type (schema
version 1), and the commands it accepts. Pure functions and tables, no I/O: engine/mirror.py
moves the bytes, and README.md "MQTT mirror" documents every payload listed here.

Every payload is one JSON object (orjson) that starts with the envelope:
`v` (SCHEMA_VERSION), `type`, `seq` (per topic: 1, 2, ... since the daemon started),
`ts_recv` (ns since the epoch on the engine's clock) and, for events, `bus_seq` (the bus's
sequence, shared with the journal). The event's own fields follow, with their names; money
and quantities stay ints.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import orjson

from engine import events as ev

SCHEMA_VERSION = 1

QOS_MARKET = 0
"""Market data: the next trade makes up for a lost one, and the broker must not hold the
daemon back for it."""
QOS_ACCOUNT = 1
"""Orders, fills, balances, risk and engine events: acknowledged by the broker, spooled across
reconnections."""

ENVELOPE = ("v", "type", "seq", "ts_recv", "bus_seq")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one event type goes and how it is written."""

    event: type
    name: str
    """The payload's `type`."""
    qos: int
    path: tuple[str, ...]
    """Topic levels after the prefix; "{attr}" is the event's attribute of that name."""
    keys: tuple[str, ...]
    """Payload keys of the event's fields, in order."""
    encode: Callable[[Any, int], bytes]
    """The payload of an event as the `seq`-th message of its topic (see `encode_event`)."""
    attrs: tuple[str, ...]
    """The attributes named in `path`, in order."""
    args: Callable[[Any], Any]
    """The event's values of `attrs`: one value, or a tuple of them."""


_RENAMED: dict[tuple[type, str], str] = {
    (ev.RealtimeGeneric, "type"): "realtime_type",
    (ev.RealtimeEvent, "type"): "realtime_type",
}
"""Event fields whose name is an envelope key."""


def _fallback(obj: Any) -> Any:
    # A broker value of a type JSON has no word for (only RealtimeGeneric carries such):
    # its text beats losing the event.
    return str(obj)


def _route(event: type, name: str, qos: int, *path: str) -> Route:
    names = tuple(f.name for f in fields(event) if f.name not in ("seq", "ts_recv"))
    keys = tuple(_RENAMED.get((event, n), n) for n in names)
    assert not set(keys) & set(ENVELOPE), (event, keys)
    attrs = tuple(p[1:-1] for p in path if p.startswith("{"))
    args: Callable[[Any], Any] = operator.attrgetter(*attrs) if attrs else (lambda e: ())
    encode = _encoder(name, names, keys)
    return Route(event, name, qos, path, keys, encode, attrs, args)


def _encoder(
    name: str, names: tuple[str, ...], keys: tuple[str, ...]
) -> Callable[[Any, int], bytes]:
    """`encode_event` for one event type, generated as dataclasses generates `__init__`.

    Why generated: the payload is the mirror's largest cost per market event, and a dict
    display with constant keys is the cheapest dict CPython builds: a trade's payload in
    about half the time of filling a dict from its fields (bench/mirror.py, "encode":
    760 against 1424 ns).
    Only identifiers (the dataclass's field names) and `repr`s of strings enter the source.
    """
    assert all(n.isidentifier() for n in names), names
    items = "".join(f", {k!r}: e.{n}" for k, n in zip(keys, names, strict=True))
    source = (
        f"lambda e, seq: dumps({{'v': {SCHEMA_VERSION}, 'type': {name!r}, 'seq': seq, "
        f"'ts_recv': e.ts_recv, 'bus_seq': e.seq{items}}}, default=fallback)"
    )
    encode: Callable[[Any, int], bytes] = eval(
        source, {"dumps": orjson.dumps, "fallback": _fallback}
    )
    return encode


ROUTES: Mapping[type, Route] = {
    r.event: r
    for r in (
        _route(ev.Trade, "trade", QOS_MARKET, "md", "trade", "{symbol}"),
        _route(ev.Quote, "quote", QOS_MARKET, "md", "quote", "{symbol}"),
        _route(ev.OrderBook, "book", QOS_MARKET, "md", "quote", "{symbol}"),
        _route(ev.Bar, "bar", QOS_MARKET, "md", "bar", "{symbol}", "{interval}"),
        _route(ev.RealtimeGeneric, "realtime", QOS_MARKET, "md", "other", "{type}", "{item}"),
        _route(ev.RealtimeEvent, "realtime_event", QOS_MARKET, "md", "other", "{type}", "{item}"),
        # Issue 15's market state; the names an HTS condition may hold (/, +, #) are in the
        # payload, the topic has the seq only.
        _route(ev.ConditionHit, "condition", QOS_MARKET, "condition", "{condition_seq}"),
        _route(ev.ViEvent, "vi", QOS_MARKET, "md", "vi", "{symbol}"),
        # Retained at QoS 1, one topic per venue: engine/mirror.py publishes it apart from the
        # market lanes (not an account event: the bus may coalesce it like market data).
        _route(ev.SessionChanged, "session", QOS_MARKET, "session", "{exchange}"),
        _route(ev.StockInfo, "stock_info", QOS_MARKET, "md", "info", "{symbol}"),
        _route(ev.OrderUpdate, "order", QOS_ACCOUNT, "order", "{client_id}"),
        _route(ev.Fill, "fill", QOS_ACCOUNT, "fill"),
        _route(ev.Balance, "balance", QOS_ACCOUNT, "balance", "{symbol}"),
        _route(ev.OrderExecution, "execution", QOS_ACCOUNT, "execution"),
        _route(ev.RiskRejected, "risk_rejected", QOS_ACCOUNT, "risk"),
        _route(ev.TradingStateChanged, "trading_state", QOS_ACCOUNT, "risk"),
        _route(ev.StrategyDisabled, "strategy_disabled", QOS_ACCOUNT, "engine", "strategy"),
        _route(ev.Reconciled, "reconciled", QOS_ACCOUNT, "engine", "reconcile"),
        _route(ev.PositionDivergence, "position_divergence", QOS_ACCOUNT, "engine", "reconcile"),
        _route(ev.Disconnected, "feed_disconnected", QOS_ACCOUNT, "engine", "feed"),
        _route(ev.Reconnected, "feed_reconnected", QOS_ACCOUNT, "engine", "feed"),
        _route(ev.FeedStale, "feed_stale", QOS_ACCOUNT, "engine", "feed"),
        _route(ev.FeedResumed, "feed_resumed", QOS_ACCOUNT, "engine", "feed"),
    )
}

_LEVEL_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


def topic_level(value: object) -> str:
    """`value` as one topic level: never a wildcard, a separator or empty."""
    return str(value).translate(_LEVEL_UNSAFE) or "_"


class Topics:
    """Every topic under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.status = f"{prefix}/status"
        self.positions = f"{prefix}/positions"
        self.risk_state = f"{prefix}/risk_state"
        self.session = f"{prefix}/session"
        """Every venue's last session notice in one retained message (beside `session/<venue>`)."""
        self.commands = {f"{prefix}/cmd/{name}": name for name in COMMANDS}

    def of(self, route: Route, event: Any) -> str:
        """The topic `event` goes to under `route`. Built each time: the mirror keeps the
        market-data topics it has built (engine/mirror.py `_Lane`)."""
        args = route.args(event)
        filled = iter(args if len(route.attrs) > 1 else (args,))
        levels = (topic_level(next(filled)) if p.startswith("{") else p for p in route.path)
        return "/".join((self.prefix, *levels))


def encode_event(route: Route, event: Any, seq: int) -> bytes:
    """The payload of `event` as the `seq`-th message of its topic: the envelope (ENVELOPE),
    then `route.keys` with the event's values."""
    return route.encode(event, seq)


def encode_snapshot(name: str, data: Mapping[str, Any], seq: int, ts_recv: int) -> bytes:
    """A retained snapshot (`positions`, `risk_state`): the envelope, then `data`'s keys."""
    payload = {k: v for k, v in data.items() if k not in ENVELOPE}
    return orjson.dumps(
        {"v": SCHEMA_VERSION, "type": name, "seq": seq, "ts_recv": ts_recv, **payload},
        default=_fallback,
    )


def encode_status(
    state: str, reason: str, seq: int, ts_recv: int, *, started_ns: int, connection: int
) -> bytes:
    """The retained `status`: "online" while connected, "offline" (the last will, or a clean
    stop). `started_ns` tells a restarted daemon (whose `seq`s start again at 1) apart."""
    return orjson.dumps(
        {
            "v": SCHEMA_VERSION,
            "type": "status",
            "seq": seq,
            "ts_recv": ts_recv,
            "state": state,
            "reason": reason,
            "started_ns": started_ns,
            "connection": connection,
        }
    )


# --- commands ------------------------------------------------------------------------------

COMMANDS = ("halt", "resume")
MAX_COMMAND_BYTES = 1024
MAX_REASON_CHARS = 200


class CommandRejected(Exception):
    """A command that is not acted on; `code` says why (RETAINED, TOO_LARGE, NOT_JSON,
    NOT_OBJECT, UNKNOWN_FIELD, BAD_REASON)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def parse_command(payload: bytes, *, retained: bool) -> dict[str, Any]:
    """The arguments of a halt/resume command: `{"reason": str}` (default "mqtt").

    The payload is a JSON object with at most a `reason` (a printable string of 1 to 200
    characters); `{}` is reason "mqtt". A retained message is refused: the broker would replay
    it at every reconnection, halting the daemon again long after the operator meant it. An
    empty payload is refused: it is how a retained message is cleared (`mosquitto_pub -r -n`),
    and the broker forwards that to live subscribers without the retain flag.
    Raises CommandRejected.
    """
    if retained:
        raise CommandRejected("RETAINED")
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected("TOO_LARGE")
    if not payload.strip():
        raise CommandRejected("EMPTY")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise CommandRejected("NOT_JSON") from None
    if not isinstance(body, dict):
        raise CommandRejected("NOT_OBJECT")
    if set(body) - {"reason"}:
        raise CommandRejected("UNKNOWN_FIELD")
    reason = body.get("reason", "mqtt")
    if (
        not isinstance(reason, str)
        or not 0 < len(reason) <= MAX_REASON_CHARS
        or not reason.isprintable()
    ):
        raise CommandRejected("BAD_REASON")
    return {"reason": reason}
