"""The KST day roll on the real daemon against the built-in simulator: a daemon running past
midnight shows the new day's realised PnL and fees (nothing yet) in /status, /metrics and
the status page, keeps its positions and average prices, and its alert lines count the new
day's fills from the roll on. The wall clock is moved across midnight; monotonic time and
every sleep stay real."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.alerts.messages import money
from engine.clock import KST, Clock
from tests.alerts.fakebot import FakeBot
from tests.alerts.test_daemon_alerts import Running, daemon_config, fill_lines
from tests.support import until

pytestmark = pytest.mark.timeout(60)

SYMBOL = "005930"

BUYS_WHEN_TOLD = """
class BuysWhenTold(Strategy):
    def on_start(self):
        self.qty = 1

    def on_trade(self, trade):
        if self.qty and trade.best_ask and not self.orders():
            self.buy(trade.symbol, self.qty, trade.best_ask)
            self.qty = 0
"""


class WallClock(Clock):
    """The live clock with its wall time (now, wall, time_ns) shifted by `offset_s`, which
    the test moves; monotonic time and sleeps are the real ones."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.offset_s)

    def wall(self) -> float:
        return super().wall() + self.offset_s

    def time_ns(self) -> int:
        return super().time_ns() + int(self.offset_s * 1e9)


def before_midnight() -> WallClock:
    """A clock at 23:50 KST of today (KST)."""
    real = datetime.now(KST)
    target = real.replace(hour=23, minute=50, second=0, microsecond=0)
    return WallClock((target - real).total_seconds())


def past_midnight(clock: WallClock) -> None:
    now = clock.now()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    clock.offset_s += (midnight - now).total_seconds()


@pytest.fixture
async def bot() -> Any:
    b = FakeBot()
    await b.start()
    yield b
    await b.stop()


async def _get(base: str, path: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(base + path) as r:
        assert r.status == 200, path
        return orjson.loads(await r.read()) if path == "/status" else await r.text()


async def _page(base: str, day: str) -> dict[str, Any]:
    """The status page's first snapshot of `day` (ISO), from its event stream."""
    async with aiohttp.ClientSession() as http, http.get(base + "/events") as r:
        assert r.status == 200
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                snap: dict[str, Any] = orjson.loads(line[6:])
                if snap["day"] == day:
                    return snap
    raise AssertionError("the event stream ended")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_a_daemon_running_past_midnight_starts_the_day_s_pnl_afresh(
    tmp_path: Path, bot: FakeBot
) -> None:
    clock = before_midnight()
    run = Running(daemon_config(tmp_path, bot, BUYS_WHEN_TOLD, "BuysWhenTold"), clock)
    try:
        trader = await run.started()
        strat: Any = trader.host.by_name["buyswhentold"].instance
        await until(lambda: len(fill_lines(bot)) == 1, 15)
        (first,) = run.fills
        fee1 = first.fee + first.tax
        assert fee1 > 0  # the simulator charges its commission (sim.commission_bp)
        base = f"http://127.0.0.1:{run.admin_port}"
        st = await _get(base, "/status")
        pf = st["portfolio"]
        assert (pf["realized_today"], pf["fees_today"]) == (-fee1, fee1)
        held = pf["positions"][SYMBOL]
        assert (held["qty"], held["realized"]) == (1, -fee1)

        past_midnight(clock)
        # Nothing happened yet on the new day: every reader shows the new day's figures.
        st = await _get(base, "/status")
        pf = st["portfolio"]
        assert (pf["realized_today"], pf["fees_today"]) == (0, 0)
        assert st["risk"]["realized_pnl"] == 0
        # The position and its average price stay.
        assert pf["positions"][SYMBOL]["qty"] == 1
        assert pf["positions"][SYMBOL]["avg_price"] == held["avg_price"] == first.price
        assert pf["positions"][SYMBOL]["realized"] == 0
        assert pf["strategies"]["buyswhentold"][SYMBOL] == {"qty": 1, "realized": 0}
        metrics = await _get(base, "/metrics")
        assert _metric(metrics, 'kiwoom_engine_pnl_krw{kind="realized"}') == 0
        assert (
            _metric(
                metrics, 'kiwoom_engine_strategy_pnl_krw{kind="realized",strategy="buyswhentold"}'
            )
            == 0
        )
        page = await _page(base, clock.now().date().isoformat())
        assert (page["account"]["realized"], page["account"]["fees"]) == (0, 0)

        # The new day's first fill: its alert line counts it alone, and the day from it.
        strat.qty = 2  # not 1: no DUPLICATE of the first order, a second ago
        await until(lambda: len(fill_lines(bot)) == 2, 15)
        second = run.fills[1]
        fee2 = second.fee + second.tax
        assert fill_lines(bot)[1] == (
            f"FILL buyswhentold: BUY 2 {SYMBOL} @ {second.price:,} | realised {money(-fee2)} "
            f"(day {money(-fee2)})"
        )
        st = await _get(base, "/status")
        assert (st["portfolio"]["realized_today"], st["portfolio"]["fees_today"]) == (-fee2, fee2)
        assert st["portfolio"]["positions"][SYMBOL]["qty"] == 3
    finally:
        await run.finish()
