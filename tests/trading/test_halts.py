"""The halt reasons of the risk engine: a set, each lifted its own way (issue 14: operator,
divergence and daily-loss halts need `resume`; a JOURNAL halt lifts itself)."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.clock import KST, ManualClock
from engine.events import TradingState, TradingStateChanged
from engine.trading.risk import HaltReason, Reason, Rejection, RiskEngine
from tests.trading.test_risk import Account, buy, engine, rejected, sell

H = HaltReason
T = TradingState


def test_the_halt_reasons_and_which_a_person_lifts() -> None:
    assert [h.value for h in HaltReason] == [
        "OPERATOR",
        "DIVERGENCE",
        "DAILY_LOSS",
        "JOURNAL",
        "JOURNAL_BACKLOG",
    ]


def test_a_backlog_halt_lifts_itself_and_nothing_else() -> None:
    risk = engine()
    risk.halt("look")
    risk.halt(H.JOURNAL_BACKLOG, "JOURNAL_BACKLOG")
    assert risk.state_reason == "look; JOURNAL_BACKLOG"
    assert risk.lift(H.JOURNAL_BACKLOG, "caught up") == TradingStateChanged(
        T.HALTED, T.HALTED, "caught up", ("OPERATOR",)
    )
    assert risk.lift(H.JOURNAL_BACKLOG, "again") is None
    with pytest.raises(ValueError, match="resume"):
        risk.lift(H.OPERATOR, "not by itself")
    assert risk.state is T.HALTED
    # Journaled halts are those a person lifts: a backlog does not outlive the process.
    risk.halt(H.JOURNAL_BACKLOG, "JOURNAL_BACKLOG")
    assert risk.journaled_halts() == {"OPERATOR": "look"}


def test_reasons_add_up_and_each_shows_in_the_state_reason() -> None:
    risk = engine(daily_loss_limit=1_000)
    assert risk.halt(H.DIVERGENCE, "POSITION_DIVERGENCE") == TradingStateChanged(
        T.HALTED, T.ACTIVE, "POSITION_DIVERGENCE", ("DIVERGENCE",)
    )
    # A second reason while halted: the state stays, the set grows, and that is an event.
    assert risk.halt("OPERATOR_HALT: look") == TradingStateChanged(
        T.HALTED, T.HALTED, "OPERATOR_HALT: look", ("DIVERGENCE", "OPERATOR")
    )
    change = risk.add_realized_pnl(-1_000)
    assert change == TradingStateChanged(
        T.HALTED,
        T.HALTED,
        "DAILY_LOSS: lost 1000 of 1000",
        ("DIVERGENCE", "OPERATOR", "DAILY_LOSS"),
    )
    assert risk.halt(H.OPERATOR, "again") is None  # already in force: first detail kept
    assert risk.state_reason == (
        "POSITION_DIVERGENCE; OPERATOR_HALT: look; DAILY_LOSS: lost 1000 of 1000"
    )
    assert rejected(risk, sell(1), Account(positions={"005930": 5})) == Rejection(
        Reason.HALTED, detail=risk.state_reason
    )


def test_resume_lifts_what_a_person_must_lift_but_not_a_journal_halt() -> None:
    risk = engine()
    risk.halt(H.OPERATOR, "OPERATOR_HALT")
    risk.set_journal_fault(True, "OperationalError: database or disk is full")
    assert risk.journaled_halts() == {"OPERATOR": "OPERATOR_HALT"}
    assert risk.resume("OPERATOR_RESUME") == TradingStateChanged(
        T.HALTED, T.HALTED, "OPERATOR_RESUME", ("JOURNAL",)
    )
    assert risk.state is T.HALTED
    assert risk.state_reason == "JOURNAL: OperationalError: database or disk is full"
    # The journal writes again: the halt lifts itself.
    assert risk.set_journal_fault(False) == TradingStateChanged(
        T.ACTIVE, T.HALTED, "JOURNAL: writes again", ()
    )
    assert risk.set_journal_fault(False) is None
    assert risk.check(buy(), "s1", Account()) is None


def test_a_journal_halt_lifting_leaves_a_persons_halt_in_force() -> None:
    risk = engine()
    assert risk.set_journal_fault(True, "disk full") == TradingStateChanged(
        T.HALTED, T.ACTIVE, "JOURNAL: disk full", ("JOURNAL",)
    )
    assert risk.set_journal_fault(True, "still full") is None
    risk.halt("OPERATOR_HALT")
    assert risk.set_journal_fault(False) == TradingStateChanged(
        T.HALTED, T.HALTED, "JOURNAL: writes again", ("OPERATOR",)
    )
    assert rejected(risk, buy(), Account()).reason is Reason.HALTED


def test_resume_of_one_kind_lifts_that_kind_only() -> None:
    risk = engine()
    risk.halt(H.DIVERGENCE, "POSITION_DIVERGENCE")
    risk.halt(H.OPERATOR, "OPERATOR_HALT")
    assert risk.resume("checked", H.DIVERGENCE) == TradingStateChanged(
        T.HALTED, T.HALTED, "checked", ("OPERATOR",)
    )
    assert risk.resume("checked", H.JOURNAL) is None  # not a person's to lift
    assert risk.resume("all") == TradingStateChanged(T.ACTIVE, T.HALTED, "all", ())


def test_halts_come_back_from_the_journal_and_an_unknown_kind_stays_a_halt() -> None:
    risk = engine()
    change = risk.restore_halts({"DAILY_LOSS": "DAILY_LOSS: lost 5 of 5", "NEWER_KIND": "x"})
    assert change == TradingStateChanged(
        T.HALTED, T.ACTIVE, "DAILY_LOSS: lost 5 of 5; x", ("DAILY_LOSS", "OPERATOR")
    )
    assert risk.restore_halts({"JOURNAL": "not journaled"}) is None
    assert risk.restore_halts({}) is None


def test_reducing_shows_once_the_halts_are_lifted() -> None:
    risk = engine()
    risk.set_state(T.REDUCING, "flatten")
    risk.set_journal_fault(True, "full")
    assert risk.state is T.HALTED
    assert risk.set_journal_fault(False) == TradingStateChanged(
        T.REDUCING, T.HALTED, "JOURNAL: writes again", ()
    )
    assert risk.state_reason == "flatten"


def test_a_restored_breach_does_not_halt_when_the_journal_knows_the_halts() -> None:
    clock = ManualClock(datetime(2026, 1, 6, 10, 0, tzinfo=KST))
    risk: RiskEngine = engine(clock, daily_loss_limit=1_000_000)
    counters = {"orders_sent": 9, "realized_pnl": -1_200_000}
    assert risk.restore("20260106", counters, halt_on_loss=False) is None
    assert risk.state is T.ACTIVE  # resumed after the breach, before the restart
    # New exposure is still refused for the day.
    assert rejected(risk, buy(), Account()) == Rejection(Reason.DAILY_LOSS, 1_000_000, 1_200_000)
