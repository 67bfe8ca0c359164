"""Strategies' conditions and run-time subscriptions on a running engine, against the simulator
over real sockets (issue 15): hits go to the strategies that watch them and to no other, ten
conditions shared by two strategies are ten realtime searches and the eleventh is refused, a
leave lost in a reconnect still reaches the strategy, subscriptions are registered once per
symbol (with `[daemon] symbols` counted) and survive a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import SimConditionConfig, StrategyConfig
from engine.events import ACCOUNT_EVENTS, ConditionHit, OrderState, Reconnected
from engine.metrics import EngineMetrics, LoopMonitor
from engine.sim.simulator import Simulator
from engine.trader import Trader
from tests.engine.conftest import SYMBOL, running_engine, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

MANUAL = tuple(SimConditionConfig(str(i), f"수동{i}", "manual") for i in range(12))
NEW = "051910"  # a simulated symbol that no strategy and not [daemon] symbols names

RECORDER = """
class Rec(Strategy):
    def on_start(self):
        self.hits = []
        self.ready = []
        self.trades = set()

    def on_condition(self, hit):
        self.hits.append((hit.condition_seq, hit.condition, hit.symbol, hit.entered, hit.time))
        assert hit.seq > 0 and hit.ts_recv > 0

    def on_subscribed(self, symbol):
        self.ready.append((symbol, self.quote(symbol)))

    def on_trade(self, trade):
        self.trades.add(trade.symbol)
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config(conditions=MANUAL, events_per_s=100.0)) as s:
        yield s


def rec(tmp: Path, name: str, **over: Any) -> StrategyConfig:
    return write_strategy(tmp, name, RECORDER, "Rec", **over)


def strat(trader: Trader, name: str) -> Any:
    return trader.host.by_name[name].instance


def realtime_at_sim(sim: Simulator) -> set[str]:
    """The realtime searches the simulator holds for the engine's connection."""
    (session,) = [s for s in sim.realtime.sessions if s.logged_in]
    return set(session.cnsr.realtime)


async def test_hits_go_to_the_watchers_only_members_first_also_for_a_late_watcher(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.conditions.set_members("0", ["005930"])
    strategies = (
        rec(tmp_path, "a", symbols=(), conditions=("수동0",)),
        rec(tmp_path, "b", symbols=(), conditions=("seq:1",)),
        rec(tmp_path, "c"),
    )
    async with running_engine(sim, tmp_path / "state", strategies) as (trader, _ws, _api):
        a, b, c = (strat(trader, n) for n in "abc")
        await until(lambda: a.hits == [("0", "수동0", "005930", True, 0)])
        sim.conditions.set_members("0", ["005930", "000660"])
        sim.conditions.set_members("1", ["035420"])
        await until(lambda: len(a.hits) == 2 and len(b.hits) == 1)
        assert a.hits[1][:4] == ("0", "수동0", "000660", True)
        assert a.hits[1][4] > 0  # pushed: the exchange's time
        assert b.hits[0][:4] == ("1", "수동1", "035420", True)
        assert c.hits == []
        # A strategy that starts watching later gets the current members first.
        assert trader.host.by_name["c"].watch_condition("수동0") == "0"
        await until(lambda: len(c.hits) == 2)
        assert sorted(c.hits) == [("0", "수동0", s, True, 0) for s in ("000660", "005930")]
        assert realtime_at_sim(sim) == {"0", "1"}  # one search for a and c
        sim.conditions.set_members("0", ["000660"])
        await until(lambda: len(a.hits) == 3 and len(c.hits) == 3)
        assert a.hits[2][:4] == c.hits[2][:4] == ("0", "수동0", "005930", False)
        assert len(b.hits) == 1
        assert strat(trader, "b").conditions()[:2] == [("0", "수동0"), ("1", "수동1")]
        # The last watcher leaving clears the search at the simulator.
        trader.host.by_name["a"].unwatch_condition("수동0")
        assert realtime_at_sim(sim) == {"0", "1"}  # c still watches it
        trader.host.by_name["c"].unwatch_condition("seq:0")
        await until(lambda: realtime_at_sim(sim) == {"1"})
        # Every hit came stamped (seq, ts_recv): Rec asserts it, and a failed assert counts.
        assert [trader.host.by_name[n].errors for n in "abc"] == [0, 0, 0]


async def test_ten_conditions_shared_by_two_strategies_are_ten_and_the_eleventh_is_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    ten = tuple(f"seq:{i}" for i in range(10))
    strategies = (
        rec(tmp_path, "p", symbols=(), conditions=ten),
        rec(tmp_path, "q", symbols=(), conditions=tuple(reversed(ten))),
        rec(tmp_path, "r", conditions=("수동10",)),
        rec(tmp_path, "s"),
    )
    async with running_engine(sim, tmp_path / "state", strategies) as (trader, ws, _api):
        await until(lambda: len(realtime_at_sim(sim)) == 10)
        assert realtime_at_sim(sim) == {str(i) for i in range(10)}
        assert trader.universe.status()["realtime_conditions"] == 10
        metrics = EngineMetrics(trader, ws, LoopMonitor(), {}).render().decode()
        assert 'kiwoom_engine_realtime_conditions{kind="in_use"} 10.0' in metrics
        assert 'kiwoom_engine_realtime_conditions{kind="limit"} 10.0' in metrics
        # The strategy whose condition is the eleventh is disabled, with the reason.
        r = trader.host.by_name["r"]
        assert not r.enabled
        assert r.disabled_reason.startswith("condition_limit: strategies[2].conditions")
        assert "kiwoom.max_realtime_conditions" in r.disabled_reason
        status = {s["name"]: s["state"] for s in trader.status()["strategies"]}
        assert status["r"].startswith("disabled: condition_limit")
        assert status["p"] == status["q"] == status["s"] == "running"
        s = trader.host.by_name["s"]
        with pytest.raises(ValueError, match=r"max_realtime_conditions"):
            s.watch_condition("수동11")
        assert s.watch_condition("seq:3") == "3"  # one already running is no more
        assert len(realtime_at_sim(sim)) == 10
        # One leaves only when every watcher left it; then the eleventh fits.
        trader.host.by_name["p"].unwatch_condition("seq:9")
        trader.host.by_name["q"].unwatch_condition("seq:9")
        assert s.watch_condition("수동11") == "11"
        await until(lambda: "11" in realtime_at_sim(sim))
        assert "9" not in realtime_at_sim(sim)
        assert len(realtime_at_sim(sim)) == 10


async def test_an_unknown_condition_disables_only_its_strategy(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.conditions.set_members("2", ["000660"])
    strategies = (
        rec(tmp_path, "x", symbols=(), conditions=("수동2", "급등주")),
        rec(tmp_path, "y", symbols=(), conditions=("수동2",)),
    )
    async with running_engine(sim, tmp_path / "state", strategies) as (trader, _ws, _api):
        x, y = trader.host.by_name["x"], trader.host.by_name["y"]
        assert not x.enabled
        assert x.disabled_reason.startswith(
            "unknown_condition: strategies[0].conditions[1]: no condition '급등주'"
        )
        assert "'수동2' (seq:2)" in x.disabled_reason  # what the login has
        assert y.enabled
        await until(lambda: y.instance.hits == [("2", "수동2", "000660", True, 0)])
        assert getattr(x.instance, "hits", []) == []  # never started, never called
        assert realtime_at_sim(sim) == {"2"}


async def test_a_leave_lost_in_a_reconnect_reaches_the_strategy(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.conditions.set_members("2", ["005930", "000660"])
    strategies = (rec(tmp_path, "a", symbols=(), conditions=("seq:2",)),)
    async with running_engine(sim, tmp_path / "state", strategies) as (trader, _ws, _api):
        a = strat(trader, "a")
        await until(lambda: len(a.hits) == 2)
        reconnected: list[Reconnected] = []
        trader.bus.subscribe(Reconnected, reconnected.append)
        sim.state.faults.ws_silent = True
        sim.conditions.set_members("2", ["005930"])  # the leave is pushed into the void
        old = [s for s in sim.realtime.sessions if s.logged_in]
        await until(lambda: all(s.cnsr.realtime.get("2") == ["005930"] for s in old))
        await sim.realtime.drop_all()
        sim.state.faults.ws_silent = False
        await until(lambda: bool(reconnected), 10)
        await until(lambda: len(a.hits) == 3)
        assert a.hits[2] == ("2", "수동2", "000660", False, 0)
        assert realtime_at_sim(sim) == {"2"}


async def test_subscriptions_register_once_count_daemon_symbols_and_load_before_ready(
    sim: Simulator, tmp_path: Path
) -> None:
    strategies = (rec(tmp_path, "s1"), rec(tmp_path, "s2"))
    async with running_engine(sim, tmp_path / "state", strategies) as (trader, ws, _api):
        s1, s2 = trader.host.by_name["s1"], trader.host.by_name["s2"]

        def pairs(symbol: str) -> set[str]:
            return {t for t, item in sim.realtime.registered_pairs() if item == symbol}

        assert pairs(NEW) == set()
        with pytest.raises(ValueError, match="not one of this strategy's symbols"):
            s1.order(*_buy(NEW, 1))
        s1.subscribe(NEW, ("trades", "quotes"))
        s2.subscribe(NEW, ("trades",))
        await until(lambda: [r[0] for r in s1.instance.ready] == [NEW], 10)
        await until(lambda: [r[0] for r in s2.instance.ready] == [NEW], 10)
        assert pairs(NEW) == {"0B", "0C", "0g", "1h"}  # VI notices and stock info with any data
        # Loaded before `on_subscribed`: the base price (risk's band) and the best quote.
        assert trader.portfolio.base[NEW] == sim.market.prev_close(NEW)
        quote = s1.instance.ready[0][1]
        assert quote is not None
        assert quote.best_ask > quote.best_bid > 0
        await until(lambda: NEW in s1.instance.trades and NEW in s2.instance.trades, 10)
        # An order in it is allowed, and priced by what was loaded.
        ask = trader.host.quotes[NEW].best_ask
        order = s1.order(*_buy(NEW, 1, ask))
        await until(lambda: order.state is OrderState.FILLED, 10)
        # Kept across a reconnect: part of the registrations every new session restores.
        sessions = ws.sessions
        await sim.realtime.drop_all()
        await until(lambda: ws.sessions > sessions and pairs(NEW) == {"0B", "0C", "0g", "1h"}, 10)
        # The last owner of each type removes it.
        s1.unsubscribe(NEW)
        await until(lambda: pairs(NEW) == {"0B", "0g", "1h"})
        s2.unsubscribe(NEW)
        await until(lambda: pairs(NEW) == set())
        # A symbol of [daemon] symbols stays registered when a strategy leaves it.
        daemon_types = pairs(SYMBOL)
        assert daemon_types == {"0B", "0C", "0D"}
        s2.subscribe(SYMBOL, ("book",))
        await until(lambda: [r[0] for r in s2.instance.ready][-1:] == [SYMBOL], 10)
        assert pairs(SYMBOL) == {*daemon_types, "0g", "1h"}
        s2.unsubscribe(SYMBOL)
        await until(lambda: pairs(SYMBOL) == daemon_types)  # 0D stays: the daemon's too
        with pytest.raises(ValueError, match="data must name"):
            s1.subscribe(NEW, ("ticks",))
        with pytest.raises(ValueError, match="not a KRX symbol"):
            s1.subscribe("5930", ("trades",))


def _buy(symbol: str, qty: int, price: int | None = None) -> tuple[Any, ...]:
    from engine.events import Side

    return (Side.BUY, symbol, qty, price, None)


async def test_a_symbol_bought_after_a_subscribe_is_sold_after_a_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    strategies = (rec(tmp_path, "s1"),)
    async with running_engine(sim, state, strategies) as (trader, _ws, _api):
        s1 = trader.host.by_name["s1"]
        s1.subscribe(NEW, ("trades", "quotes"))
        await until(lambda: bool(s1.instance.ready), 10)
        order = s1.order(*_buy(NEW, 1, trader.host.quotes[NEW].best_ask))
        await until(lambda: order.state is OrderState.FILLED, 10)
        assert s1.position(NEW) == 1
    assert {t for t, i in sim.realtime.registered_pairs() if i == NEW} == set()  # gone with it
    async with running_engine(sim, state, strategies) as (trader, _ws, _api):
        s1 = trader.host.by_name["s1"]
        assert s1.subscriptions() == {NEW: ("quotes", "trades")}
        await until(lambda: [r[0] for r in s1.instance.ready] == [NEW], 10)
        registered = {t for t, i in sim.realtime.registered_pairs() if i == NEW}
        assert registered == {"0B", "0C", "0g", "1h"}
        await until(lambda: NEW in s1.instance.trades, 10)  # prices flow again
        assert s1.position(NEW) == 1
        from engine.events import Side

        bid = trader.host.quotes[NEW].best_bid
        sell = s1.order(Side.SELL, NEW, 1, bid, None)
        await until(lambda: sell.state is OrderState.FILLED, 10)
        assert s1.position(NEW) == 0


def test_condition_hits_are_market_data_not_account_events() -> None:
    # Dispatched in arrival order with the market, and a slow copy (MQTT) may drop them;
    # never taken for an account event (which no queue may drop, and which jumps the line).
    assert not issubclass(ConditionHit, ACCOUNT_EVENTS)


HISTORY = """
class Hist(Strategy):
    def on_start(self):
        self.loaded = {}

    def on_subscribed(self, symbol):
        self.loaded[symbol] = list(self.bars(symbol, "1m"))
"""


async def test_a_subscribe_loads_history_bars_before_on_subscribed(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "h", HISTORY, "Hist", bars=("1m",), history=12)
    async with running_engine(sim, tmp_path / "state", (sc,)) as (trader, _ws, _api):
        h = trader.host.by_name["h"]
        with pytest.raises(ValueError, match="no 1m bars"):
            h.bars(NEW, "1m")  # not in its universe yet
        h.subscribe(NEW, ("trades",))
        await until(lambda: NEW in h.instance.loaded, 10)
        bars = h.instance.loaded[NEW]
        assert len(bars) == 12
        starts = [b.start for b in bars]
        assert starts == sorted(starts)
        assert len(set(starts)) == 12
        assert all(b.symbol == NEW and b.interval == "1m" for b in bars)
        assert all((trader.clock.now() - b.start).total_seconds() >= 60 for b in bars)


async def test_a_strategy_toggling_a_subscription_in_a_loop_is_stopped_at_the_bound(
    sim: Simulator, tmp_path: Path
) -> None:
    # Every subscribe/unsubscribe waits in one queue for the feed: a strategy that toggles a
    # symbol in a loop (without returning to the loop) is refused past the bound, not let
    # grow the queue without end, and what it did before stays consistent at the server.
    from engine.universe.manager import MAX_PENDING_CHANGES

    async with running_engine(sim, tmp_path / "state", (rec(tmp_path, "s1"),)) as (trader, *_):
        s1 = trader.host.by_name["s1"]
        done: list[str] = []

        def toggle() -> None:
            for _ in range(MAX_PENDING_CHANGES):
                s1.subscribe(NEW, ("trades",))
                done.append("subscribe")
                s1.unsubscribe(NEW)
                done.append("unsubscribe")

        with pytest.raises(RuntimeError, match="subscription changes already wait"):
            toggle()
        assert len(done) == MAX_PENDING_CHANGES
        assert NEW not in s1.subs  # the last change that went through was an unsubscribe
        await until(lambda: trader.universe._ops.qsize() == 0, 30)
        assert {t for t, item in sim.realtime.registered_pairs() if item == NEW} == set()
        s1.subscribe(NEW, ("trades",))  # room again once the feed caught up
        await until(lambda: [r[0] for r in s1.instance.ready][-1:] == [NEW], 10)
