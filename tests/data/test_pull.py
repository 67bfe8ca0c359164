"""The puller over a scripted chart source: gaps only, ticks read again and counted, a busy
source waited out on the clock, a refusal that stops."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import KST, ManualClock
from engine.data.pull import BUSY_BASE_S, Puller
from engine.data.source import ChartPage, SourceBusy, SourceRefused
from engine.data.store import Store
from engine.models import Candle
from tests.support import until

TODAY = date(2026, 11, 30)


class Script:
    """Rows newest first, `per_page` a page; records every request. `busy` pages answer
    SourceBusy first; `refuse` refuses everything."""

    def __init__(self, rows: list[Candle], per_page: int = 3) -> None:
        self.rows = sorted(rows, key=lambda c: c.at, reverse=True)
        self.per_page = per_page
        self.asked: list[tuple[str, date | None, bool, str | None]] = []
        self.busy = 0
        self.refuse = False

    async def chart_page(
        self,
        symbol: str,
        interval: str,
        *,
        until: date | None,
        adjusted: bool,
        cont_key: str | None,
    ) -> ChartPage:
        self.asked.append((interval, until, adjusted, cont_key))
        if self.refuse:
            raise SourceRefused("[1902] no such symbol")
        if self.busy:
            self.busy -= 1
            raise SourceBusy("[1700] too many")
        rows = [c for c in self.rows if until is None or c.at.date() <= until]
        if interval == "1d":
            rows = [c for c in rows if c.at.hour == 0] or _daily(rows)
        start = int(cont_key or 0)
        page = rows[start : start + self.per_page]
        more = start + self.per_page < len(rows)
        return ChartPage(tuple(page), str(start + self.per_page) if more else None)


def _daily(rows: list[Candle]) -> list[Candle]:
    days = sorted({c.at.date() for c in rows}, reverse=True)
    return [
        Candle(datetime(d.year, d.month, d.day, tzinfo=KST), 100, 100, 100, 100, 1) for d in days
    ]


def ticks(day: date, n: int) -> list[Candle]:
    base = datetime(day.year, day.month, day.day, 9, 0, tzinfo=KST)
    # two prints a second: seq must keep them apart
    return [
        Candle(base + timedelta(seconds=i // 2), 100 + i, 100 + i, 100 + i, 100 + i, 1)
        for i in range(n)
    ]


def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 30, 20, 0, tzinfo=KST))


async def test_ticks_fill_an_old_gap_reading_newer_pages_again(tmp_path: Path) -> None:
    days = [date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)]
    src = Script([t for d in days for t in ticks(d, 6)], per_page=3)
    store = Store(tmp_path)
    puller = Puller(src, store, clock())
    first = await puller.pull("005930", "tick", days[1], days[2])
    assert first.rows == 12
    t = store.read("tick", "005930", days[0], days[2])
    assert t.num_rows == 12
    assert t.column("seq").to_pylist() == [0, 1, 0, 1, 0, 1] * 2
    # the older day: the pages of the two stored days come again first, counted
    second = await puller.pull("005930", "tick", days[0], days[2])
    assert second.gaps == [(days[0], days[0])]
    assert second.reread_pages == 4
    assert second.rows == 6
    t = store.read("tick", "005930", days[0], days[2])
    assert t.num_rows == 18
    assert (
        len(set(zip(t.column("time").to_pylist(), t.column("seq").to_pylist(), strict=True))) == 18
    )


async def test_a_busy_source_is_waited_out_on_the_clock(tmp_path: Path) -> None:
    day = date(2026, 11, 26)
    src = Script([Candle(datetime(2026, 11, 26, tzinfo=KST), 10, 11, 9, 10, 5)])
    src.busy = 2
    clk = clock()
    task = asyncio.create_task(Puller(src, Store(tmp_path), clk).pull("005930", "1d", day, day))
    for wait in (BUSY_BASE_S, BUSY_BASE_S * 2):
        await until(lambda: clk.sleeping == 1)
        assert not task.done()
        clk.advance(wait)
    stats = await task
    assert stats.busy_waits == 2
    assert stats.rows == 1


async def test_a_refusal_stops_the_pull(tmp_path: Path) -> None:
    src = Script([])
    src.refuse = True
    with pytest.raises(SourceRefused, match="1902"):
        await Puller(src, Store(tmp_path), clock()).pull("999999", "1d", TODAY, TODAY)
    assert len(src.asked) == 1


async def test_a_next_key_that_comes_back_ends_the_walk(tmp_path: Path) -> None:
    """A source that hands out A, B, A, B, ... with rows that never get older: the walk stops
    at the first key it has seen before instead of paging forever (capped at 50 here)."""
    day = date(2026, 11, 26)
    row = Candle(datetime(2026, 11, 26, 9, 1, tzinfo=KST), 10, 11, 9, 10, 5)

    class Looping:
        asked = 0

        async def chart_page(
            self,
            symbol: str,
            interval: str,
            *,
            until: date | None,
            adjusted: bool,
            cont_key: str | None,
        ) -> ChartPage:
            if interval == "1d":
                return ChartPage((), None)
            self.asked += 1
            if self.asked >= 50:
                return ChartPage((row,), None)
            return ChartPage((row,), "B" if cont_key == "A" else "A")

    src = Looping()
    stats = await Puller(src, Store(tmp_path), clock()).pull("005930", "1m", day, day)
    assert stats.pages == 3
