"""The backtest end to end on bar data written into the store: a strategy's orders, fills,
equity and the no-look-ahead rules."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from engine.backtest.run import Backtest, Result, run_backtest
from engine.clock import KST
from engine.config import Config, load
from engine.events import OrderState, Side
from engine.models import Candle
from engine.plugins import load_all
from tests.backtest.support import bar, minute, write_bars

SYMBOL = "005930"
DAY = date(2026, 3, 3)
HERE = Path(__file__).parent


def config(
    tmp: Path,
    strategy: str,
    params: str,
    *,
    kinds: str = '"bars_1m"',
    portfolio: str = "commission_bp = 0.0\nsell_tax_bp = 0.0",
) -> Config:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[backtest]
latency_ms = 50
kinds = [{kinds}]
cash = 10_000_000

[portfolio]
{portfolio}

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


def test_by_default_a_backtest_charges_the_published_sell_tax_of_the_data_s_day(
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
    # No sell-tax key: the table. The sale of 2 at 51,000 on 2026-03-03 pays 2026's published
    # KOSPI rate, 0.05 % securities transaction tax + 0.15 % rural tax = 0.20 % of 102,000.
    res = run(config(tmp_path, "Alternate", "{ qty = 2 }", portfolio="commission_bp = 0.0"), data)
    assert [(f.side, f.price, f.fee, f.tax) for f in res.fills] == [
        (Side.BUY, 50_300, 0, 0),
        (Side.SELL, 51_000, 0, 204),
    ]
    # Named an ETF, the same sale pays none (no securities transaction tax on ETFs).
    etf = f'commission_bp = 0.0\nmarkets = {{ "{SYMBOL}" = "ETF" }}'
    res = run(config(tmp_path, "Alternate", "{ qty = 2 }", portfolio=etf), data)
    assert [(f.side, f.tax) for f in res.fills] == [(Side.BUY, 0), (Side.SELL, 0)]


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


def test_timers_before_a_data_point_fire_before_it_and_at_its_time_after_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    t0 = minute(DAY, 9, 0)
    write_bars(
        data,
        SYMBOL,
        "tick",
        [
            Candle(t0 + timedelta(seconds=10), 50_100, 50_100, 50_100, 50_100, 5),
            Candle(t0 + timedelta(seconds=30), 50_300, 50_300, 50_300, 50_300, 5),
            Candle(t0 + timedelta(seconds=44), 50_500, 50_500, 50_500, 50_500, 5),
        ],
    )
    cfg = config(tmp_path, "Ticker", "{ period = 15 }", kinds='"ticks"')
    loaded, _ = load_all(cfg)
    bt = Backtest(cfg, loaded, data, DAY, DAY)
    asyncio.run(bt.run())
    inst = bt.host.slots[0].instance
    seen = dict(inst.seen)  # type: ignore[union-attr]
    assert seen["09:00:00"] is None
    assert seen["09:00:15"] == 50_100
    assert seen["09:00:30"] == 50_300  # the trade stamped 09:00:30 first, then the timer
    assert seen["09:00:45"] == 50_500
    assert seen["17:59:45"] == 50_500  # timers run on the clock until the day's end


def test_a_limit_order_placed_on_a_bar_s_close_never_fills_inside_that_bar(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_bars(
        data,
        SYMBOL,
        "1m",
        [
            # The first bar's low (49,000) is the limit: seen only at its close, too late.
            bar(minute(DAY, 9, 0), 50_000, 50_500, 49_000, 50_200, 400),
            bar(minute(DAY, 9, 1), 50_300, 50_900, 50_100, 50_800, 400),
            # Walked open 50,000 -> low 48,900 -> high -> close: the low prints through the
            # limit with a quarter of 40 shares: 10 of the 15 fill there, at the limit.
            bar(minute(DAY, 9, 2), 50_000, 50_100, 48_900, 49_500, 40),
            bar(minute(DAY, 9, 3), 49_500, 49_600, 48_800, 49_000, 40),
        ],
    )
    res = run(config(tmp_path, "Resting", "{ qty = 15, price = 49_000 }"), data)
    assert [(f.qty, f.price) for f in res.fills] == [(10, 49_000), (5, 49_000)]
    assert [u.state for u in res.orders.values()] == [OrderState.FILLED]


def test_an_order_open_at_the_day_s_end_is_ended_as_krx_ends_it_and_the_day_rolls(
    tmp_path: Path,
) -> None:
    day2 = date(2026, 3, 4)
    data = tmp_path / "data"
    write_bars(
        data,
        SYMBOL,
        "1m",
        [
            bar(minute(DAY, 9, 0), 50_000, 50_500, 49_500, 50_200),
            bar(minute(DAY, 9, 1), 50_300, 50_900, 50_100, 50_800),
            bar(minute(day2, 9, 0), 50_000, 50_500, 49_500, 50_200),
            bar(minute(day2, 9, 1), 50_300, 50_900, 50_100, 50_800),
        ],
    )
    cfg = config(tmp_path, "Resting", "{ qty = 1, price = 49_000 }")
    loaded, _ = load_all(cfg)
    bt = Backtest(cfg, loaded, data, DAY, day2)
    res = asyncio.run(bt.run())
    (up,) = res.orders.values()
    assert (up.state, up.order_no, up.filled_qty) == (OrderState.CANCELED, "0000001", 0)
    assert up.ts_recv == int(minute(DAY, 18, 0).timestamp()) * 1_000_000_000
    assert [d.day for d in res.days] == [DAY, day2]
    assert bt.risk.trading_day() == day2.strftime("%Y%m%d")
    assert bt.risk.counters()["orders_sent"] == 0  # the counters are day 2's


def test_bars_built_from_trades_close_on_the_clock_the_day_s_last_one_included(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    t0 = minute(DAY, 9, 0)
    write_bars(
        data,
        SYMBOL,
        "tick",
        [
            Candle(t0 + timedelta(seconds=s), p, p, p, p, 1)
            for s, p in ((10, 50_000), (40, 50_100), (80, 50_300), (95, 50_200))
        ],
    )
    cfg = config(tmp_path, "BarLog", "{}", kinds='"ticks"')
    loaded, _ = load_all(cfg)
    bt = Backtest(cfg, loaded, data, DAY, DAY)
    asyncio.run(bt.run())
    inst = bt.host.slots[0].instance
    # 09:00 closes at its end plus the 1 s grace (the 09:01:20 print is later than that);
    # 09:01, the day's last, closes on the clock with no print after it.
    assert inst.seen == [("09:01:01", "09:00", 50_100), ("09:02:01", "09:01", 50_200)]  # type: ignore[union-attr]


def test_warm_up_comes_from_the_store_and_a_slow_strategy_is_never_disabled(
    tmp_path: Path,
) -> None:
    day0 = date(2026, 3, 2)
    data = tmp_path / "data"
    write_bars(
        data,
        SYMBOL,
        "1m",
        [
            *(bar(minute(day0, 9, m), 50_000, 50_500, 49_500, 50_000 + 100 * m) for m in range(5)),
            *(bar(minute(DAY, 9, m), 50_000, 50_500, 49_500, 51_000 + 100 * m) for m in range(6)),
        ],
    )
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[backtest]
kinds = ["bars_1m"]
[[strategies]]
name = "w"
path = "{HERE / "strategies.py"}"
class = "Warm"
symbols = ["{SYMBOL}"]
bars = ["1m"]
history = 3
budget_ms = 0.1
max_overruns = 1
""",
        encoding="utf-8",
    )
    cfg = load(path, env={})
    loaded, _ = load_all(cfg)
    bt = Backtest(cfg, loaded, data, DAY, DAY)
    res = asyncio.run(bt.run())
    inst = bt.host.slots[0].instance
    # The last 3 bars stored before the run's first day, none of the run's own.
    assert inst.warm == [("03-02 09:02", 50_200), ("03-02 09:03", 50_300), ("03-02 09:04", 50_400)]  # type: ignore[union-attr]
    assert inst.seen == 6  # type: ignore[union-attr]
    health = res.strategies["w"]
    assert health["budget_overruns"] >= 6
    assert health["disabled"] == ""


def test_an_order_sent_inside_a_bar_meets_only_its_close(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_bars(
        data,
        SYMBOL,
        "1m",
        [
            bar(minute(DAY, 9, 0), 50_000, 50_500, 49_500, 50_200),
            bar(minute(DAY, 9, 1), 50_300, 50_900, 50_100, 50_800),
        ],
    )
    res = run(config(tmp_path, "TimerBuy", "{ qty = 2, after = 90 }"), data)
    # Sent at 09:01:30: the 09:01 bar's open, high and low may have printed before it.
    assert [(f.qty, f.price) for f in res.fills] == [(2, 50_800)]


def test_daily_bars_are_seen_before_the_next_session_and_orders_fill_at_its_open(
    tmp_path: Path,
) -> None:
    days = [date(2026, 3, d) for d in (2, 3, 4, 5)]
    data = tmp_path / "data"
    opens = [50_000, 50_500, 51_000, 49_500]
    write_bars(
        data,
        SYMBOL,
        "1d",
        [
            bar(datetime.combine(d, time(0), KST), o, o + 1_000, o - 1_000, o + 200, 1_000)
            for d, o in zip(days, opens, strict=True)
        ],
    )
    path = tmp_path / "config.toml"
    cfg = config(tmp_path, "Alternate", "{ qty = 2 }", kinds='"bars_1d"')
    path.write_text(path.read_text().replace('bars = ["1m"]', 'bars = ["1d"]'))
    cfg = load(path, env={})
    res = run(cfg, data, days[0], days[-1])
    # Each day's bar reaches the strategy before the next session; its order meets that
    # session's bar, open first. The last bar is never seen (nothing is left to trade).
    assert [(f.side, f.price) for f in res.fills] == [
        (Side.BUY, 50_500),
        (Side.SELL, 51_000),
        (Side.BUY, 49_500),
    ]
    assert res.days[-1].positions_value == 2 * (49_500 + 200)


def test_bars_of_one_interval_meet_the_clock_as_the_general_timeline_has_them(
    tmp_path: Path,
) -> None:
    # One kind of intraday bars skips the timeline's heap (`_closes`): the same (time, bar)
    # pairs in the same order, over two symbols whose bars interleave and tie.
    import itertools

    from engine.backtest.run import _closes, _timeline
    from engine.data.reader import iter_event_lists
    from tests.backtest.support import random_bars

    days = [date(2026, 3, 2), date(2026, 3, 3)]
    data = tmp_path / "data"
    write_bars(data, "005930", "1m", random_bars(1, days))
    write_bars(data, "000660", "1m", random_bars(2, days, start_price=120_000)[5:])

    def read() -> Any:
        chunks = iter_event_lists(data, ("000660", "005930"), ("bars_1m",), days[0], days[-1])
        return itertools.chain.from_iterable(chunks)

    fast = [(t, b.symbol, b.start) for t, b in _closes(read(), "1m")]
    general = [(t, b.symbol, b.start) for t, b in _timeline(read())]
    assert len(fast) == 2 * 30 * 2 - 5
    assert fast == general
    assert fast[0] == (
        int(minute(days[0], 9, 1).timestamp()) * 10**9,
        "005930",  # 000660 begins at 09:05
        minute(days[0], 9, 0),
    )
