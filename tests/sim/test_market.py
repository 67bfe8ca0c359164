"""MarketGenerator: determinism, KRX ticks and limits over many steps, wire-format entries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.clock import ManualClock
from engine.kiwoom.recorder import FrameRecorder
from engine.sim.market import FIDS_0B, FIDS_0D, MarketGenerator
from engine.sim.replay import play, replay_entries
from engine.sim.universe import Universe
from engine.trading.krx import is_on_tick, price_limits

SYMBOLS = ["005930", "000660", "035720"]
SIGNED_PRICE = re.compile(r"^[+-]?\d+$")


def _gen(seed: int = 7, **kw: object) -> MarketGenerator:
    return MarketGenerator(SYMBOLS, seed, ManualClock(), **kw)  # type: ignore[arg-type]


def _price(s: str) -> int:
    assert SIGNED_PRICE.match(s), s
    return abs(int(s))


def test_same_seed_same_entries() -> None:
    a, b = _gen(11), _gen(11)
    assert a.next_entries(3000) == b.next_entries(3000)
    assert a.book("005930") == b.book("005930")


def test_different_seed_differs() -> None:
    assert _gen(1).next_entries(500) != _gen(2).next_entries(500)


def test_prev_close_and_name_from_universe() -> None:
    g = _gen()
    uni = Universe(7)
    assert g.prev_close("005930") == uni.prev_close("005930") == 70_000
    assert g.name("005930") == "삼성전자"
    assert g.limits("005930") == price_limits(70_000)


def test_entry_shapes_and_fids() -> None:
    g = _gen()
    seen = set()
    for e in g.next_entries(2000):
        seen.add(e["type"])
        assert e["item"] in SYMBOLS
        assert all(isinstance(v, str) for v in e["values"].values())
        if e["type"] == "0B":
            assert e["name"] == "주식체결"
            assert tuple(e["values"]) == FIDS_0B
            v = e["values"]
            assert re.match(r"^\d{6}$", v["20"])
            assert re.match(r"^[+-]\d+$", v["15"])
            assert int(v["15"]) != 0
            assert re.match(r"^[+-]?\d+\.\d\d$", v["12"])
            assert v["25"] in {"1", "2", "3", "4", "5"}
            assert v["290"] == "2"
            assert v["9081"] == "1"
            for f in ("10", "27", "28", "16", "17", "18"):
                _price(v[f])
            assert int(v["13"]) > 0
        elif e["type"] == "0C":
            assert e["name"] == "주식우선호가"
            assert set(e["values"]) == {"27", "28"}
            assert _price(e["values"]["27"]) > _price(e["values"]["28"])
        else:
            assert e["type"] == "0D"
            assert e["name"] == "주식호가잔량"
            assert tuple(e["values"]) == FIDS_0D
            assert len(FIDS_0D) == 163
            v = e["values"]
            asks = [_price(v[str(41 + i)]) for i in range(10) if v[str(41 + i)]]
            bids = [_price(v[str(51 + i)]) for i in range(10) if v[str(51 + i)]]
            assert asks == sorted(asks)
            assert bids == sorted(bids, reverse=True)
            assert asks[0] > bids[0]
            ask_qty = sum(int(v[str(61 + i)]) for i in range(len(asks)))
            assert int(v["121"]) == ask_qty
    assert seen == {"0B", "0C", "0D"}


def test_price_direction_sign_vs_prev_close() -> None:
    g = _gen()
    for e in g.next_entries(3000):
        if e["type"] != "0B":
            continue
        v = e["values"]
        prev = g.prev_close(e["item"])
        p = _price(v["10"])
        sign = v["10"][0]
        if p > prev:
            assert sign == "+"
            assert v["11"] == f"+{p - prev}"
            assert v["25"] in "12"
        elif p < prev:
            assert sign == "-"
            assert v["11"] == f"-{prev - p}"
            assert v["25"] in "45"
        else:
            assert v["10"] == str(p)
            assert v["25"] == "3"


def test_ticks_and_limits_hold_over_many_steps() -> None:
    # A cheap stock with a narrow ladder so the walk reaches the limits.
    g = MarketGenerator(["900100"], 3, ManualClock(), prev_closes={"900100": 20})
    lower, upper = g.limits("900100")
    assert (lower, upper) == (14, 26)
    hit_upper = hit_lower = False
    for e in g.next_entries(20_000):
        v = e["values"]
        for f in ("10", "27", "28", *(str(x) for x in range(41, 61))):
            if v.get(f):
                p = _price(v[f])
                assert lower <= p <= upper
                assert is_on_tick(p)
        if e["type"] == "0B":
            hit_upper |= v["25"] == "1"
            hit_lower |= v["25"] == "4"
    assert hit_upper or hit_lower


def test_ticks_respected_for_normal_symbols() -> None:
    g = _gen(5)
    for e in g.next_entries(30_000):
        v = e["values"]
        lower, upper = g.limits(e["item"])
        for f in ("10", "27", "28", "41", "51", "50", "60"):
            if v.get(f):
                p = _price(v[f])
                assert is_on_tick(p)
                assert lower <= p <= upper


def test_book_and_take() -> None:
    g = _gen()
    bid, ask = g.best("005930")
    book = g.book("005930")
    assert book.asks[0][0] == ask
    assert book.bids[0][0] == bid
    assert len(book.asks) == len(book.bids) == 10
    level1 = book.asks[0][1]
    fills = g.take("005930", True, level1 + 1, None)
    assert fills[0] == (ask, level1)
    assert fills[1][0] > ask
    assert fills[1][1] == 1
    # the book moved up: the old best ask is gone from the ask side
    assert g.best("005930")[1] > ask
    # our fills come out first as 0B entries with the buy sign
    out = g.next_entries(2)
    assert [e["type"] for e in out] == ["0B", "0B"]
    assert out[0]["values"]["15"] == f"+{level1}"
    assert out[1]["values"]["15"] == "+1"


def test_take_respects_limit() -> None:
    g = _gen()
    bid, _ask = g.best("005930")
    assert g.take("005930", True, 10, bid) == []  # a buy at the bid does not cross
    fills = g.take("005930", False, 10**9, bid)
    assert fills
    assert all(p == bid for p, _ in fills)


def test_types_filter_and_unknown_type() -> None:
    g = MarketGenerator(SYMBOLS, 1, ManualClock(), types=("0C",))
    assert {e["type"] for e in g.next_entries(300)} == {"0C"}
    with pytest.raises(ValueError, match="unsupported"):
        MarketGenerator(SYMBOLS, 1, ManualClock(), types=("0Z",))


def test_time_fid_follows_clock() -> None:
    clock = ManualClock()
    g = MarketGenerator(SYMBOLS, 1, clock, types=("0B",))
    clock.advance(3723)
    assert g.next_entries(1)[0]["values"]["20"] == "100203"


# ---- replay: the recorded alternative to the generator ----------------------------------------


def _real(entries: list[dict[str, Any]]) -> str:
    return orjson.dumps({"trnm": "REAL", "data": entries}).decode()


def test_replay_reads_recorder_output(tmp_path: Path) -> None:
    clock = ManualClock()
    gen = MarketGenerator(SYMBOLS, 3, clock)
    path = tmp_path / "rec.ndjson"
    rec = FrameRecorder(path, clock)
    batches = [gen.next_entries(3), gen.next_entries(2)]
    rec.record('{"trnm":"LOGIN","return_code":0,"return_msg":""}')
    rec.record(_real(batches[0]))
    clock.advance(0.25)
    rec.record('{"trnm":"PING"}')
    rec.record(_real(batches[1]).encode())
    rec.close()
    # Lines the recorder never writes are skipped: not JSON, no "ts", a frame that is an
    # object rather than the frame's text.
    with path.open("a") as fh:
        fh.write("not json\n")
        late = {"trnm": "REAL", "data": batches[0][:1]}
        fh.write(orjson.dumps({"t": clock.wall() + 1.0, "frame": _real(late["data"])}).decode())
        fh.write("\n")
        fh.write(orjson.dumps({"ts": clock.wall() + 1.0, "frame": late}).decode() + "\n")
    got = list(replay_entries(path))
    assert [g.entry for g in got] == [*batches[0], *batches[1]]
    assert [round(g.offset_s, 3) for g in got] == [0.0, 0.0, 0.0, 0.25, 0.25]
    only_0b = list(replay_entries(path, types={"0B"}))
    assert all(g.entry["type"] == "0B" for g in only_0b)
    assert len(only_0b) == sum(e["type"] == "0B" for e in [*batches[0], *batches[1]])


async def test_replay_play_publishes_in_order(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    gen = MarketGenerator(SYMBOLS, 4, ManualClock())
    lines = [
        orjson.dumps({"ts": 1000.0 + i * 0.01, "frame": _real(gen.next_entries(2))}).decode()
        for i in range(5)
    ]
    path.write_text("\n".join(lines) + "\n")
    out: list[dict[str, Any]] = []
    n = await play(path, out.append, speed=10.0)
    assert n == 10
    assert out == [g.entry for g in replay_entries(path)]
    fast: list[dict[str, Any]] = []
    assert await play(path, fast.append, speed=0) == 10
    assert fast == out


@pytest.mark.timeout(10)
async def test_replay_skips_a_timestamp_that_is_not_a_finite_number(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    gen = MarketGenerator(SYMBOLS, 5, ManualClock())
    batches = [gen.next_entries(2) for _ in range(3)]
    lines = [
        orjson.dumps({"ts": ts, "frame": _real(batch)}).decode()
        for ts, batch in zip([1000.0, "inf", 1000.01], batches, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    out: list[dict[str, Any]] = []
    # An infinite offset would hold the replay (and what comes after it) forever.
    assert await play(path, out.append, speed=1.0) == 4
    assert out == [*batches[0], *batches[2]]
