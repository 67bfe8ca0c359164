"""The order state table: every edge it lists applies, every other move is refused."""

from __future__ import annotations

import itertools

import pytest

from engine.events import OrderState, Side
from engine.trading.orders import TERMINAL, TRANSITIONS, IllegalTransition, Order

S = OrderState


def order_in(state: S) -> Order:
    o = Order("c1", "s", "005930", Side.BUY, 10, 70_000)
    o.state = state
    return o


ALL_PAIRS = list(itertools.product(OrderState, OrderState))
LEGAL = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "wanted"), LEGAL)
def test_every_listed_edge_applies_and_reports_it(current: S, wanted: S) -> None:
    o = order_in(current)
    up = o.apply(wanted, "why")
    assert o.state is wanted
    assert (up.prev_state, up.state, up.reason) == (current, wanted, "why")


@pytest.mark.parametrize(("current", "wanted"), ILLEGAL)
def test_every_other_move_is_refused_and_changes_nothing(current: S, wanted: S) -> None:
    o = order_in(current)
    with pytest.raises(IllegalTransition):
        o.apply(wanted, "why")
    assert o.state is current
    assert o.reason == ""


def test_the_table_covers_every_state_and_terminal_states_are_final() -> None:
    assert set(TRANSITIONS) == set(OrderState)
    for state in TERMINAL:
        assert not TRANSITIONS[state]
    # Every non-terminal state can still reach an end.
    for state in set(OrderState) - TERMINAL:
        assert TRANSITIONS[state] & (TERMINAL | {S.ACCEPTED, S.PARTIALLY_FILLED})
    assert len(ILLEGAL) > 60  # the table is a whitelist, not a formality


def test_a_fill_number_counts_once_and_per_broker_number() -> None:
    o = order_in(S.ACCEPTED)
    assert o.add_fill("f1", 3, 70_000, "0000001")
    assert not o.add_fill("f1", 3, 70_000, "0000001")
    assert o.add_fill("f2", 2, 70_100, "0000002")
    assert (o.filled_qty, o.open_qty, o.fill_amount) == (5, 5, 3 * 70_000 + 2 * 70_100)
    assert o.avg_fill_price == (3 * 70_000 + 2 * 70_100) // 5
    assert o.filled_by_no == {"0000001": 3, "0000002": 2}


def test_a_refused_cancel_can_return_to_where_the_order_was() -> None:
    o = order_in(S.PARTIALLY_FILLED)
    o.apply(S.PENDING_CANCEL)
    assert o.prev_state is S.PARTIALLY_FILLED
    o.apply(o.prev_state)
    assert o.state is S.PARTIALLY_FILLED
