"""The feed the run-time universe talks to: condition search and per-owner registrations, in
the engine's words (data kinds, not realtime type codes). engine/kiwoom/universe_feed.py is
the Kiwoom side, engine/backtest/universe.py the backtest's (answered from the history
store)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from engine.events import Quote


class FeedUnavailable(Exception):
    """The feed has no session now: the request is asked again after the reconnect."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What risk and a strategy need before the first order in a new symbol: the day's base
    price and limits (0 when unknown) and the best quote (None when it could not be had)."""

    symbol: str
    base_price: int
    upper_limit: int
    lower_limit: int
    quote: Quote | None


class UniverseFeed(Protocol):
    max_realtime: int
    """Realtime condition searches the login may hold (kiwoom.max_realtime_conditions)."""

    def condition_list(self) -> list[tuple[str, str]]:
        """The login's conditions as (seq, name), from the last list the broker sent."""
        ...

    async def list_conditions(self) -> list[tuple[str, str]]:
        """Ask the broker for the list now (also refreshes `condition_list`)."""
        ...

    def resolve(self, ref: str) -> tuple[str, str]:
        """The (seq, name) that `ref` (a name, or "seq:N") names in `condition_list`. Raises
        ValueError saying what the login has when none (or several) match."""
        ...

    def members(self, seq: str) -> list[str] | None:
        """The current members of the realtime search `seq`, None when none runs."""
        ...

    async def watch(self, seq: str) -> None:
        """Start the realtime search `seq`: its members arrive as entered `ConditionHit`s,
        then every change. Raises on refusal."""
        ...

    async def unwatch(self, seq: str) -> None:
        """Stop the realtime search `seq`."""
        ...

    async def subscribe(self, owner: str, symbol: str, kinds: Iterable[str]) -> None:
        """`owner` wants `kinds` (DATA_KINDS) of `symbol`; registered once for all owners."""
        ...

    async def unsubscribe(self, owner: str, symbol: str) -> None:
        """`owner` no longer wants `symbol`; removed when no owner (nor the daemon) does."""
        ...

    async def snapshot(self, symbol: str) -> Snapshot:
        """The base price, limits and best quote of `symbol` now (REST, paced by the query
        limits). Raises on failure."""
        ...
