"""The backtest end to end on bar data written into the store: a strategy's orders, fills,
equity and the no-look-ahead rules."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from engine.backtest.run import Result, run_backtest
from engine.config import Config, load
from engine.events import OrderState, Side
from engine.plugins import load_all
from tests.backtest.support import bar, minute, write_bars

SYMBOL = "005930"
DAY = date(2026, 3, 3)
HERE = Path(__file__).parent


def config(tmp: Path, strategy: str, params: str, *, extra: str = "") -> Config:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[backtest]
latency_ms = 50
kinds = ["bars_1m"]
cash = 10_000_000
{extra}
[portfolio]
commission_bp = 0.0
sell_tax_bp = 0.0

[[strategies]]
name = "s"
path = "{HERE / "strategies.py"}"
class = "{strategy}"
symbols = ["{SYMBOL}"]
bars = ["1m"]
params = {params}
""",
        encoding="utf-8",
    )
    return load(path, env={})


def run(cfg: Config, data: Path, start: date = DAY, end: date = DAY) -> Result:
    loaded, problems = load_all(cfg)
    assert problems == []
    return run_backtest(cfg, loaded, data, start, end)


def test_a_market_order_placed_on_a_bar_s_close_fills_at_the_next_bar_s_open(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_bars(
        data,
        SYMBOL,
        "1m",
        [
            bar(minute(DAY, 9, 0), 50_000, 50_500, 49_500, 50_200),
            bar(minute(DAY, 9, 1), 50_300, 50_900, 50_100, 50_800),
            bar(minute(DAY, 9, 2), 51_000, 51_500, 50_900, 51_200),
        ],
    )
    res = run(config(tmp_path, "Alternate", "{ qty = 2 }"), data)
    # Bar 09:00 closes at 09:01: the buy fills at the 09:01 bar's open (50,300), never at
    # anything of 09:00's bar (its close 50,200 would be look-ahead-free but not reachable).
    # Bar 09:01 closes at 09:02 with 2 held: the sell fills at the 09:02 bar's open.
    assert [(f.side, f.qty, f.price) for f in res.fills] == [
        (Side.BUY, 2, 50_300),
        (Side.SELL, 2, 51_000),
    ]
    # The 09:02 bar's close places a buy that no bar is left to fill: KRX ends it at the close.
    states = sorted((u.side, u.state) for u in res.orders.values())
    assert states == [
        (Side.BUY, OrderState.CANCELED),
        (Side.BUY, OrderState.FILLED),
        (Side.SELL, OrderState.FILLED),
    ]
    assert res.days[-1].cash == 10_000_000 + 2 * (51_000 - 50_300)
