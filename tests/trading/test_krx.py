"""KRX tick table, rounding, daily limits and session phases, walked at every band edge."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.trading.krx import (
    SessionPhase,
    is_on_tick,
    price_limits,
    round_to_tick,
    session_phase,
    tick_size,
    within_limits,
)

EDGES = [
    (1, 1),
    (1_999, 1),
    (2_000, 5),
    (4_995, 5),
    (4_999, 5),
    (5_000, 10),
    (19_990, 10),
    (20_000, 50),
    (49_950, 50),
    (50_000, 100),
    (199_900, 100),
    (200_000, 500),
    (499_500, 500),
    (500_000, 1_000),
    (3_000_000, 1_000),
]


@pytest.mark.parametrize(("price", "tick"), EDGES)
def test_tick_size_at_band_edges(price: int, tick: int) -> None:
    assert tick_size(price) == tick


def test_tick_size_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="price"):
        tick_size(0)


@pytest.mark.parametrize(
    ("price", "ok"),
    [
        (1_999, True),
        (2_000, True),
        (2_001, False),
        (2_005, True),
        (4_995, True),
        (5_005, False),
        (5_010, True),
        (19_990, True),
        (20_010, False),
        (20_050, True),
        (49_950, True),
        (50_050, False),
        (50_100, True),
        (199_900, True),
        (200_100, False),
        (200_500, True),
        (499_500, True),
        (500_500, False),
        (501_000, True),
        (0, False),
        (-5, False),
    ],
)
def test_is_on_tick(price: int, ok: bool) -> None:
    assert is_on_tick(price) is ok


@pytest.mark.parametrize(
    ("price", "up", "down", "nearest"),
    [
        (1_999, 1_999, 1_999, 1_999),
        (2_001, 2_005, 2_000, 2_000),
        (2_003, 2_005, 2_000, 2_005),
        (4_999, 5_000, 4_995, 5_000),
        (19_995, 20_000, 19_990, 20_000),
        (49_990, 50_000, 49_950, 50_000),
        (199_950, 200_000, 199_900, 200_000),
        (499_600, 500_000, 499_500, 499_500),
        (500_001, 501_000, 500_000, 500_000),
        (70_050, 70_100, 70_000, 70_100),
    ],
)
def test_round_to_tick(price: int, up: int, down: int, nearest: int) -> None:
    assert round_to_tick(price, "up") == up
    assert round_to_tick(price, "down") == down
    assert round_to_tick(price, "nearest") == nearest


@given(st.integers(min_value=1, max_value=5_000_000))
def test_round_to_tick_properties(price: int) -> None:
    up = round_to_tick(price, "up")
    down = round_to_tick(price, "down")
    assert is_on_tick(up)
    assert is_on_tick(down)
    assert down <= price <= up
    # adjacent valid prices: nothing on-tick strictly between them
    assert up - down in (0, tick_size(down))


@pytest.mark.parametrize(
    ("prev", "lower", "upper"),
    [
        (70_000, 49_000, 91_000),
        # 10,000 * 1.3 = 13,000 and * 0.7 = 7,000: both on tick.
        (10_000, 7_000, 13_000),
        # 1,000 * 1.3 = 1,300; 0.7 -> 700 (tick 1).
        (1_000, 700, 1_300),
        # 1,550 * 1.3 = 2,015 -> tick 5 there -> 2,015 stays; lower 1,085.
        (1_550, 1_085, 2_015),
        # 1,540 * 1.3 = 2,002 -> rounded down onto the 5-won tick: 2,000.
        (1_540, 1_078, 2_000),
        # 16,000 * 1.3 = 20,800 -> 50-won tick: 20,800; 0.7 = 11,200.
        (16_000, 11_200, 20_800),
        # 16,010 * 1.3 = 20,813 -> 20,800; 0.7 = 11,207 -> up onto 10: 11,210.
        (16_010, 11_210, 20_800),
        # 390,000 * 1.3 = 507,000 (tick 1000) ; 0.7 = 273,000 (tick 500).
        (390_000, 273_000, 507_000),
        # 385,500 * 1.3 = 501,150 -> 501,000; * 0.7 = 269,850 -> 270,000.
        (385_500, 270_000, 501_000),
        # 45,000 * 1.3 = 58,500 (tick 100); * 0.7 = 31,500 (tick 50).
        (45_000, 31_500, 58_500),
        # 45,050 * 1.3 = 58,565 -> 58,500; * 0.7 = 31,535 -> 31,550.
        (45_050, 31_550, 58_500),
    ],
)
def test_price_limits(prev: int, lower: int, upper: int) -> None:
    assert price_limits(prev) == (lower, upper)
    assert within_limits(lower, prev)
    assert within_limits(upper, prev)
    assert not within_limits(upper + tick_size(upper), prev)


@given(st.integers(min_value=10, max_value=3_000_000))
def test_price_limits_inside_band_and_on_tick(prev: int) -> None:
    lower, upper = price_limits(prev)
    assert is_on_tick(lower)
    assert is_on_tick(upper)
    assert lower * 100 >= prev * 70
    assert upper * 100 <= prev * 130
    # the next tick out is past the band: the limits are as wide as allowed
    assert (upper + tick_size(upper)) * 100 > prev * 130
    below = lower - 1
    assert below < 1 or round_to_tick(below, "down") * 100 < prev * 70


@pytest.mark.parametrize(
    ("t", "phase"),
    [
        (time(8, 0), SessionPhase.CLOSED),
        (time(8, 30), SessionPhase.PRE_OPEN_AFTER_HOURS),
        (time(8, 45), SessionPhase.OPENING_AUCTION),
        (time(9, 0), SessionPhase.REGULAR),
        (time(15, 19, 59), SessionPhase.REGULAR),
        (time(15, 20), SessionPhase.CLOSING_AUCTION),
        # The 15:30-15:40 pause takes no order: CLOSED in the one session vocabulary.
        (time(15, 35), SessionPhase.CLOSED),
        (time(15, 40), SessionPhase.POST_CLOSE),
        (time(15, 59, 59), SessionPhase.POST_CLOSE),
        (time(16, 0), SessionPhase.AFTER_HOURS_SINGLE),
        (time(17, 59, 59), SessionPhase.AFTER_HOURS_SINGLE),
        (time(18, 0), SessionPhase.CLOSED),
    ],
)
def test_session_phase(t: time, phase: SessionPhase) -> None:
    assert session_phase(t) is phase
