"""Condition-search frames, the condition book and owner interests (sans-I/O)."""

from __future__ import annotations

import orjson
import pytest

from engine.events import ConditionHit
from engine.kiwoom.wsproto import (
    ConditionBook,
    ConditionError,
    Interests,
    answer_seq,
    cnsr_clear_frame,
    cnsr_list_frame,
    cnsr_search_frame,
    parse_condition_list,
    parse_search_page,
)


def test_frames_are_the_documented_requests() -> None:
    assert orjson.loads(cnsr_list_frame()) == {"trnm": "CNSRLST"}
    assert orjson.loads(cnsr_search_frame("4", realtime=False)) == {
        "trnm": "CNSRREQ", "seq": "4", "search_type": "0", "stex_tp": "K", "cont_yn": "N",
        "next_key": "",
    }  # fmt: skip
    assert orjson.loads(cnsr_search_frame("4", realtime=False, next_key="k2"))["cont_yn"] == "Y"
    assert orjson.loads(cnsr_search_frame("4", realtime=True)) == {
        "trnm": "CNSRREQ", "seq": "4", "search_type": "1", "stex_tp": "K",
    }  # fmt: skip
    assert orjson.loads(cnsr_clear_frame("1")) == {"trnm": "CNSRCLR", "seq": "1"}


def test_answers_are_read_with_padded_seq_and_prefixed_codes() -> None:
    assert answer_seq({"seq": "2  "}) == "2"
    assert parse_condition_list({"data": [["0", "조건1"], [" 1 ", "a/b+#"], ["x"], 5]}) == [
        ("0", "조건1"),
        ("1", "a/b+#"),
    ]
    page = {"cont_yn": "Y", "next_key": "n1", "data": [{"9001": "A005930"}, {"302": "x"}]}
    assert parse_search_page(page) == (["005930"], "n1")
    assert parse_search_page({"data": [{"jmcode": "A000660"}]}) == (["000660"], None)
    assert parse_search_page({"cont_yn": "N", "next_key": "z", "data": []}) == ([], None)


def test_the_book_publishes_what_changed_across_a_restore() -> None:
    book = ConditionBook(max_realtime=2)
    book.set_list([("3", "급등")])
    assert book.started("3", ["A", "B"]) == [
        ConditionHit("A", "3", "급등", True, 0),
        ConditionHit("B", "3", "급등", True, 0),
    ]
    # A push fills the name in; a repeat changes nothing.
    assert book.pushed(ConditionHit("C", "3", "", True, 91500)) == ConditionHit(
        "C", "3", "급등", True, 91500
    )
    assert book.pushed(ConditionHit("C", "3", "", True, 91501)) is None
    assert book.duplicates == 1
    # The drop lost B's leave and D's entry: the repeated search shows both.
    assert book.started("3", ["A", "C", "D"]) == [
        ConditionHit("D", "3", "급등", True, 0),
        ConditionHit("B", "3", "급등", False, 0),
    ]
    assert book.pushed(ConditionHit("Z", "9", "", True, 1)) is None  # not our search
    assert book.lost("3") == [
        ConditionHit("A", "3", "급등", False, 0),
        ConditionHit("C", "3", "급등", False, 0),
        ConditionHit("D", "3", "급등", False, 0),
    ]


def test_the_limit_refuses_one_more_with_the_key_named() -> None:
    book = ConditionBook(max_realtime=2)
    book.started("1", [])
    book.started("2", [])
    book.check_room("2")  # a repeat is no new search
    with pytest.raises(ConditionError, match=r"kiwoom\.max_realtime_conditions") as exc:
        book.check_room("3")
    assert "2 of 2" in str(exc.value)
    book.cleared("1")
    book.check_room("3")


def test_interests_register_once_and_remove_with_the_last_owner() -> None:
    i = Interests()
    assert i.change("a", "005930", {"0B"}) == ({"0B"}, frozenset())
    assert i.change("b", "005930", {"0B", "0D"}) == ({"0D"}, frozenset())
    assert i.change("a", "005930", ()) == (frozenset(), frozenset())
    assert i.change("b", "005930", {"0B"}) == (frozenset(), {"0D"})
    assert i.change("b", "005930", ()) == (frozenset(), {"0B"})
    assert i.symbols() == []
