"""The history port: where the strategy host gets the bars that warm a strategy up.

The host asks a `HistoryPort` and never a broker, so the same host runs live (Kiwoom's chart
APIs, engine/kiwoom/history.py) and in a backtest (the history store).
"""

from __future__ import annotations

from typing import Protocol

from engine.events import Bar


class HistoryUnavailable(Exception):
    """The history could not be had (the source refused or failed). The host logs it and the
    strategy starts with what there is."""


class HistoryPort(Protocol):
    """A source of past bars."""

    async def bars(self, symbol: str, interval: str, count: int) -> list[Bar]:
        """The last `count` bars of `interval` ("1m", "5m", "1d", ...) for `symbol` that had
        closed by now (the port's clock), oldest first; fewer when the source has fewer.

        A bar still open now is never among them: the live builder makes that one. Raises
        HistoryUnavailable when the source cannot answer. May block on I/O.
        """
        ...
