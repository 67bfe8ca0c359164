"""The codec's market-state types: 02 condition hits, 1h VI, 0s session, 0g stock info."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import (
    ConditionHit,
    Exchange,
    SessionChanged,
    SessionState,
    StockInfo,
    ViEvent,
    ViKind,
)
from engine.kiwoom import catalog, fids
from engine.kiwoom.codec import DECODERS, CodecStats, FrameKind, decode_frame


def real(*entries: dict[str, Any]) -> bytes:
    return orjson.dumps({"trnm": "REAL", "data": list(entries)})


def entry(rtype: str, item: str, values: Any, name: str = "") -> dict[str, Any]:
    return {"type": rtype, "name": name, "item": item, "values": values}


# The documented push (facts, "Condition search").
PUSH_02 = {"841": "4", "9001": "005930", "843": "I", "20": "152028", "907": "2"}


def test_the_types_refused_in_a_strategys_realtime_list_are_those_the_codec_models() -> None:
    # config refuses these in `realtime` (they have their own handlers): the set must follow
    # the codec, or a modelled type would reach on_realtime never, or a generic one be refused.
    assert set(DECODERS) == fids.MODELLED_TYPES
    assert {"00", "04", "0B", "0C", "0D", "02", "1h", "0s", "0g"} <= fids.MODELLED_TYPES
    assert "0J" not in fids.MODELLED_TYPES


def test_the_condition_fids_and_codes_are_the_catalogues() -> None:
    rtype, push_fids = catalog.condition_push()
    assert rtype == fids.CONDITION
    assert set(fids.CONDITION_FIDS.values()) <= set(push_fids)
    codes = catalog.code_table("fid_843_조건검색_삽입삭제")
    assert set(codes) == {fids.CONDITION_ENTERED, fids.CONDITION_LEFT}
    assert "편입" in codes[fids.CONDITION_ENTERED]
    assert "이탈" in codes[fids.CONDITION_LEFT]


def test_every_session_code_of_the_catalogue_is_mapped_or_ignored() -> None:
    table = catalog.code_table("fid_215_장운영구분_0s")
    assert table
    mapped = set(fids.SESSION_STATES)
    assert mapped | fids.SESSION_IGNORED == set(table)
    assert not mapped & fids.SESSION_IGNORED
    # The futures/options notices are the ignored ones (선옵 / 선물옵션 in their meaning).
    assert all("선" in table[c] for c in fids.SESSION_IGNORED)
    assert all(table[c].startswith("NXT") for c, (venue, _s) in fids.SESSION_STATES.items()
               if venue == "NXT")  # fmt: skip


def test_a_condition_push_is_a_hit() -> None:
    stats = CodecStats()
    res = decode_frame(real(entry("02", "005930", PUSH_02, "조건검색")), stats)
    assert res.events == [ConditionHit("005930", "4", "", True, 152028)]
    left = dict(PUSH_02, **{"843": "D", "9001": "A000660", "841": " 4 "})
    res = decode_frame(real(entry("02", "000660", left)), stats)
    assert res.events == [ConditionHit("000660", "4", "", False, 152028)]
    assert stats.bad_entries == 0


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({**PUSH_02, "843": "X"}, "_BadEntry"),
        ({k: v for k, v in PUSH_02.items() if k != "843"}, "KeyError"),
        ({**PUSH_02, "841": ""}, "_BadEntry"),
        ({**PUSH_02, "20": "15:20"}, "ValueError"),
        ({**PUSH_02, "843": 7}, "_BadEntry"),
    ],
)
def test_a_malformed_condition_push_is_counted_and_skipped(values: Any, why: str) -> None:
    stats = CodecStats()
    good = entry("02", "005930", PUSH_02)
    res = decode_frame(real(entry("02", "005930", values), good), stats)
    assert res.kind is FrameKind.REAL
    assert res.events == [ConditionHit("005930", "4", "", True, 152028)]
    assert stats.bad_entries == 1
    assert stats.reasons[why] == 1


VI_TRIGGER = {
    "9001": "005930",
    "302": "삼성전자",
    "9068": "1",
    "1221": "+77000",
    "1223": "101500",
    "1224": "",
    "1225": "정적",
    "1236": "70000",
    "1237": "74800",
    "1490": "1",
}


def test_a_vi_trigger_and_release() -> None:
    stats = CodecStats()
    res = decode_frame(real(entry("1h", "005930", VI_TRIGGER, "VI발동/해제")), stats)
    assert res.events == [
        ViEvent("005930", Exchange.KRX, True, ViKind.STATIC, 77000, 70000, 74800, 101500, 0, 1)
    ]
    release = dict(VI_TRIGGER, **{"9068": "2", "1224": "101712", "1225": "2"})
    res = decode_frame(real(entry("1h", "005930", release)), stats)
    assert res.events == [
        ViEvent("005930", Exchange.KRX, False, ViKind.DYNAMIC, 77000, 70000, 74800, 101500,
                101712, 1)
    ]  # fmt: skip
    assert stats.bad_entries == 0


@pytest.mark.parametrize(
    ("item", "values", "why"),
    [
        ("", {k: v for k, v in VI_TRIGGER.items() if k != "9001"}, "_BadEntry"),
        ("005930", {**VI_TRIGGER, "1223": "10:15"}, "ValueError"),
        ("005930", {**VI_TRIGGER, "1221": "+77,000"}, "ValueError"),
        ("005930", [1, 2], "_BadEntry"),
    ],
)
def test_a_malformed_vi_notice_is_counted_and_skipped(item: str, values: Any, why: str) -> None:
    stats = CodecStats()
    res = decode_frame(real(entry("1h", item, values), entry("1h", "005930", VI_TRIGGER)), stats)
    assert res.kind is FrameKind.REAL
    assert [(e.symbol, e.active) for e in res.events] == [("005930", True)]  # type: ignore[attr-defined]
    assert stats.bad_entries == 1
    assert stats.reasons[why] == 1


def test_a_vi_code_we_do_not_know_falls_back_on_the_release_time() -> None:
    # 9068's codes are documented nowhere: an unknown one is read from 1224 (a release time
    # means released) and logged, never a crash.
    res = decode_frame(real(entry("1h", "005930", dict(VI_TRIGGER, **{"9068": "Z"}))))
    assert [e.active for e in res.events] == [True]  # type: ignore[attr-defined]
    res = decode_frame(
        real(entry("1h", "005930", dict(VI_TRIGGER, **{"9068": "Z", "1224": "101712"})))
    )
    assert [e.active for e in res.events] == [False]  # type: ignore[attr-defined]
    res = decode_frame(real(entry("1h", "005930", dict(VI_TRIGGER, **{"1225": "?"}))))
    assert [e.kind for e in res.events] == [None]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("code", "exchange", "state"),
    [
        ("0", Exchange.KRX, SessionState.OPENING_AUCTION),
        ("3", Exchange.KRX, SessionState.REGULAR),
        ("2", Exchange.KRX, SessionState.CLOSING_AUCTION),
        ("4", Exchange.KRX, SessionState.CLOSED),
        ("a", Exchange.KRX, SessionState.POST_CLOSE),
        ("c", Exchange.KRX, SessionState.AFTER_HOURS_SINGLE),
        ("9", Exchange.KRX, SessionState.CLOSED),
        ("P", Exchange.NXT, SessionState.NXT_PRE),
        ("R", Exchange.NXT, SessionState.REGULAR),
        ("U", Exchange.NXT, SessionState.NXT_AFTER),
        ("V", Exchange.NXT, SessionState.CLOSED),
    ],
)
def test_a_session_notice_is_a_state(code: str, exchange: Exchange, state: SessionState) -> None:
    res = decode_frame(real(entry("0s", "", {"215": code, "20": "084000", "214": "002000"})))
    assert res.events == [SessionChanged(exchange, state, 84000, 20 * 60)]


def test_futures_session_codes_are_skipped_and_unknown_ones_counted() -> None:
    stats = CodecStats()
    res = decode_frame(
        real(
            entry("0s", "", {"215": "o", "20": "084500"}),
            entry("0s", "", {"215": "?", "20": "084500"}),
            entry("0s", "", {"20": "084500"}),
            entry("0s", "", {"215": "3", "20": "090000"}),
        ),
        stats,
    )
    assert res.events == [SessionChanged(Exchange.KRX, SessionState.REGULAR, 90000, 0)]
    assert stats.reasons["skipped"] == 1
    assert stats.bad_entries == 2


def test_stock_info() -> None:
    values = {"305": "+91000", "306": "-49000", "307": "70000", "297": "0", "370": "정상"}
    res = decode_frame(real(entry("0g", "005930_NX", values, "주식종목정보")))
    assert res.events == [
        StockInfo("005930", Exchange.NXT, 91000, 49000, 70000, "0", "", "", "정상")
    ]


_text = st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    rtype=st.sampled_from(["02", "1h", "0s", "0g"]),
    values=st.dictionaries(
        st.sampled_from(["841", "9001", "843", "20", "9068", "1221", "1224", "1225", "215",
                         "214", "305", "307", "1490"]),
        st.one_of(_text, st.integers(-(2**62), 2**62), st.none(), st.lists(st.integers(0, 9), max_size=2)),
    ),
    item=st.one_of(_text, st.none(), st.integers(-(2**62), 2**62)),
)  # fmt: skip
def test_fuzz_market_state_frames_never_raise(rtype: str, values: Any, item: Any) -> None:
    stats = CodecStats()
    raw = real({"type": rtype, "item": item, "values": values})
    for lazy in (False, True):
        res = decode_frame(raw.decode() if lazy else raw, stats, lazy=lazy)
        events = list(res.stream) if lazy and res.stream is not None else res.events
        assert len(events) <= 1
    # Every entry is an event, a skip or a counted bad entry.
    assert stats.events + stats.bad_entries + stats.reasons["skipped"] == 2
