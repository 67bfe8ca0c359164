"""The backtest's `UniverseFeed` (engine/universe/port.py): condition search and run-time
subscriptions answered from the history store, on the run's timeline, so that a strategy that
watches conditions or subscribes while running runs unchanged.

- `condition_list`: the conditions the store holds rows of over the run's days (the recorded
  login's name, or the seq as the name when no list was recorded).
- `watch(seq)`: the members are what the recorded rows before now make them (the members the
  recorded search started with, moved by the hits after it; none when nothing was recorded
  yet), told as entered hits at once as the live feed does; from now on the recorded hits and
  search starts come through the run's timeline, as the live ConditionBook turns them into
  hits (duplicates dropped, a search start's difference as hits with time 0).
- `subscribe`: the symbol's stored data of `[backtest] kinds` from now on joins the timeline
  (its files opened lazily, read a batch at a time), for every owner together; `unsubscribe`
  by its last owner takes it out. A symbol of the config is always fed: nothing changes.
- `snapshot`: the base price the run knows (the previous day's close or the first price),
  no limits, no quote: the first stored quote gives it.

`Timeline` is the merge the run loop iterates while anything joined: the config's data (one
already merged source) and the joined ones by (time, dataset rank, symbol), the config's first
at a full tie. With nothing joined the run loop iterates the config's data itself and pays
nothing for this module (engine/backtest/run.py).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from engine.bus import EventBus
from engine.data.reader import ConditionRecord, condition_list, iter_conditions
from engine.events import Bar, ConditionHit, OrderBook, Quote, Trade, ViEvent
from engine.universe.port import Snapshot
from engine.universe.rules import limit_message, resolve_condition

CONDITION_RANK = 6
"""A condition record after every market dataset of its instant (engine/data/reader.py)."""
_RANK_OF: dict[type, int] = {OrderBook: 0, Quote: 1, Trade: 2, ViEvent: 3, Bar: 5}

Keyed = tuple[int, int, str, Any]
"""(time ns, dataset rank, symbol, event)."""
_Entry = tuple[int, int, str, int, int, Any, Iterator[Keyed]]
"""(time, rank, symbol, source order, pull number, event, its source): never ties past the
pull number, so events are never compared."""


def _keyed_base(base: Iterator[tuple[int, Any]]) -> Iterator[Keyed]:
    rank = _RANK_OF
    for t, ev in base:
        yield t, rank.get(type(ev), CONDITION_RANK), ev.symbol, ev


class Timeline:
    """A k-way merge that sources join and leave while it runs (see the module docstring)."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._orders = itertools.count(1)
        self._pulls = 0
        self._last: _Entry | None = None
        self._base: Iterator[tuple[int, Any]] | None = None
        self.joined: set[int] = set()
        """The orders of the joined sources still in the merge."""
        self.added = False
        """A source with data joined since the run loop last looked."""

    def _pull(self, order: int, it: Iterator[Keyed]) -> None:
        x = next(it, None)
        if x is not None:
            self._pulls += 1
            heapq.heappush(self._heap, (x[0], x[1], x[2], order, self._pulls, x[3], it))
        elif order:
            self.joined.discard(order)

    def add(self, source: Iterator[Keyed]) -> int:
        order = next(self._orders)
        self.joined.add(order)
        self._pull(order, source)
        if order in self.joined:
            self.added = True
        return order

    def remove(self, order: int) -> None:
        if order in self.joined:
            self.joined.discard(order)
            self._heap = [e for e in self._heap if e[3] != order]
            heapq.heapify(self._heap)

    def attach_base(self, base: Iterator[tuple[int, Any]]) -> None:
        """Merge the config's data (what the run loop has not taken yet) in."""
        self._base = base
        self._last = None
        self._pull(0, _keyed_base(base))

    def detach_base(self) -> Iterator[tuple[int, Any]]:
        """The config's data not yet taken, out of the merge (nothing joined is left)."""
        head = [(e[0], e[5]) for e in self._heap if e[3] == 0]
        self._heap = [e for e in self._heap if e[3] != 0]
        base, self._base = self._base, None
        self._last = None
        assert base is not None
        return itertools.chain(head, base)

    def push_back(self) -> None:
        """The event last taken goes back (a source joined before its time)."""
        if self._last is not None:
            heapq.heappush(self._heap, self._last)
            self._last = None

    def __iter__(self) -> Timeline:
        return self

    def __next__(self) -> tuple[int, Any]:
        if not self._heap:
            raise StopIteration
        e = heapq.heappop(self._heap)
        self._last = e
        self._pull(e[3], e[6])
        return e[0], e[5]


class BacktestUniverseFeed:
    """`UniverseFeed` over the history store at `root` for the run's days [start, end]."""

    def __init__(
        self,
        root: Path,
        start: date,
        end: date,
        *,
        bus: EventBus,
        now: Callable[[], int],
        configured: Iterable[str],
        open_symbol: Callable[[str, int], list[Iterator[Keyed]]],
        base: dict[str, int],
        max_realtime: int,
    ) -> None:
        self.root = root
        self.start = start
        self.end = end
        self.bus = bus
        self.now = now
        self.configured = frozenset(configured)
        self.open_symbol = open_symbol
        self.base = base
        self.max_realtime = max_realtime
        self.timeline = Timeline()
        self._list: list[tuple[str, str]] | None = None
        self._members: dict[str, dict[str, None]] = {}
        """Watched seq -> its members now, in the order they entered."""
        self._searches: dict[str, int] = {}
        """Watched seq -> its source's order in the timeline."""
        self._owners: dict[str, set[str]] = {}
        self._symbols: dict[str, list[int]] = {}
        """Joined symbol -> its sources' orders."""
        self.duplicates = 0
        """Recorded hits that changed nothing (as the live ConditionBook counts them)."""

    # --- conditions --------------------------------------------------------------------------

    def condition_list(self) -> list[tuple[str, str]]:
        if self._list is None:
            rows = condition_list(self.root, self.start, self.end)
            self._list = [(seq, name or seq) for seq, name in rows]
        return list(self._list)

    async def list_conditions(self) -> list[tuple[str, str]]:
        return self.condition_list()

    def resolve(self, ref: str) -> tuple[str, str]:
        return resolve_condition(self.condition_list(), ref)

    def _name(self, seq: str) -> str:
        return next((n for s, n in self.condition_list() if s == seq), seq)

    def members(self, seq: str) -> list[str] | None:
        m = self._members.get(seq)
        return list(m) if m is not None else None

    async def watch(self, seq: str) -> None:
        if seq in self._members:
            return
        if len(self._members) >= self.max_realtime:
            raise ValueError(limit_message(len(self._members), self.max_realtime))
        if all(s != seq for s, _ in self.condition_list()):
            raise ValueError(f"no condition seq {seq!r} in the store's recorded data")
        now = self.now()
        records = iter_conditions(self.root, seq, self.start, self.end)
        members: dict[str, None] = {}
        first: ConditionRecord | None = None
        for rec in records:
            if rec.ts_recv >= now:
                first = rec
                break
            _apply(members, rec)
        self._members[seq] = members
        name = self._name(seq)
        for symbol in members:
            self.bus.publish(ConditionHit(symbol, seq, name, True, 0))
        if first is not None:
            rest = itertools.chain((first,), records)
            self._searches[seq] = self.timeline.add(
                (r.ts_recv, CONDITION_RANK, "", r) for r in rest
            )

    async def unwatch(self, seq: str) -> None:
        self._members.pop(seq, None)
        order = self._searches.pop(seq, None)
        if order is not None:
            self.timeline.remove(order)

    def apply(self, rec: ConditionRecord) -> None:
        """A recorded row reached on the timeline: the hits the live feed would publish."""
        members = self._members.get(rec.condition_seq)
        if members is None:
            return
        seq = rec.condition_seq
        name = self._name(seq)
        if rec.members is None:
            if rec.entered == (rec.symbol in members):
                self.duplicates += 1
                return
            _apply(members, rec)
            self.bus.publish(ConditionHit(rec.symbol, seq, name, rec.entered, rec.time))
            return
        before = list(members)
        _apply(members, rec)
        for s in members:
            if s not in before:
                self.bus.publish(ConditionHit(s, seq, name, True, 0))
        for s in before:
            if s not in members:
                self.bus.publish(ConditionHit(s, seq, name, False, 0))

    # --- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, owner: str, symbol: str, kinds: Iterable[str]) -> None:
        owners = self._owners.setdefault(symbol, set())
        first = not owners
        owners.add(owner)
        if first and symbol not in self.configured:
            tl = self.timeline
            self._symbols[symbol] = [tl.add(s) for s in self.open_symbol(symbol, self.now())]

    async def unsubscribe(self, owner: str, symbol: str) -> None:
        owners = self._owners.get(symbol)
        if owners is None:
            return
        owners.discard(owner)
        if not owners:
            del self._owners[symbol]
            for order in self._symbols.pop(symbol, ()):
                self.timeline.remove(order)

    async def snapshot(self, symbol: str) -> Snapshot:
        return Snapshot(symbol, self.base.get(symbol, 0), 0, 0, None)


def _apply(members: dict[str, None], rec: ConditionRecord) -> None:
    if rec.members is not None:
        members.clear()
        members.update(dict.fromkeys(rec.members))
    elif rec.entered:
        members[rec.symbol] = None
    else:
        members.pop(rec.symbol, None)
