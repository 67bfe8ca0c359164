"""The sans-I/O session protocol: frames, the login handshake and the registration book."""

from __future__ import annotations

import orjson
import pytest

from engine.events import Trade
from engine.kiwoom.codec import decode_frame
from engine.kiwoom.wsproto import (
    Handshake,
    HandshakeState,
    LoginError,
    RegRequest,
    Subscriptions,
    login_frame,
    reg_frame,
    remove_frame,
)

REAL_0B = (
    '{"trnm":"REAL","data":[{"type":"0B","name":"주식체결","item":"005930",'
    '"values":{"20":"090000","10":"+70000","15":"+3","13":"3"}}]}'
)
LOGIN_FAIL = (
    '{"trnm":"LOGIN","return_code":805004,"return_msg":"토큰 인증에 실패했습니다. 접속을 종료합니다 '
    '[CODE=8005, MESSAGE=Token이 유효하지 않습니다]"}'
)


def test_frames_match_the_wire_format() -> None:
    assert orjson.loads(login_frame("abc")) == {"trnm": "LOGIN", "token": "abc"}
    assert orjson.loads(reg_frame("1", ["005930", "000660"], ["0B", "0D"])) == {
        "trnm": "REG",
        "grp_no": "1",
        "refresh": "1",
        "data": [{"item": ["005930", "000660"], "type": ["0B", "0D"]}],
    }
    assert orjson.loads(remove_frame("2", ["005930"], ["0B"])) == {
        "trnm": "REMOVE",
        "grp_no": "2",
        "data": [{"item": ["005930"], "type": ["0B"]}],
    }


def test_handshake_skips_system_buffers_real_and_completes() -> None:
    hs = Handshake()
    assert not hs.feed(decode_frame('{"trnm":"SYSTEM","code":"R10004","message":"m"}'))
    assert not hs.feed(decode_frame(REAL_0B))
    assert not hs.feed(decode_frame('{"trnm":"PING"}'))
    assert hs.feed(decode_frame('{"trnm":"LOGIN","return_code":0,"return_msg":"","sor_yn":"Y"}'))
    assert hs.state is HandshakeState.DONE
    assert hs.sor is True
    assert len(hs.system) == 1
    assert [type(e) for e in hs.buffered] == [Trade]


def test_login_failure_carries_kiwoom_codes() -> None:
    hs = Handshake()
    with pytest.raises(LoginError) as info:
        hs.feed(decode_frame(LOGIN_FAIL))
    err = info.value
    assert err.return_code == 805004
    assert err.code == 8005
    assert err.token_error
    assert "8005" in str(err)


def test_non_token_login_failure_is_not_a_token_error() -> None:
    with pytest.raises(LoginError) as info:
        Handshake().feed(
            decode_frame('{"trnm":"LOGIN","return_code":1,"return_msg":"[CODE=8030, MESSAGE=x]"}')
        )
    assert info.value.code == 8030
    assert not info.value.token_error


def commit_all(subs: Subscriptions, reqs: list[RegRequest]) -> None:
    for r in reqs:
        subs.commit(r)


def test_150_items_split_across_two_groups() -> None:
    subs = Subscriptions()
    items = [f"{i:06d}" for i in range(150)]
    reqs = subs.plan_add(["0B"], items)
    assert [(r.grp_no, len(r.items)) for r in reqs] == [("1", 100), ("2", 50)]
    commit_all(subs, reqs)
    assert len(subs) == 150
    # More items fill group 2 first, then open group 3.
    more = subs.plan_add(["0B"], [f"{i:06d}" for i in range(150, 260)])
    assert [(r.grp_no, len(r.items)) for r in more] == [("2", 50), ("3", 60)]


def test_account_types_register_with_empty_item_and_duplicates_are_skipped() -> None:
    subs = Subscriptions()
    reqs = subs.plan_add(["00", "04", "0B"], ["005930"])
    frames = [orjson.loads(r.frame)["data"][0] for r in reqs]
    assert {"item": [""], "type": ["00", "04"]} in frames
    assert {"item": ["005930"], "type": ["0B"]} in frames
    commit_all(subs, reqs)
    assert subs.plan_add(["0B", "00"], ["005930"]) == []
    extra = subs.plan_add(["0B", "0D"], ["005930"])
    assert [(r.items, r.types) for r in extra] == [(("005930",), ("0D",))]


def test_restore_rebuilds_every_group_and_remove_updates_the_book() -> None:
    subs = Subscriptions()
    commit_all(subs, subs.plan_add(["0B", "0D"], [f"{i:06d}" for i in range(120)]))
    commit_all(subs, subs.plan_add(["00"], []))
    before = subs.pairs()
    restored = Subscriptions()
    commit_all(restored, subs.restore())
    assert restored.pairs() == before
    removes = subs.plan_remove(["0D"], ["000001", "000110"])
    assert {(r.trnm, r.grp_no, r.types) for r in removes} == {
        ("REMOVE", "1", ("0D",)),
        ("REMOVE", "2", ("0D",)),
    }
    commit_all(subs, removes)
    assert ("0D", "000001") not in subs.pairs()
    assert ("0B", "000001") in subs.pairs()
    assert len(subs.pairs()) == len(before) - 2
