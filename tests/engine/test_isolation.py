"""A strategy may be wrong; the daemon may not: whatever a handler raises or does to the task it
runs in, the feed goes on, and the engine's own calls stay out of the strategy's way.

Each test runs the whole engine (Trader) on the simulator over real sockets with strategies
loaded from files, as `run` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.events import OrderExecution, OrderState
from engine.sim.simulator import Simulator
from tests.engine.conftest import Tape, running_engine, sim_config, write_strategy
from tests.support import until

S = OrderState


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


# Each raises on every trade, from the first one on; the engine must count it as a strategy
# fault (the strategy is disabled after max_errors) and keep its feed.
FAULTS = {
    "cancelled": "raise asyncio.CancelledError()",
    "generator_exit": "raise GeneratorExit()",
    "custom_base": "raise Custom('a BaseException of its own')",
    "cancels_its_task": "asyncio.current_task().cancel()",
}

FAULTY = """
import asyncio

class Custom(BaseException):
    pass

class Faulty(Strategy):
    def on_trade(self, trade):
        {fault}
"""

# Buys once the faulty strategy is disabled: its order's life comes from 00 notices, which
# arrive on the same feed as the trades.
BUYS_AFTER = """
class BuysAfter(Strategy):
    def on_start(self):
        self.order = None
        self.trades = 0

    def on_trade(self, trade):
        self.trades += 1
        if self.order is None and self.params["go"]() and trade.best_ask:
            self.order = self.buy(trade.symbol, 1, trade.best_ask)
"""


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_handler_raising_any_base_exception_is_a_strategy_fault_and_the_feed_goes_on(
    sim: Simulator, tmp_path: Path, fault: str
) -> None:
    bad = write_strategy(
        tmp_path, "bad", FAULTY.format(fault=FAULTS[fault]), "Faulty", max_errors=3
    )
    good = write_strategy(tmp_path, "good", BUYS_AFTER, "BuysAfter")
    async with running_engine(sim, tmp_path / "state", (bad, good)) as (trader, _ws, _api):
        tape = Tape(trader)
        slot = trader.host.by_name["bad"]
        # The good strategy's params are read-only; give it its trigger through the slot.
        trader.host.by_name["good"].instance.params = {"go": lambda: not slot.enabled}
        good = trader.host.by_name["good"].instance
        await until(lambda: not slot.enabled, 10)
        assert (slot.disabled_reason, slot.errors) == ("too_many_errors", 3)
        seen = good.trades
        await until(lambda: good.trades > seen + 5, 10)  # market data still comes
        await until(lambda: good.order is not None and good.order.order_no is not None, 10)
        order_no = good.order.order_no
        # ... and so do the account's 00 notices: the fill is reported by the feed.
        await until(lambda: good.order.state is S.FILLED, 10)
        assert any(isinstance(e, OrderExecution) for e in tape.notices(order_no))
        assert trader.running
        assert asyncio.current_task() is not None  # the test's own task is untouched


TIMER_FAULT = """
import asyncio

class TimerFault(Strategy):
    def on_start(self):
        self.fired = 0
        self.set_timer("t", 0.02)

    def on_timer(self, name):
        self.fired += 1
        if self.fired == 1:
            raise asyncio.CancelledError()
"""


async def test_a_timer_handler_raising_cancelled_error_keeps_its_timer(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "t", TIMER_FAULT, "TimerFault")
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        slot = trader.host.by_name["t"]
        await until(lambda: slot.instance.fired >= 3, 5)
        assert slot.errors == 1
        assert slot.enabled


START_FAULT = """
class StartFault(Strategy):
    def on_start(self):
        raise RuntimeError("no start")

    def on_stop(self):
        raise RuntimeError("no stop")
"""


async def test_errors_in_on_start_and_on_stop_are_logged_with_the_handlers_name(
    sim: Simulator, tmp_path: Path
) -> None:
    import structlog.testing

    sc = write_strategy(tmp_path, "s", START_FAULT, "StartFault")
    with structlog.testing.capture_logs() as logs:
        async with running_engine(sim, tmp_path / "state", (sc,)):
            pass
    failed = [e for e in logs if e["event"] == "strategy_handler_failed"]
    assert [e["handler"] for e in failed] == ["on_start", "on_stop"]


CONTRACT = """
import types

class Contract(Strategy):
    def on_start(self):
        self.results = {}
        for label, call in (
            ("repeat_below_10ms", lambda: self.set_timer("fast", 0.001)),
            ("repeat_1ns", lambda: self.set_timer("fast", 1e-9)),
            ("negative_one_shot", lambda: self.set_timer("neg", -1, repeat=False)),
            ("cancel_none", lambda: self.cancel(None)),
            ("modify_none", lambda: self.modify(None, price=100)),
        ):
            try:
                call()
                self.results[label] = "ok"
            except Exception as e:
                self.results[label] = type(e).__name__
        self.set_timer("zero", 0, repeat=False)
        self.set_timer("ten_ms", 0.01)
        self.fired = []
        try:
            self.params["x"] = 1
            self.results["params_write"] = "ok"
        except TypeError:
            self.results["params_write"] = "TypeError"
        self.results["params_type"] = type(self.params).__name__

    def on_timer(self, name):
        self.fired.append(name)
        if self.fired.count("ten_ms") == 2:
            self.cancel_timer("ten_ms")
"""


async def test_timer_periods_cancel_of_none_and_read_only_params(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "c", CONTRACT, "Contract")  # no params in its config
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        strat = trader.host.by_name["c"].instance
        assert strat.results == {
            "repeat_below_10ms": "ValueError",
            "repeat_1ns": "ValueError",
            "negative_one_shot": "ValueError",
            "cancel_none": "ValueError",
            "modify_none": "ValueError",
            "params_write": "TypeError",
            "params_type": "mappingproxy",
        }
        await until(lambda: "zero" in strat.fired and strat.fired.count("ten_ms") == 2, 5)
        assert trader.host.by_name["c"].errors == 0


# max_order_qty is 5 here: an order of 10 is refused at once, inside `buy`.
CAUSED = """
import asyncio

class Caused(Strategy):
    def on_start(self):
        self.inside = None
        self.seen = []  # (handler that placed it, inside a handler at delivery, a turn passed)
        self.set_timer("t", 0, repeat=False)

    def _place(self, where):
        self.inside = where
        self.turned = False
        asyncio.get_running_loop().call_soon(self._turn)
        order = self.buy(self.symbols[0], 10, None)
        self.placed[order.client_id] = where
        self.inside = None

    def _turn(self):
        self.turned = True

    def on_timer(self, name):
        self.placed = getattr(self, "placed", {})
        self._place("on_timer")

    def on_trade(self, trade):
        self.placed = getattr(self, "placed", {})
        if "on_trade" not in self.placed.values():
            self._place("on_trade")

    def on_order(self, order):
        self.seen.append((self.placed[order.client_id], self.inside, self.turned))
"""


async def test_on_order_for_a_refusal_inside_a_handler_comes_after_it_in_a_later_turn(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "c", CAUSED, "Caused")
    async with running_engine(sim, tmp_path / "state", (sc,), max_order_qty=5) as (
        trader,
        _ws,
        _api,
    ):
        strat = trader.host.by_name["c"].instance
        await until(lambda: len(strat.seen) == 2, 5)
        # Never delivered from inside `buy` (inside is None), and the loop went round between
        # the handler and its on_order (the callback it scheduled first had run).
        assert sorted(strat.seen) == [("on_timer", None, True), ("on_trade", None, True)]
        assert trader.host.by_name["c"].errors == 0
