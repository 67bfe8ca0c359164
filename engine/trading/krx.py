"""KRX market rules: tick sizes (호가가격단위), daily price limits and session phases.

Domain code with no broker wire names. Rules are those in force since 2023-01-25, when KOSPI and
KOSDAQ share one tick table. Prices are int KRW.
"""

from __future__ import annotations

import functools
from datetime import time
from typing import Literal

from engine.events import SessionState

# (exclusive upper bound of the band, tick in the band); prices at or above the last bound use
# TOP_TICK. Every bound is a multiple of the next band's tick, so rounding never straddles bands.
TICK_TABLE: tuple[tuple[int, int], ...] = (
    (2_000, 1),
    (5_000, 5),
    (20_000, 10),
    (50_000, 50),
    (200_000, 100),
    (500_000, 500),
)
TOP_TICK = 1_000

PRICE_LIMIT_PCT = 30
"""Daily limit: +-30 % of the base price (normally the previous close)."""

Direction = Literal["up", "down", "nearest"]


def tick_size(price: int) -> int:
    """The tick (호가단위) for a price. Raises ValueError for a price below 1."""
    if price < 1:
        raise ValueError(f"price must be >= 1, got {price}")
    for bound, tick in TICK_TABLE:
        if price < bound:
            return tick
    return TOP_TICK


def is_on_tick(price: int) -> bool:
    """True when `price` is a valid order price (>= 1 and a multiple of its own tick)."""
    return price >= 1 and price % tick_size(price) == 0


def round_to_tick(price: int, direction: Direction = "nearest") -> int:
    """The nearest valid price at or above ("up"), at or below ("down") or either ("nearest").

    "nearest" breaks ties upwards. Never returns less than 1. Pure; raises ValueError for a
    price below 1.
    """
    if price < 1:
        raise ValueError(f"price must be >= 1, got {price}")
    tick = tick_size(price)
    down = price - price % tick
    if down == price:
        return price
    up = down + tick  # on tick: band bounds are multiples of the higher band's tick
    if direction == "down":
        return max(down, 1)
    if direction == "up":
        return up
    return up if up - price <= price - down else max(down, 1)


@functools.lru_cache(maxsize=4096)  # a handful of bases a day, asked for on every order
def price_limits(base_price: int) -> tuple[int, int]:
    """(lower, upper) daily limit prices (하한가, 상한가) for a base price (previous close).

    KRX computes base +- 30 % and truncates onto the tick of the limit price itself: the upper
    limit rounds down and the lower limit rounds up, so both stay inside the +-30 % band.
    """
    if base_price < 1:
        raise ValueError(f"base price must be >= 1, got {base_price}")
    raw_upper = base_price * (100 + PRICE_LIMIT_PCT) // 100
    raw_lower = -(-base_price * (100 - PRICE_LIMIT_PCT) // 100)  # ceil
    return round_to_tick(max(raw_lower, 1), "up"), round_to_tick(raw_upper, "down")


def within_limits(price: int, base_price: int) -> bool:
    """True when `price` lies inside the day's [lower, upper] limit prices."""
    lower, upper = price_limits(base_price)
    return lower <= price <= upper


SessionPhase = SessionState
"""The old name of the engine's one session vocabulary (engine.events.SessionState)."""

_PHASES: tuple[tuple[time, time, SessionState], ...] = (
    (time(8, 30), time(8, 40), SessionState.PRE_OPEN_AFTER_HOURS),  # 장전 시간외 종가
    (time(8, 40), time(9, 0), SessionState.OPENING_AUCTION),  # orders collected from 08:30
    (time(9, 0), time(15, 20), SessionState.REGULAR),
    (time(15, 20), time(15, 30), SessionState.CLOSING_AUCTION),
    # 15:30-15:40 takes no order: CLOSED, as the night.
    (time(15, 40), time(16, 0), SessionState.POST_CLOSE),  # 장후 시간외 종가
    (time(16, 0), time(18, 0), SessionState.AFTER_HOURS_SINGLE),  # 시간외 단일가
)


def session_phase(t: time) -> SessionState:
    """The phase of a trading day at KST wall time `t` (start inclusive, end exclusive).

    Ignores holidays and special days (the 수능 late open); callers decide whether today trades.
    """
    naive = t.replace(tzinfo=None)
    for start, end, phase in _PHASES:
        if start <= naive < end:
            return phase
    return SessionState.CLOSED
