"""The mirror's topics and payloads, without a broker: every event type has a route and a
documented schema, ints stay ints, and commands are parsed strictly."""

from __future__ import annotations

import dataclasses
import re
import typing
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from engine import events as ev
from engine.clock import KST
from engine.mirror_schema import (
    ENVELOPE,
    QOS_ACCOUNT,
    QOS_MARKET,
    ROUTES,
    SCHEMA_VERSION,
    CommandRejected,
    Topics,
    encode_event,
    encode_snapshot,
    encode_status,
    parse_command,
    topic_level,
)

README = Path(__file__).resolve().parents[2] / "README.md"

TRADE = ev.Trade(
    symbol="005930",
    exchange=ev.Exchange.KRX,
    time=93005,
    price=70_000,
    qty=-12,
    cum_volume=12_345_678_901,
    change=-500,
    best_ask=70_100,
    best_bid=70_000,
    open=70_500,
    high=71_000,
    low=69_900,
    session=ev.MarketSession.REGULAR,
    ts_recv=1_700_000_000_123_456_789,
    seq=42,
)


def test_every_event_type_has_a_route_and_account_events_go_at_qos_1() -> None:
    assert set(ROUTES) == set(typing.get_args(ev.Event))
    for cls, route in ROUTES.items():
        want = QOS_ACCOUNT if cls in ev.ACCOUNT_EVENTS else QOS_MARKET
        assert route.qos == want, cls
    names = [r.name for r in ROUTES.values()]
    assert len(names) == len(set(names))


def test_a_trade_payload_is_the_envelope_then_every_field_with_ints_kept() -> None:
    topics = Topics("kiwoom/5012345610")
    route = ROUTES[ev.Trade]
    assert topics.of(route, TRADE) == "kiwoom/5012345610/md/trade/005930"
    body = orjson.loads(encode_event(route, TRADE, 7))
    assert body == {
        "v": SCHEMA_VERSION,
        "type": "trade",
        "seq": 7,
        "ts_recv": 1_700_000_000_123_456_789,
        "bus_seq": 42,
        "symbol": "005930",
        "exchange": "KRX",
        "time": 93005,
        "price": 70_000,
        "qty": -12,
        "cum_volume": 12_345_678_901,
        "change": -500,
        "best_ask": 70_100,
        "best_bid": 70_000,
        "open": 70_500,
        "high": 71_000,
        "low": 69_900,
        "session": "regular",
    }
    assert all(type(body[k]) is int for k in ("price", "qty", "cum_volume", "ts_recv"))
    assert list(body)[: len(ENVELOPE)] == list(ENVELOPE)


def test_books_bars_orders_and_generic_realtime_payloads() -> None:
    topics = Topics("p")
    book = ev.OrderBook(
        "005930", ev.Exchange.NXT, 90000, ((70_100, 5), (70_200, 0)), ((70_000, 3),), 5, 3
    )
    assert topics.of(ROUTES[ev.OrderBook], book) == "p/md/quote/005930"
    body = orjson.loads(encode_event(ROUTES[ev.OrderBook], book, 1))
    assert body["type"] == "book"
    assert body["asks"] == [[70_100, 5], [70_200, 0]]

    bar = ev.Bar("005930", "1m", datetime(2026, 1, 5, 9, 1, tzinfo=KST), 1, 3, 1, 2, 10)
    assert topics.of(ROUTES[ev.Bar], bar) == "p/md/bar/005930/1m"
    assert orjson.loads(encode_event(ROUTES[ev.Bar], bar, 1))["start"] == (
        "2026-01-05T09:01:00+09:00"
    )

    upd = ev.OrderUpdate(
        "c-1/x#", "s", "005930", ev.Side.BUY, 3, 70_000, ev.OrderState.FILLED,
        ev.OrderState.ACCEPTED, "0000123", 3, 70_000, fill_amount=210_000,
    )  # fmt: skip
    assert topics.of(ROUTES[ev.OrderUpdate], upd) == "p/order/c-1_x_"
    body = orjson.loads(encode_event(ROUTES[ev.OrderUpdate], upd, 3))
    assert (body["state"], body["prev_state"], body["fill_amount"]) == (
        "filled",
        "accepted",
        210_000,
    )

    raw = ev.RealtimeGeneric("0A", "주식기세", "", {"10": "+100", "x": 1})
    assert topics.of(ROUTES[ev.RealtimeGeneric], raw) == "p/md/other/0A/_"
    body = orjson.loads(encode_event(ROUTES[ev.RealtimeGeneric], raw, 1))
    assert (body["type"], body["realtime_type"], body["values"]) == ("realtime", "0A", raw.values)


def _reference_payload(event: object, seq: int) -> dict[str, object]:
    """What a payload must hold, spelled out the slow way: the envelope, then every field but
    the bus's own two under its payload key."""
    route = ROUTES[type(event)]
    names = [f.name for f in dataclasses.fields(event) if f.name not in ("seq", "ts_recv")]  # type: ignore[arg-type]
    body: dict[str, object] = {
        "v": SCHEMA_VERSION,
        "type": route.name,
        "seq": seq,
        "ts_recv": event.ts_recv,  # type: ignore[attr-defined]
        "bus_seq": event.seq,  # type: ignore[attr-defined]
    }
    body.update(zip(route.keys, (getattr(event, n) for n in names), strict=True))
    return body


@pytest.mark.parametrize(
    "event",
    [
        TRADE,
        ev.Trade('00"5\\9\n30', ev.Exchange.KRX, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
        ev.Quote("005930", ev.Exchange.SOR, 70_100, 70_000, ts_recv=5, seq=6),
        ev.Fill(None, "s", "0000123", "f1", "005930", ev.Side.SELL, 3, 70_000, 15, 441, 7, 8),
        ev.RealtimeGeneric("0A", "주식기세", "005930", {"10": "+100", "d": {1, 2}}),
    ],
    ids=["trade", "escaped-symbol", "quote", "fill", "generic-with-odd-values"],
)
def test_the_generated_encoder_writes_what_the_fields_hold(event: ev.Event) -> None:
    """Each event type's encoder is generated source (mirror_schema._encoder): it must write
    exactly the reference payload, in order, for strings that need escaping and for values
    JSON has no word for (their text)."""
    got = orjson.loads(encode_event(ROUTES[type(event)], event, 9))
    want = orjson.loads(orjson.dumps(_reference_payload(event, 9), default=str))
    assert got == want
    assert list(got) == list(want)


def test_topic_levels_never_carry_wildcards_or_separators() -> None:
    assert topic_level("a/b+c#d\0") == "a_b_c_d_"
    assert topic_level("") == "_"
    assert topic_level("005930") == "005930"


def test_snapshot_and_status_payloads() -> None:
    snap = orjson.loads(encode_snapshot("positions", {"cash": 10, "type": "no", "v": 9}, 4, 5))
    assert snap == {"v": SCHEMA_VERSION, "type": "positions", "seq": 4, "ts_recv": 5, "cash": 10}
    status = orjson.loads(encode_status("offline", "lost", 2, 9, started_ns=1, connection=3))
    assert status == {
        "v": SCHEMA_VERSION, "type": "status", "seq": 2, "ts_recv": 9, "state": "offline",
        "reason": "lost", "started_ns": 1, "connection": 3,
    }  # fmt: skip


def readme_mirror_rows() -> dict[str, str]:
    """README.md's payload table rows, by the `type` in their first cell."""
    text = README.read_text()
    start = text.index("## MQTT mirror")
    section = text[start : text.index("\n## ", start + 1)]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `(\w+)` \|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_the_readme_documents_every_payload_type_with_every_field() -> None:
    rows = readme_mirror_rows()
    for route in ROUTES.values():
        assert route.name in rows, f"README.md: no row for payload type {route.name}"
        for key in route.keys:
            assert f"`{key}`" in rows[route.name], f"README.md: {route.name} lacks `{key}`"
    for retained in ("status", "positions", "risk_state"):
        assert retained in rows


@pytest.mark.parametrize(
    ("payload", "retained", "code"),
    [
        (b"halt", False, "NOT_JSON"),
        (b"\xff\xfe", False, "NOT_JSON"),
        (b"[1]", False, "NOT_OBJECT"),
        (b'"x"', False, "NOT_OBJECT"),
        (b'{"reason": "x", "qty": 1}', False, "UNKNOWN_FIELD"),
        (b'{"reason": 5}', False, "BAD_REASON"),
        (b'{"reason": ""}', False, "BAD_REASON"),
        (b'{"reason": "a\\nb"}', False, "BAD_REASON"),
        (orjson.dumps({"reason": "x" * 201}), False, "BAD_REASON"),
        (b" " * 2000, False, "TOO_LARGE"),
        (b"{}", True, "RETAINED"),
        # `mosquitto_pub -r -n` clearing a retained command reaches live subscribers so.
        (b"", False, "EMPTY"),
        (b"  ", False, "EMPTY"),
    ],
)
def test_malformed_commands_are_rejected_with_a_code(
    payload: bytes, retained: bool, code: str
) -> None:
    with pytest.raises(CommandRejected) as exc:
        parse_command(payload, retained=retained)
    assert exc.value.code == code


def test_well_formed_commands() -> None:
    assert parse_command(b"{}", retained=False) == {"reason": "mqtt"}
    assert parse_command(b'{"reason": "risk desk"}', retained=False) == {"reason": "risk desk"}


def test_no_payload_field_can_carry_a_credential() -> None:
    secret_words = ("token", "appkey", "secretkey", "password", "secret")
    for route in ROUTES.values():
        for key in route.keys:
            assert not any(w in key for w in secret_words), (route.name, key)
