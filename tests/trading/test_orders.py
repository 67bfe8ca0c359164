"""The order event table: every (state, event kind) pair against a table written out here by
hand (not read from engine/trading/orders.py), and random event sequences against the
invariants every order keeps."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import PortfolioConfig
from engine.events import Fill, OrderState, OrderUpdate, Side
from engine.trading.order_events import (
    Accepted,
    Acked,
    AmendRefused,
    BrokerRejected,
    CancelAcked,
    Canceled,
    CancelRefused,
    CancelRequested,
    Effects,
    Expired,
    Filled,
    Gone,
    Linked,
    Live,
    NotAtBroker,
    NotSent,
    OrderEvent,
    OutcomeUnknown,
    Refused,
    Replaced,
    ReplaceRefused,
    ReplaceRequested,
    Restarted,
    Sent,
    apply,
    snapshot,
    with_fees,
)
from engine.trading.orders import TERMINAL, TRANSITIONS, Kind, Order
from engine.trading.portfolio import Portfolio

S = OrderState

# One event of each kind, as the OMS builds them.
EVENTS: dict[str, OrderEvent] = {
    "sent": Sent(),
    "refused": Refused(reason="MAX_NOTIONAL"),
    "acked": Acked(order_no="0000001"),
    "not_sent": NotSent(detail="ClientConnectorError"),
    "broker_rejected": BrokerRejected(detail="2000: 주문가능금액 부족"),
    "outcome_unknown": OutcomeUnknown(detail="timeout"),
    "accepted": Accepted(),
    "filled": Filled(order_no="0000001", fill_no="f9", qty=2, price=70_000),
    "canceled": Canceled(),
    "cancel_requested": CancelRequested(),
    "cancel_acked": CancelAcked(order_no="0000002"),
    "cancel_refused": CancelRefused(detail="no open qty"),
    "replace_requested": ReplaceRequested(),
    "replaced": Replaced(order_no="0000003", price=71_000),
    "replace_refused": ReplaceRefused(detail="refused"),
    "amend_refused": AmendRefused(reason="FAT_FINGER"),
    "linked": Linked(order_no="0000001"),
    "live": Live(),
    "gone": Gone(),
    "not_at_broker": NotAtBroker(),
    "expired": Expired(),
    "restarted": Restarted(),
}

# What each event does to an order in each state. A state name: the order is (or stays) in
# it; "-": illegal, nothing changes; "=": late news, nothing changes and nothing follows;
# "dup": a fill already counted. The orders: NEW..UNK have no number; ACC has 0000001;
# PF has 3 of 10 filled; PC is a pending cancel from ACC; PR a pending amend from PF; FIL is
# all filled.
EXPECTED = """
kind               NEW  SUB  UNK  ACC  PF   PC   PR   FIL  CAN  REJ
sent               SUB  -    -    -    -    -    -    -    -    -
refused            REJ  -    -    -    -    -    -    -    -    -
acked              -    ACC  ACC  ACC  PF   PC   PR   FIL  CAN  REJ
not_sent           -    REJ  -    -    -    -    -    -    -    -
broker_rejected    -    REJ  REJ  REJ  -    REJ  REJ  =    =    =
outcome_unknown    -    UNK  UNK  =    =    PC   PR   =    =    =
accepted           -    ACC  ACC  =    =    =    =    =    =    =
filled             -    PF   PF   PF   PF   PC   PR   dup  -    -
canceled           -    CAN  CAN  CAN  CAN  CAN  CAN  =    =    =
cancel_requested   NEW  SUB  UNK  PC   PC   =    PC   =    =    =
cancel_acked       -    -    -    ACC  PF   PC   PR   FIL  CAN  REJ
cancel_refused     -    -    -    =    =    ACC  =    =    =    =
replace_requested  -    -    -    PR   PR   -    -    -    -    -
replaced           -    -    -    ACC  PF   PC   PF   =    =    =
replace_refused    -    -    -    =    =    =    PF   =    =    =
amend_refused      -    -    -    ACC  PF   -    -    -    -    -
linked             -    SUB  UNK  ACC  PF   PC   PR   FIL  CAN  REJ
live               -    ACC  ACC  ACC  PF   ACC  PF   =    =    =
gone               -    CAN  CAN  CAN  CAN  CAN  CAN  =    =    =
not_at_broker      -    =    REJ  =    =    =    =    =    =    =
expired            -    CAN  CAN  CAN  CAN  CAN  CAN  =    =    =
restarted          UNK  UNK  UNK  -    -    -    -    -    -    -
"""

ABBREV = {
    "NEW": S.NEW,
    "SUB": S.SUBMITTING,
    "UNK": S.UNKNOWN,
    "ACC": S.ACCEPTED,
    "PF": S.PARTIALLY_FILLED,
    "PC": S.PENDING_CANCEL,
    "PR": S.PENDING_REPLACE,
    "FIL": S.FILLED,
    "CAN": S.CANCELED,
    "REJ": S.REJECTED,
}


def _expected() -> dict[tuple[S, str], str]:
    header, *rows = [line.split() for line in EXPECTED.strip().splitlines()]
    states = [ABBREV[h] for h in header[1:]]
    return {
        (state, row[0]): cell for row in rows for state, cell in zip(states, row[1:], strict=True)
    }


TABLE = _expected()


def order_in(state: S) -> Order:
    o = Order("c1", "s", "005930", Side.BUY, 10, 70_000)
    o.state = state
    if state in (S.NEW, S.SUBMITTING, S.UNKNOWN):
        return o
    o.order_no = "0000001"
    o.order_nos = ["0000001"]
    if state in (S.PARTIALLY_FILLED, S.PENDING_REPLACE):
        o.filled_qty, o.fill_amount = 3, 3 * 70_000
        o.fill_nos = {"f1"}
        o.filled_by_no = {"0000001": 3}
    if state is S.FILLED:
        o.filled_qty, o.fill_amount = 10, 10 * 70_000
        o.fill_nos = {"f1"}
        o.filled_by_no = {"0000001": 10}
    o.prev_state = {S.PENDING_CANCEL: S.ACCEPTED, S.PENDING_REPLACE: S.PARTIALLY_FILLED}.get(
        state, S.NEW
    )
    return o


def fields(o: Order) -> dict[str, object]:
    return {f.name: copy.deepcopy(getattr(o, f.name)) for f in dataclasses.fields(o)}


def test_the_written_table_covers_every_state_and_every_kind() -> None:
    assert {k for _, k in TABLE} == {k.value for k in Kind} == set(EVENTS)
    assert {s for s, _ in TABLE} == set(OrderState)
    assert len(TABLE) == len(OrderState) * len(Kind)


@pytest.mark.parametrize(("state", "kind"), sorted(TABLE, key=str))
def test_every_event_in_every_state_does_what_the_table_says(state: S, kind: str) -> None:
    want = TABLE[(state, kind)]
    o = order_in(state)
    before = fields(o)
    fx = apply(o, EVENTS[kind])
    if want == "-":
        assert fx == Effects(illegal=True)
        assert fields(o) == before
    elif want == "=":
        assert fx == Effects()
        assert fields(o) == before
    elif want == "dup":
        assert fx == Effects(duplicate=True)
        assert fields(o) == before
    else:
        assert not fx.illegal
        assert not fx.duplicate
        assert o.state is ABBREV[want]
        if o.state is not state:
            assert o.state in TRANSITIONS[state]
            assert fx.update is not None
            assert (fx.update.prev_state, fx.update.state) == (state, o.state)
        assert fx.ended == (o.state in TERMINAL and state not in TERMINAL)


def test_events_carry_their_numbers_prices_and_codes() -> None:
    o = order_in(S.SUBMITTING)
    fx = apply(o, Acked(order_no="0000007"))
    assert (o.order_no, o.order_nos, fx.linked) == ("0000007", ["0000007"], "0000007")
    o2 = order_in(S.SUBMITTING)
    apply(o2, CancelRequested())
    assert o2.state is S.SUBMITTING
    assert o2.cancel_wanted
    fx = apply(o2, Acked(order_no="0000008"))
    assert (o2.state, fx.send_cancel, o2.cancel_wanted) == (S.ACCEPTED, True, False)

    acc = order_in(S.ACCEPTED)
    apply(acc, ReplaceRequested())
    fx = apply(acc, Replaced(order_no="0000009", price=71_000))
    assert (acc.state, acc.order_no, acc.price) == (S.ACCEPTED, "0000009", 71_000)
    assert acc.order_nos == ["0000001", "0000009"]
    # An older number confirmed again (the first amend's) changes nothing.
    assert apply(acc, Replaced(order_no="0000001", price=70_000)) == Effects()
    assert (acc.order_no, acc.price) == ("0000009", 71_000)

    fx = apply(acc, AmendRefused(reason="MAX_NOTIONAL", detail="x"))
    assert (acc.state, acc.refusal, acc.reason) == (S.ACCEPTED, "MAX_NOTIONAL", "")
    assert fx.update is not None
    assert fx.update.state is fx.update.prev_state is S.ACCEPTED

    rej = order_in(S.SUBMITTING)
    apply(rej, BrokerRejected(detail="2000: 잔고 부족"))
    assert (rej.state, rej.reason, rej.detail) == (S.REJECTED, "BROKER_REJECTED", "2000: 잔고 부족")


def test_an_answer_corrects_a_number_a_notice_gave_the_wrong_order() -> None:
    o = order_in(S.SUBMITTING)
    apply(o, Linked(order_no="0000002"))  # an identical order's early notice
    fx = apply(o, Acked(order_no="0000001"))
    assert (o.order_no, o.order_nos) == ("0000001", ["0000001"])
    assert (fx.unlinked, fx.linked) == ("0000002", "0000001")


def test_a_fill_counts_once_by_number_and_by_the_broker_s_cumulative_figure() -> None:
    o = order_in(S.ACCEPTED)
    assert apply(o, Filled(order_no="0000001", fill_no="f1", qty=3, price=70_000)).fill
    assert apply(o, Filled(order_no="0000001", fill_no="f1", qty=3, price=70_000)).duplicate
    # Reconciliation's view of the same: 3 filled under 0000001 in all.
    r = Filled(order_no="0000001", fill_no="R0000001:3", qty=3, price=70_000, cum=3)
    assert apply(o, r).duplicate
    fx = apply(o, Filled(order_no="0000001", fill_no="R0000001:5", qty=5, price=70_100, cum=5))
    assert fx.fill is not None
    assert fx.fill.qty == 2
    assert (o.filled_qty, o.fill_amount) == (5, 3 * 70_000 + 2 * 70_100)
    assert o.filled_by_no == {"0000001": 5}
    # Never more than the order's quantity.
    fx = apply(o, Filled(order_no="0000001", fill_no="f9", qty=99, price=70_000))
    assert fx.fill is not None
    assert fx.fill.qty == 5
    assert (o.state, o.filled_qty) == (S.FILLED, 10)


def test_a_fill_while_a_cancel_is_pending_returns_to_partially_filled_if_refused() -> None:
    o = order_in(S.ACCEPTED)
    apply(o, CancelRequested())
    apply(o, Filled(order_no="0000001", fill_no="f1", qty=4, price=70_000))
    assert (o.state, o.prev_state) == (S.PENDING_CANCEL, S.PARTIALLY_FILLED)
    apply(o, CancelRefused())
    assert (o.state, o.reason) == (S.PARTIALLY_FILLED, "CANCEL_REFUSED")


# --- random sequences ---------------------------------------------------------------------

NOS = ["0000001", "0000002", "0000003"]
fills = st.builds(
    lambda no, f, q, p, cum: Filled(order_no=no, fill_no=f, qty=q, price=p, cum=cum),
    st.sampled_from(NOS),
    st.sampled_from(["f1", "f2", "f3", "f4", "f5", "f6"]),
    st.integers(1, 6),
    st.sampled_from([70_000, 70_100]),
    st.integers(0, 12),
)
events = st.one_of(
    fills,
    st.sampled_from([e for k, e in EVENTS.items() if k not in ("filled", "acked", "linked")]),
    st.builds(lambda no: Acked(order_no=no), st.sampled_from(NOS)),
    st.builds(lambda no: Linked(order_no=no), st.sampled_from(NOS)),
    st.builds(lambda no: Replaced(order_no=no, price=71_000), st.sampled_from(NOS)),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([Side.BUY, Side.SELL]), st.lists(events, max_size=40))
def test_any_sequence_of_events_keeps_the_order_s_invariants(
    side: Side, seq: list[OrderEvent]
) -> None:
    o = Order("c1", "s", "005930", side, 10, 70_000)
    portfolio = Portfolio(PortfolioConfig(commission_bp=0, sell_tax_bp=0, sell_tax_table=False))
    booked: list[Fill] = []
    ended: S | None = None
    for ev in seq:
        before = o.state
        fx = apply(o, ev)
        if ended is not None:
            assert o.state is ended  # an ended order stays ended
        if o.state is not before:
            assert o.state in TRANSITIONS[before]
        assert 0 <= o.filled_qty <= o.qty
        if fx.fill is not None:
            booked.append(fx.fill)
            portfolio.on_fill(fx.fill)
        if o.state in TERMINAL:
            ended = o.state
    # A fill counts once: by its (order number, fill number), and in all no more than the
    # order's quantity.
    assert len({(f.order_no, f.fill_no) for f in booked}) == len(booked)
    assert sum(f.qty for f in booked) == o.filled_qty
    assert sum(f.qty * f.price for f in booked) == o.fill_amount
    assert sum(o.filled_by_no.values()) == o.filled_qty
    if side is Side.BUY:  # the portfolio holds what the fills bought
        assert portfolio.position_qty("005930") == o.filled_qty
        assert portfolio.strategy_qty("s", "005930") == o.filled_qty
    if o.filled_qty == o.qty:
        assert o.state is S.FILLED


def test_with_fees_is_replace_of_the_fee_totals_alone() -> None:
    # Built by hand for speed: a field added to Filled must not be dropped by it.
    ev = Filled(
        order_no="0000042",
        reason="r",
        detail="d",
        fill_no="F7",
        qty=3,
        price=70_100,
        cum=5,
        cum_fee=1,
        cum_tax=2,
    )
    assert with_fees(ev, 11, 22) == dataclasses.replace(ev, cum_fee=11, cum_tax=22)
    assert all(getattr(ev, f.name) != f.default for f in dataclasses.fields(Filled) if f.init)


def test_an_order_step_s_update_is_the_keyword_built_one() -> None:
    # _snapshot builds OrderUpdate by position (engine/events.py maker): a field added or
    # moved in OrderUpdate must show here, not as a wrong column in the journal.
    assert [f.name for f in dataclasses.fields(OrderUpdate)] == [
        "client_id", "strategy", "symbol", "side", "qty", "price", "state", "prev_state",
        "order_no", "filled_qty", "avg_fill_price", "reason", "fill_amount", "ts_recv", "seq",
    ]  # fmt: skip
    o = Order(
        client_id="c9", strategy="s", symbol="005930", side=Side.SELL, qty=7, price=70_100,
        state=OrderState.SUBMITTING, created_ns=1,
    )  # fmt: skip
    apply(o, Acked(order_no="0000042"))
    apply(o, Filled(order_no="0000042", fill_no="F1", qty=3, price=70_100))
    o.reason = "why"
    want = OrderUpdate(
        client_id="c9", strategy="s", symbol="005930", side=Side.SELL, qty=7, price=70_100,
        state=OrderState.PARTIALLY_FILLED, prev_state=OrderState.ACCEPTED, order_no="0000042",
        filled_qty=3, avg_fill_price=70_100, reason="why", fill_amount=210_300,
    )  # fmt: skip
    assert snapshot(o) == dataclasses.replace(want, prev_state=OrderState.PARTIALLY_FILLED)
