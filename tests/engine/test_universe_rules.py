"""The run-time universe's pure rules: condition references, data kinds, the realtime limit."""

from __future__ import annotations

import pytest

from engine.universe.rules import data_kinds, over_limit, ref_problem


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("급등주", None),
        ("seq:3", None),
        ("3", None),  # a condition named "3" is a name
        ("", "is empty"),
        ("  ", "is empty"),
        ("seq:", "names no seq"),
        ("seq: ", "names no seq"),
        (3, "must be a condition's name or 'seq:N'"),
    ],
)
def test_a_condition_reference_is_a_name_or_seq_n(ref: object, problem: str | None) -> None:
    found = ref_problem(ref)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_data_kinds_are_trades_quotes_and_book() -> None:
    assert data_kinds(("trades", "quotes")) == frozenset({"trades", "quotes"})
    assert data_kinds("book") == frozenset({"book"})
    for bad in ((), ("ticks",), ("trades", "bars"), 5):
        with pytest.raises(ValueError, match="data must"):
            data_kinds(bad)


def test_the_limit_counts_distinct_conditions_and_refuses_what_is_past_it() -> None:
    in_use = [str(i) for i in range(9)]
    assert over_limit(in_use, ["3", "9"], 10) == []  # 3 is in use; 9 is the tenth
    assert over_limit(in_use, ["9", "10", "11", "9"], 10) == ["10", "11"]
    assert over_limit([], ["a", "a", "b"], 1) == ["b"]
