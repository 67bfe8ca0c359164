"""The feed's silence rules without a socket: stale once, resumed by a frame, dead after grace."""

from __future__ import annotations

from engine.kiwoom.liveness import Liveness, Verdict


def test_silence_turns_stale_once_then_dead_after_the_grace() -> None:
    live = Liveness(stale_after_s=45.0, grace_s=10.0, last_rx=100.0)
    assert live.check(144.9) is Verdict.OK
    assert live.next_check_in(144.9) == 145.0 - 144.9
    assert live.check(145.0) is Verdict.STALE
    assert live.stale
    assert live.check(150.0) is Verdict.OK  # reported once per silent spell
    assert live.next_check_in(150.0) == 5.0  # now waiting for the end of the grace
    assert live.check(155.0) is Verdict.DEAD
    assert live.dead


def test_a_frame_ends_a_stale_spell_and_restarts_the_count() -> None:
    live = Liveness(stale_after_s=45.0, grace_s=10.0, last_rx=0.0)
    assert live.heard(20.0) is None  # not stale: nothing to report
    assert live.check(65.0) is Verdict.STALE
    assert live.heard(70.0) == 50.0  # the silence it ended
    assert not live.stale
    assert live.check(114.0) is Verdict.OK
    assert live.check(115.0) is Verdict.STALE  # a new spell is reported again
    assert not live.dead
