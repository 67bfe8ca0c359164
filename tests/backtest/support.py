"""Seeded test data written straight into the store with engine/data's writer."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path

from engine.clock import KST
from engine.data.layout import partition_of
from engine.data.store import Store
from engine.models import Candle
from engine.trading.krx import round_to_tick


def write_bars(root: Path, symbol: str, interval: str, rows: Sequence[Candle]) -> None:
    """Store `rows` (oldest first) as the whole of each month they touch."""
    store = Store(root)
    by_part: dict[str, list[Candle]] = {}
    parts = {}
    for c in rows:
        p = partition_of(interval, c.at.date())
        parts[p.key] = p
        by_part.setdefault(p.key, []).append(c)
    for key, part_rows in by_part.items():
        part = parts[key]
        span = (part_rows[0].at.date(), part_rows[-1].at.date())
        store.write(interval, symbol, part, span, part_rows, whole_until=span[1])


def bar(at: datetime, o: int, h: int, lo: int, c: int, v: int = 100) -> Candle:
    return Candle(at, o, h, lo, c, v)


def minute(d: date, hh: int, mm: int) -> datetime:
    return datetime.combine(d, time(hh, mm), KST)


def random_bars(
    seed: int, days: Sequence[date], *, start_price: int = 50_000, per_day: int = 30
) -> list[Candle]:
    """`per_day` 1-minute bars from 09:00 on each of `days`, a seeded random walk on ticks."""
    rng = random.Random(seed)
    price = start_price
    out: list[Candle] = []
    for d in days:
        t = minute(d, 9, 0)
        for _ in range(per_day):
            o = price
            path = [o]
            for _ in range(4):
                path.append(round_to_tick(max(1000, path[-1] + rng.randint(-3, 3) * 100)))
            c = path[-1]
            out.append(Candle(t, o, max(path), min(path), c, rng.randint(50, 500)))
            price = c
            t += timedelta(minutes=1)
    return out


STRATEGIES = Path(__file__).with_name("strategies.py")


def alternate_config(
    symbols: Sequence[str],
    *,
    qty: int,
    every: int,
    backtest: str = 'kinds = ["bars_1m"]',
    history: int = 0,
) -> str:
    """config.toml text running tests/backtest/strategies.py `Alternate` on 1-minute bars of
    `symbols` (`backtest`: the lines of its [backtest] table)."""
    quoted = ", ".join(f'"{s}"' for s in symbols)
    return f"""
[backtest]
{backtest}

[[strategies]]
name = "alt"
path = "{STRATEGIES}"
class = "Alternate"
symbols = [{quoted}]
bars = ["1m"]
history = {history}
params = {{ qty = {qty}, every = {every} }}
"""
