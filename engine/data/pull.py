"""The pull: a broker's chart pages into the store, resumable and idempotent.

The manifest says which days are stored whole; a run asks only for the gaps of the range it
was given. Pages come newest first. A partition (a month of bars, a day of ticks) is written
once every row of it within the gap has been seen, i.e. once a page reached an older one,
and the manifest grows only after the file is in place. A kill at any point loses at most
the partitions not yet renamed; the next run asks for them again and writes them whole.

Ticks have no start date (Kiwoom's ka10079 pages from the newest print), so a run that fills
an old gap reads the newer pages again: counted in `reread_pages`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import structlog

from engine.clock import Clock
from engine.data import crash
from engine.data.layout import Partition, partition_of, partitions_between
from engine.data.manifest import Span, gaps
from engine.data.source import ChartPage, ChartSource, SourceBusy
from engine.data.store import Store, traded
from engine.models import Candle

log = structlog.get_logger(__name__)

BUSY_BASE_S = 2.0
"""First wait after the source said "too fast" past its own retries; doubles to BUSY_MAX_S."""
BUSY_MAX_S = 60.0
MAX_BUSY = 12
"""Waits in a row before the pull gives up (about ten minutes): the account is saturated by
something else, and what was stored so far stays stored."""


@dataclass
class PullStats:
    symbol: str
    interval: str
    gaps: list[Span] = field(default_factory=list)
    pages: int = 0
    rows: int = 0
    """Rows received inside the gaps (stored, or dropped as halted)."""
    reread_pages: int = 0
    """Pages read again: every row on them was outside the gaps (stored or after the range)."""
    halted: int = 0
    """Rows dropped because KRX did not trade (OHLC 0)."""
    factor_pages: int = 0
    busy_waits: int = 0
    fraction: float = 0.0
    """Share of the gap days walked, 0..1, for an ETA."""


Progress = Callable[[PullStats], None]


class Puller:
    """Pulls one symbol and interval at a time from `source` into `store`. `today` bounds
    the range and the manifest: a day is recorded as stored whole only once it is over."""

    def __init__(self, source: ChartSource, store: Store, clock: Clock) -> None:
        self._source = source
        self._store = store
        self._clock = clock

    async def pull(
        self,
        symbol: str,
        interval: str,
        start: date,
        end: date,
        progress: Progress | None = None,
    ) -> PullStats:
        """Fetch the gaps of [start, end] and store them. Raises SourceRefused (for good),
        SourceBusy (after MAX_BUSY waits), StoreError, or the transport's errors; whatever
        was stored before stays stored."""
        today = self._clock.now().date()
        end = min(end, today)
        stats = PullStats(symbol, interval)
        whole_until = today - timedelta(days=1)
        m = self._store.manifest(interval, symbol)
        stats.gaps = gaps(m.covered, start, end) if start <= end else []
        report = progress or (lambda s: None)
        if not stats.gaps:
            stats.fraction = 1.0
            report(stats)
            return stats
        total_days = sum((b - a).days + 1 for a, b in stats.gaps)
        if interval == "tick":
            await self._walk(stats, stats.gaps, None, whole_until, total_days, 0, report)
        else:
            done_days = 0
            for gap in reversed(stats.gaps):  # newest first, as the pages come
                await self._walk(stats, [gap], gap[1], whole_until, total_days, done_days, report)
                done_days += (gap[1] - gap[0]).days + 1
        if interval != "tick":
            await self._factors(stats, symbol, start, end, today)
        stats.fraction = 1.0
        report(stats)
        return stats

    async def _walk(
        self,
        stats: PullStats,
        spans: list[Span],
        until: date | None,
        whole_until: date,
        total_days: int,
        done_days: int,
        report: Progress,
    ) -> None:
        """Page back from `until` over `spans` (oldest first), writing each partition once it
        is whole."""
        interval, symbol = stats.interval, stats.symbol
        # (partition, span within it), newest first: flushed in this order as pages pass them
        todo: list[tuple[Partition, Span]] = []
        for a, b in spans:
            for part in partitions_between(interval, a, b):
                todo.append((part, (max(a, part.first), min(b, part.last))))
        todo.reverse()
        pending: dict[str, list[Candle]] = {}
        lowest = spans[0][0]
        highest = spans[-1][1]
        cont: str | None = None
        seen: set[str] = set()
        while True:
            page = await self._page(stats, until, cont)
            stats.pages += 1
            crash.point("page")
            useful = False
            for c in page.rows:
                d = c.at.date()
                if not any(a <= d <= b for a, b in spans):
                    continue
                useful = True
                stats.rows += 1
                if not traded(c):
                    stats.halted += 1
                pending.setdefault(partition_of(interval, d).key, []).append(c)
            if page.rows and not useful:
                stats.reread_pages += 1
            oldest = min((c.at.date() for c in page.rows), default=None)
            # a next-key met before would loop: the source has nothing new to give
            repeated = page.next_key is not None and page.next_key in seen
            finished = oldest is None or oldest < lowest or page.next_key is None or repeated
            while todo and (finished or (oldest is not None and todo[0][1][0] > oldest)):
                part, span = todo.pop(0)
                rows = pending.pop(part.key, [])
                rows.reverse()  # oldest first: prints of one second keep their order
                self._store.write(interval, symbol, part, span, rows, whole_until=whole_until)
            if oldest is not None:
                walked = (highest - max(oldest, lowest)).days
                stats.fraction = min(1.0, (done_days + walked) / total_days)
            report(stats)
            if finished:
                if repeated:
                    log.warning("history_next_key_repeated", symbol=symbol, pages=stats.pages)
                return
            cont = page.next_key
            if cont is not None:
                seen.add(cont)

    async def _page(self, stats: PullStats, until: date | None, cont: str | None) -> ChartPage:
        return await self._ask(stats, stats.interval, until, False, cont)

    async def _ask(
        self, stats: PullStats, interval: str, until: date | None, adjusted: bool, cont: str | None
    ) -> ChartPage:
        busy = 0
        while True:
            try:
                return await self._source.chart_page(
                    stats.symbol, interval, until=until, adjusted=adjusted, cont_key=cont
                )
            except SourceBusy:
                busy += 1
                stats.busy_waits += 1
                if busy > MAX_BUSY:
                    raise
                wait = min(BUSY_MAX_S, BUSY_BASE_S * 2.0 ** (busy - 1))
                log.warning("history_source_busy", symbol=stats.symbol, wait_s=wait, busy=busy)
                await self._clock.sleep(wait)

    async def _factors(
        self, stats: PullStats, symbol: str, start: date, end: date, today: date
    ) -> None:
        """Adjustment factors of [start, end]: the adjusted daily close over the raw one, both
        counted back from today (an adjusted series is relative to its base date)."""
        closes: list[dict[date, int]] = []
        for adjusted in (False, True):
            seen: dict[date, int] = {}
            cont: str | None = None
            while True:
                page = await self._ask(stats, "1d", today, adjusted, cont)
                stats.factor_pages += 1
                for c in page.rows:
                    if start <= c.at.date() <= end and traded(c):
                        seen[c.at.date()] = c.close
                oldest = min((c.at.date() for c in page.rows), default=None)
                if oldest is None or oldest < start or page.next_key is None:
                    break
                cont = page.next_key
            closes.append(seen)
        raw, adj = closes
        factors = {d: adj[d] / raw[d] for d in raw if d in adj and math.isfinite(adj[d] / raw[d])}
        if factors:
            self._store.write_factors(symbol, factors)
