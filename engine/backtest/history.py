"""Warm-up history from the store: the history port (engine/history.py) over engine/data's
`Store`, on the backtest's clock, so a strategy's `history = N` bars are those that had closed
when the backtest starts, never later ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from engine.backtest.clock import NS
from engine.clock import KST, Clock
from engine.data.layout import dataset_name
from engine.data.store import Store, StoreError
from engine.events import Bar
from engine.history import HistoryUnavailable
from engine.trading.bars import bar_length

BARS_PER_DAY = 380
"""1-minute bars in a KRX regular session (09:00-15:20, and the close): for the look-back."""
MAX_LOOKBACK_DAYS = 3_700


class StoreHistory:
    """See the module docstring."""

    def __init__(self, root: Path, clock: Clock) -> None:
        self.store = Store(root)
        self.clock = clock

    async def bars(self, symbol: str, interval: str, count: int) -> list[Bar]:
        now = self.clock.now()
        length = bar_length(interval)
        per_day = (
            1 if interval == "1d" else max(1, BARS_PER_DAY * 60 // int(length.total_seconds()))
        )
        days = min(MAX_LOOKBACK_DAYS, count // per_day * 7 // 5 + 10)
        try:
            dataset_name(interval)
            table = self.store.read(
                interval, symbol, (now - timedelta(days=days)).date(), now.date()
            )
        except (StoreError, ValueError) as e:
            raise HistoryUnavailable(str(e)) from None
        cols = {n: table.column(n).to_pylist() for n in ("open", "high", "low", "close", "volume")}
        import pyarrow as pa

        times = table.column("time").cast(pa.int64()).to_pylist()
        out: list[Bar] = []
        for i, t in enumerate(times):
            start = datetime.fromtimestamp(t // NS, KST)
            if start + length > now:
                break
            out.append(
                Bar(
                    symbol,
                    interval,
                    start,
                    cols["open"][i],
                    cols["high"][i],
                    cols["low"][i],
                    cols["close"][i],
                    cols["volume"][i],
                )
            )
        return out[-count:] if count else []
