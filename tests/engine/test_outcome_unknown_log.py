"""An order call whose outcome is unknown is logged once, by the OMS, with its client id
(issue 14 item 20, "some events are logged twice"): the Kiwoom client's line about it is a
debug line. On a running engine against the simulator over real sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from engine.events import OrderState
from engine.kiwoom import api as api_mod
from engine.kiwoom import rest as rest_mod
from engine.sim.simulator import Simulator
from engine.trading import krx
from engine.trading import oms as oms_mod
from tests.engine.conftest import SYMBOL, running_engine, sim_config
from tests.engine.conftest import write_strategy as strategy_file
from tests.support import until

pytestmark = pytest.mark.timeout(60)

S = OrderState
QUIET = """
class Quiet(Strategy):
    pass
"""
LOUD = ("warning", "error", "critical")


def capture(monkeypatch: pytest.MonkeyPatch) -> structlog.testing.LogCapture:
    cap = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(None, processors=[cap], wrapper_class=structlog.BoundLogger)
    for m in (rest_mod, api_mod, oms_mod):
        monkeypatch.setattr(m, "log", logger)
    return cap


def unknown_lines(cap: structlog.testing.LogCapture) -> list[dict[str, Any]]:
    return [
        e for e in cap.entries if e["event"].endswith("outcome_unknown") and e["log_level"] in LOUD
    ]


def oms_logged(cap: structlog.testing.LogCapture, event: str) -> bool:
    return any(e["event"] == event and "client_id" in e for e in cap.entries)


async def test_a_placement_of_unknown_outcome_is_logged_once_with_its_client_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture(monkeypatch)
    async with Simulator(sim_config()) as sim:
        sc = strategy_file(tmp_path, "s", QUIET, "Quiet")
        async with running_engine(sim, tmp_path / "state", (sc,), fat_finger_bp=5_000) as (
            trader,
            _ws,
            _api,
        ):
            strat = trader.host.by_name["s"].instance
            sim.state.faults.http_error_once["kt10000"] = 500
            lower = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
            order = strat.buy(SYMBOL, 1, lower + 2 * krx.tick_size(lower))
            await until(lambda: oms_logged(cap, "order_outcome_unknown"), 10)
    lines = unknown_lines(cap)
    assert [(e["event"], e.get("client_id"), e["reason"]) for e in lines] == [
        ("order_outcome_unknown", order.client_id, "server_error")
    ]
    # the Kiwoom side still says what it saw, at debug, with the HTTP status
    quiet = [e for e in cap.entries if e["event"] == "order_outcome_unknown" and e not in lines]
    assert [(e["log_level"], e["api_id"], e["detail"]) for e in quiet] == [
        ("debug", "kt10000", "HTTP 500")
    ]


async def test_a_cancel_of_unknown_outcome_is_logged_once_with_its_client_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture(monkeypatch)
    async with Simulator(sim_config()) as sim:
        sc = strategy_file(tmp_path, "s", QUIET, "Quiet")
        async with running_engine(sim, tmp_path / "state", (sc,), fat_finger_bp=5_000) as (
            trader,
            _ws,
            _api,
        ):
            strat = trader.host.by_name["s"].instance
            lower = krx.price_limits(trader.portfolio.base[SYMBOL])[0]
            order = strat.buy(SYMBOL, 1, lower + 2 * krx.tick_size(lower))
            await until(lambda: order.state is S.ACCEPTED, 10)
            sim.state.faults.http_error_once["kt10003"] = 503
            strat.cancel(order)
            await until(lambda: oms_logged(cap, "cancel_outcome_unknown"), 10)
    assert [(e["event"], e.get("client_id")) for e in unknown_lines(cap)] == [
        ("cancel_outcome_unknown", order.client_id)
    ]
