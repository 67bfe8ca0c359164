"""The path from market data to an order: each strategy on a route is isolated and timed on
its own, and nothing slow runs between a strategy's decision and its order's POST.

The host times a route's calls with one counter read between two calls (engine/host.py
`dispatch`); the first test pins down that nobody is charged for a neighbour's exception or
slowness. The slow handler really sleeps: what is asserted is who was charged, never how fast.
The others assert the order in which things happen on the loop, never how long they take.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from engine import trader as trader_mod
from engine.bus import ConsumerQueue, EventBus
from engine.clock import SYSTEM_CLOCK
from engine.config import StrategyConfig, load
from engine.events import Exchange, Fill, OrderState, Side, StrategyDisabled, Trade
from engine.host import StrategyHost
from engine.journal import Journal
from engine.plugins import LoadedStrategy
from engine.sim.market import MarketGenerator
from engine.sim.simulator import Simulator
from engine.strategy import Strategy
from engine.trading.oms import OrderManager
from engine.trading.portfolio import Portfolio
from engine.trading.risk import RiskEngine
from tests.engine.conftest import running_engine, sim_config, write_strategy
from tests.support import until

SYMBOL = "005930"
S = OrderState


class Raises(Strategy):
    def on_trade(self, trade: Trade) -> None:
        raise RuntimeError("bad strategy")


class SlowTwice(Strategy):
    def on_start(self) -> None:
        self.seen = 0

    def on_trade(self, trade: Trade) -> None:
        self.seen += 1
        if self.seen <= 2:
            time.sleep(0.06)  # past its 50 ms budget


class Counts(Strategy):
    def on_start(self) -> None:
        self.prices: list[int] = []

    def on_trade(self, trade: Trade) -> None:
        self.prices.append(trade.price)


def _host(tmp: Path, *classes: tuple[type[Strategy], dict[str, object]]) -> StrategyHost:
    cfg = load(None, env={})
    bus = EventBus(SYSTEM_CLOCK)
    oms = OrderManager(
        None,  # type: ignore[arg-type]  # nothing here orders
        bus,
        RiskEngine(cfg.risk, SYSTEM_CLOCK, check_session_hours=False),
        Portfolio(cfg.portfolio),
        Journal(tmp, SYSTEM_CLOCK),
        SYSTEM_CLOCK,
    )
    loaded = [
        LoadedStrategy(
            StrategyConfig(name=cls.__name__, path="-", symbols=(SYMBOL,), **over),  # type: ignore[arg-type]
            cls,
            f"strategies[{i}]",
        )
        for i, (cls, over) in enumerate(classes)
    ]
    host = StrategyHost(bus, oms, SYSTEM_CLOCK, loaded)
    host.instantiate()
    host.start()
    return host


def _trade(price: int) -> Trade:
    return Trade(SYMBOL, Exchange.KRX, 90000, price, 1, 0, 0, 0, 0, 0, 0, 0)


def test_each_strategy_on_a_route_is_charged_only_for_its_own_errors_and_time(
    tmp_path: Path,
) -> None:
    host = _host(
        tmp_path,
        (Raises, {"max_errors": 3}),
        (SlowTwice, {"budget_ms": 50.0, "max_overruns": 5}),
        (Counts, {"budget_ms": 50.0, "max_overruns": 1}),
    )
    disabled: list[StrategyDisabled] = []
    host.bus.subscribe(StrategyDisabled, disabled.append)
    for price in range(70_000, 70_600, 100):
        host.bus.publish(_trade(price))
    raises, slow, counts = host.slots

    assert (raises.enabled, raises.disabled_reason) == (False, "too_many_errors")
    assert raises.errors == 3
    assert raises.calls == 1 + 3  # on_start, three trades, none once disabled
    assert [(d.strategy, d.reason) for d in disabled] == [("Raises", "too_many_errors")]

    assert slow.enabled
    assert (slow.calls, slow.errors, slow.overruns, slow.overruns_in_row) == (1 + 6, 0, 2, 0)
    assert slow.slowest_ms >= 60

    # Right after the slow one on the route, and after the one that raised: with a budget of
    # one overrun it would have been disabled at the first charge that was not its own.
    assert counts.enabled
    assert (counts.calls, counts.errors, counts.overruns) == (1 + 6, 0, 0)
    assert isinstance(counts.instance, Counts)
    assert counts.instance.prices == list(range(70_000, 70_600, 100))
    assert host.bus.handler_errors == 0


async def test_a_consumer_woken_by_a_dispatch_lets_the_order_it_started_leave_first() -> None:
    """The journal's transaction must not go between an order's decision and its POST, which
    leaves on the loop's second turn after the decision (OMS task, then the POST's task)."""
    queue = ConsumerQueue("journal")
    seen: list[str] = []

    async def consumer() -> None:
        await queue.get()
        seen.append("consumer took")

    async def post() -> None:
        seen.append("order posted")

    async def place() -> None:
        await asyncio.create_task(post())  # the REST client shields the POST in its own task

    reader = asyncio.create_task(consumer())
    await asyncio.sleep(0)  # the consumer waits
    # One dispatch: a strategy's buy starts the order's task, then its update is queued.
    placing = asyncio.create_task(place())
    queue.offer(Fill("c1", "s", "0000001", "1", SYMBOL, Side.BUY, 1, 70_000, 0, 0))
    await asyncio.wait_for(asyncio.gather(reader, placing), 1)
    assert seen == ["order posted", "consumer took"]


BUYS_ONCE = """
class BuysOnce(Strategy):
    def on_start(self):
        self.order = None

    def on_trade(self, trade):
        if self.order is None and trade.best_ask:
            self.order = self.buy(trade.symbol, 1, trade.best_ask)
"""


async def test_an_order_is_posted_before_its_log_lines_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, ...]] = []

    def record(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        seen.append(("log", event_dict["event"], str(event_dict.get("state", ""))))
        raise structlog.DropEvent

    # Its own wrapper class: a level filter another test configured globally must not apply.
    recorder = structlog.wrap_logger(None, processors=[record], wrapper_class=structlog.BoundLogger)
    monkeypatch.setattr(trader_mod, "log", recorder)
    sc = write_strategy(tmp_path, "once", BUYS_ONCE, "BuysOnce")
    async with (
        Simulator(sim_config()) as sim,
        running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, api),
    ):
        # Strategies started, but no trade can reach them before this runs: no await since.
        post = api.rest._post

        async def recorded(api_id: str, *args: Any) -> Any:
            seen.append(("post", api_id))
            return await post(api_id, *args)

        monkeypatch.setattr(api.rest, "_post", recorded)
        strat = trader.host.by_name["once"].instance
        await until(lambda: strat.order is not None and strat.order.state is S.FILLED, 10)
        await until(lambda: ("log", "fill", "") in seen, 10)
    posted = seen.index(("post", "kt10000"))
    assert seen.index(("log", "order_update", "submitting")) > posted
    assert ("log", "order_update", "filled") in seen  # every line still comes


COUNTS_THEN_BUYS = """
class CountsThenBuys(Strategy):
    def on_start(self):
        self.trades = 0
        self.order = None

    def on_trade(self, trade):
        self.trades += 1
        if self.order is None:
            self.order = self.buy(trade.symbol, 1)
"""


@pytest.mark.parametrize("per_frame", [1, 20], ids=["twenty-buffered-frames", "one-frame"])
async def test_an_order_leaves_before_the_next_print_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_frame: int
) -> None:
    """Twenty prints, as twenty frames already in the client's buffer (which come without a
    turn of the loop) or as one frame: the order decided on the first leaves before the
    second is even decoded. The feed decodes entries one by one as it dispatches them, and
    gives a turn of the loop when an event started an order; the placement task runs to its
    POST in that turn."""
    sc = write_strategy(tmp_path, "counts", COUNTS_THEN_BUYS, "CountsThenBuys")
    at_post: list[tuple[int, int, int]] = []
    async with (
        Simulator(sim_config(events_per_s=0.0)) as sim,
        running_engine(sim, tmp_path / "state", (sc,)) as (trader, ws, api),
    ):
        strat = trader.host.by_name["counts"].instance
        post = api.rest._post

        async def recorded(api_id: str, *args: Any) -> Any:
            if api_id == "kt10000":
                at_post.append((strat.trades, ws.stats.events, ws.stats.real_frames))
            return await post(api_id, *args)

        monkeypatch.setattr(api.rest, "_post", recorded)
        events_before, frames_before = ws.stats.events, ws.stats.real_frames
        sim.realtime.max_batch = per_frame  # written back to back
        source = MarketGenerator([SYMBOL], 7, sim.clock, types=("0B",))
        for entry in source.next_entries(20):
            sim.realtime.publish(entry)
        await until(lambda: strat.trades == 20 and bool(at_post), 10)
        await until(lambda: strat.order.state is S.FILLED, 10)
    assert at_post == [(1, events_before + 1, frames_before + 1)]
