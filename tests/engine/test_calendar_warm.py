"""The KRX calendar's first build in a process takes seconds (the `holidays` package's KRX
data): the daemon's start-up (engine.daemon.assemble, mode mock against the simulator over
real sockets, so the calendar judges session hours) builds it off the event loop, and the
first session-checked order builds nothing."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import holidays
import pytest

from engine.daemon import assemble
from engine.events import Exchange, OrderState
from engine.plugins import load_all
from engine.sim.simulator import Simulator
from tests.engine.conftest import SYMBOL, engine_config, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

QUIET = """
class Quiet(Strategy):
    pass
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as s:
        yield s


async def test_start_up_builds_the_calendar_off_the_loop_and_an_order_builds_nothing(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    on_loop: list[bool] = []
    """One entry per build of a year's KRX holidays: whether it ran on the loop's thread."""
    build = holidays.financial_holidays

    def noted(*args: Any, **kwargs: Any) -> Any:
        on_loop.append(threading.get_ident() == loop_thread)
        return build(*args, **kwargs)

    monkeypatch.setattr(holidays, "financial_holidays", noted)
    strategy = write_strategy(tmp_path, "q", QUIET, "Quiet")
    cfg = engine_config(sim, tmp_path / "state", (strategy,))
    cfg = dataclasses.replace(cfg, kiwoom=dataclasses.replace(cfg.kiwoom, mode="mock"))
    loaded, problems = load_all(cfg)
    assert not problems, problems
    async with AsyncExitStack() as stack:
        running = await assemble(cfg, stack, sim.clock, loaded)
        trader = running.trader
        try:
            assert trader.risk.check_session_hours  # mode mock: the calendar judges sessions
            assert on_loop, "start-up did not build the calendar"
            assert not any(on_loop), "the calendar was built on the event loop"
            built = len(on_loop)
            await until(lambda: trader.portfolio.last.get(SYMBOL) is not None, 5)
            # No session notice: the calendar says whether KRX takes orders now.
            trader.risk.market.feed_sessions.clear()
            assert not trader.risk.market.from_feed(Exchange.KRX)
            strat: Any = trader.host.by_name["q"].instance
            order = strat.buy(SYMBOL, 1, trader.portfolio.last[SYMBOL])
            # Whatever the hour: refused for the session, or sent.
            assert order.state is not OrderState.NEW
            assert order.reason in ("", "SESSION_CLOSED"), order.reason  # "": sent
            trader.status()  # /status reads the session too
            assert len(on_loop) == built
        finally:
            await trader.stop(cancel_open=False, timeout_s=3.0)
