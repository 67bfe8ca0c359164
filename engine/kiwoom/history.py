"""The history port (engine/history.py) on Kiwoom's chart APIs: ka10080 minute bars and
ka10081 daily bars."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.clock import KST, Clock
from engine.events import Bar
from engine.history import HistoryUnavailable
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError
from engine.models import Candle

_ROWS_PER_PAGE = 100
"""About what one chart page holds; asking for count // 100 + 1 pages covers `count`."""


class KiwoomHistory:
    """`HistoryPort` over `KiwoomApi`: "Nm" intervals from ka10080 (N = 1, 3, 5, 10, 15, 30,
    45, 60), "1d" from ka10081. Adjusted prices, KRX."""

    def __init__(self, api: KiwoomApi, clock: Clock) -> None:
        self._api = api
        self._clock = clock

    async def bars(self, symbol: str, interval: str, count: int) -> list[Bar]:
        if count <= 0:
            return []
        pages = max(1, count // _ROWS_PER_PAGE + 1)
        try:
            if interval == "1d":
                length = timedelta(days=1)
                today = self._clock.now().date()
                candles = await self._api.daily_candles(symbol, today, max_pages=pages)
            elif interval.endswith("m") and interval[:-1].isdigit():
                minutes = int(interval[:-1])
                length = timedelta(minutes=minutes)
                candles = await self._api.minute_candles(symbol, minutes, max_pages=pages)
            else:
                raise HistoryUnavailable(f"no Kiwoom chart for interval {interval!r}")
        except KiwoomError as e:
            raise HistoryUnavailable(str(e)) from e
        now = self._clock.now()
        closed = [c for c in candles if _at(c) + length <= now]  # the broker lists the open one
        closed.sort(key=_at)
        return [
            Bar(symbol, interval, _at(c), c.open, c.high, c.low, c.close, c.volume)
            for c in closed[-count:]
        ]


def _at(c: Candle) -> datetime:
    return c.at if c.at.tzinfo else c.at.replace(tzinfo=KST)
