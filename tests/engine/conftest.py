"""A whole engine (Trader) on a simulator over real sockets, with test strategies from files."""

from __future__ import annotations

import dataclasses
import itertools
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine import config
from engine.config import Config, RateConfig, StrategyConfig
from engine.events import Event, Fill, OrderExecution, OrderStatus, OrderUpdate
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.universe_feed import KiwoomUniverseFeed
from engine.kiwoom.ws import KiwoomWebSocket
from engine.plugins import load_all
from engine.sim.simulator import Simulator
from engine.trader import Trader
from engine.trading.orders import TERMINAL, TRANSITIONS

SYMBOL = "005930"
OTHER = "000660"


def sim_config(**over: Any) -> config.SimConfig:
    base = config.load(None, env={}).sim
    return dataclasses.replace(base, **{"port": 0, "events_per_s": 200.0, **over})


def engine_config(
    sim: Simulator, state_dir: Path, strategies: tuple[StrategyConfig, ...] = (), **risk: Any
) -> Config:
    cfg = config.load(None, env={})
    kiwoom = dataclasses.replace(
        cfg.kiwoom,
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        request_timeout_s=2.0,
        rate=RateConfig(account_per_s=500.0, account_burst=100),
    )
    return dataclasses.replace(
        cfg,
        kiwoom=kiwoom,
        daemon=dataclasses.replace(cfg.daemon, state_dir=str(state_dir)),
        risk=dataclasses.replace(cfg.risk, **risk),
        portfolio=dataclasses.replace(cfg.portfolio, reconcile_s=3600.0),
        strategies=strategies,
    )


def write_strategy(tmp: Path, name: str, body: str, cls: str, **over: Any) -> StrategyConfig:
    """A strategy file in `tmp` and its config table."""
    path = tmp / f"{name}.py"
    path.write_text(
        "from engine.strategy import Strategy\nfrom engine.events import *  # noqa\n\n"
        + textwrap.dedent(body)
    )
    return StrategyConfig(
        name=name,
        class_name=cls,
        path=str(path),
        symbols=over.pop("symbols", (SYMBOL,)),
        **over,
    )


@asynccontextmanager
async def running_engine(
    sim: Simulator,
    state_dir: Path,
    strategies: tuple[StrategyConfig, ...] = (),
    *,
    configure: Callable[[Config], Config] | None = None,
    account_streams: bool = True,
    **risk: Any,
) -> AsyncIterator[tuple[Trader, KiwoomWebSocket, KiwoomApi]]:
    """The daemon's start-up path in-process: recover, feed, reconcile, strategies.

    `account_streams=False` leaves 00 and 04 unregistered: only reconciliation then tells
    the engine what became of its orders."""
    cfg = engine_config(sim, state_dir, strategies, **risk)
    if configure is not None:
        cfg = configure(cfg)
    loaded, problems = load_all(cfg)
    assert not problems, problems
    async with KiwoomRest.from_config(cfg) as rest:
        api = KiwoomApi(rest)
        trader = Trader(cfg, api, sim.clock, loaded)
        await trader.recover()
        ws = KiwoomWebSocket(
            cfg.ws_url, rest.tokens.token, rest.tokens.invalidate, on_event=trader.on_event
        )
        trader.attach_feed(KiwoomUniverseFeed(ws, api))
        await ws.start()
        try:
            symbols = sorted({s for sc in strategies for s in sc.symbols} | {SYMBOL})
            await ws.subscribe(["0B", "0C", "0D"], symbols)
            if account_streams:
                await ws.subscribe(["00", "04"], [])
            await trader.start()
            yield trader, ws, api
        finally:
            await trader.stop(cancel_open=False, timeout_s=3.0)
            await ws.close()


class Tape:
    """Everything the bus dispatched, in order."""

    def __init__(self, trader: Trader) -> None:
        self.events: list[Event] = []
        trader.bus.subscribe_all(self.events.append)

    def updates(self, client_id: str) -> list[OrderUpdate]:
        return [e for e in self.events if isinstance(e, OrderUpdate) and e.client_id == client_id]

    def notices(self, order_no: str, status: OrderStatus | None = None) -> list[OrderExecution]:
        return [
            e
            for e in self.events
            if isinstance(e, OrderExecution)
            and e.order_no == order_no
            and (status is None or e.status is status)
        ]

    def fills(self, order_no: str) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill) and e.order_no == order_no]


def assert_lawful(updates: list[OrderUpdate]) -> None:
    """Every published move is an edge of the table, and nothing moves after an end. An
    update that keeps the state (a fill in part, a refused amend) is no move."""
    for u in updates:
        if u.state is u.prev_state and u.state not in TERMINAL:
            continue
        assert u.state in TRANSITIONS[u.prev_state], (u.prev_state, u.state)
    for earlier, later in itertools.pairwise(updates):
        assert earlier.state not in TERMINAL, (earlier.state, later.state)
