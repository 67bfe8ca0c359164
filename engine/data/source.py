"""What the puller needs of a broker's chart API, and the two ways it can say no. The Kiwoom
side is engine/kiwoom/history.py (`KiwoomCharts`); a test may bring its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from engine.models import Candle


@dataclass(frozen=True, slots=True)
class ChartPage:
    """One page of a chart, rows newest first (a tick is a Candle with open = high = low =
    close = its price and volume = its quantity). `next_key` asks for the next (older) page;
    None: the source has nothing older."""

    rows: tuple[Candle, ...]
    next_key: str | None


class SourceBusy(Exception):
    """The source refused for pacing (Kiwoom's [1700] family) after its own retries: wait and
    ask again."""


class SourceRefused(Exception):
    """The source refused for good (a bad symbol, no permission): the message says why."""


class ChartSource(Protocol):
    async def chart_page(
        self,
        symbol: str,
        interval: str,
        *,
        until: date | None,
        adjusted: bool,
        cont_key: str | None,
    ) -> ChartPage:
        """A page of `interval` ("tick", "1m" ... "60m", "1d") counting back from the end of
        day `until` (None: from the newest row; ticks always start there). Raises SourceBusy
        or SourceRefused, or the transport's own errors. May block on I/O."""
        ...
