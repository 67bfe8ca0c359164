"""Issue 15 on the daemon's own start-up path (engine.daemon.assemble) against the simulator
over real sockets: VI refuses a market order and a limit order joins the auction, filling at
its uncross after the release; the simulator's 0s notices drive the session a strategy and
risk see; `on_realtime` receives another Kiwoom type keyed by the catalogue's field names;
orders route to NXT and SOR (and mode mock refuses them). The market is moved through the
simulator's control endpoint (POST /_sim/market)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.config import RealtimeConfig, StrategyConfig
from engine.daemon import Running, assemble
from engine.events import Exchange, Fill, OrderState, SessionState, ViEvent
from engine.metrics import NAMESPACE, EngineMetrics, LoopMonitor
from engine.plugins import load_all
from engine.sim.simulator import Simulator
from engine.trading import krx
from tests.engine.conftest import SYMBOL, engine_config, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)
S = OrderState

WATCHER = """
class Watcher(Strategy):
    def on_start(self):
        self.vis = []
        self.sessions = []
        self.realtime = []
        self.orders = []
    def on_vi(self, vi):
        self.vis.append((vi, self.vi_active(vi.symbol)))
    def on_session(self, session):
        self.sessions.append((session, self.session))
    def on_realtime(self, event):
        self.realtime.append(event)
    def on_order(self, order):
        self.orders.append((order.client_id, order.state))
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # A short auction; thresholds no random walk reaches, so only the control endpoint
    # starts a VI.
    cfg = sim_config(control=True, vi_auction_s=1.0, vi_static_pct=29.0, vi_dynamic_pct=29.0)
    async with Simulator(cfg) as s:
        yield s


@asynccontextmanager
async def daemon(
    sim: Simulator, tmp: Path, *strategies: StrategyConfig, **kiwoom: Any
) -> AsyncIterator[Running]:
    cfg = engine_config(sim, tmp / "state", strategies)
    if kiwoom:
        cfg = dataclasses.replace(cfg, kiwoom=dataclasses.replace(cfg.kiwoom, **kiwoom))
    loaded, problems = load_all(cfg)
    assert not problems, problems
    async with AsyncExitStack() as stack:
        running = await assemble(cfg, stack, sim.clock, loaded)
        try:
            yield running
        finally:
            await running.trader.stop(cancel_open=False, timeout_s=3.0)


async def market(sim: Simulator, **body: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/_sim/market", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


def watcher(tmp: Path, **over: Any) -> StrategyConfig:
    return write_strategy(tmp, "w", WATCHER, "Watcher", **over)


async def test_vi_refuses_a_market_order_and_a_limit_order_fills_at_the_uncross(
    sim: Simulator, tmp_path: Path
) -> None:
    async with daemon(sim, tmp_path, watcher(tmp_path)) as running:
        trader = running.trader
        strat: Any = trader.host.by_name["w"].instance
        assert ("1h", SYMBOL) in sim.realtime.registered_pairs()
        await until(lambda: trader.portfolio.last.get(SYMBOL) is not None, 5)
        fills: list[Fill] = []
        vis: list[ViEvent] = []
        trader.bus.subscribe(Fill, fills.append)
        trader.bus.subscribe(ViEvent, vis.append)

        assert (await market(sim, vi=SYMBOL))["vi"] == [SYMBOL]
        await until(lambda: len(strat.vis) == 1)
        vi, seen_active = strat.vis[0]
        assert (vi.symbol, vi.exchange, vi.active, seen_active) == (
            SYMBOL,
            Exchange.KRX,
            True,
            True,
        )
        assert strat.vi_active(SYMBOL)

        refused = strat.buy(SYMBOL, 1, None)
        assert (refused.state, refused.reason) == (S.REJECTED, "VI_ACTIVE")
        last = trader.portfolio.last[SYMBOL]
        price = krx.round_to_tick(last * 102 // 100, "up")
        order = strat.buy(SYMBOL, 1, price)
        await until(lambda: order.state is not S.SUBMITTING)
        assert order.state is S.ACCEPTED  # taken by the auction, not matched in it
        assert fills == []

        await until(lambda: order.state is S.FILLED, 10)
        release = [v for v in vis if not v.active]
        assert len(release) == 1
        assert not strat.vi_active(SYMBOL)
        assert [v.active for v, _ in strat.vis] == [True, False]
        # Filled at the uncross after the release, not during the auction.
        (fill,) = [f for f in fills if f.client_id == order.client_id]
        assert fill.seq > release[0].seq
        assert fill.price <= price
        # The refusal was the market's, not the strategy's: it does not count against it.
        assert trader.host.by_name["w"].rejections == 0
        assert trader.risk.market.vi_events == 2
        metrics = EngineMetrics(trader, running.ws, LoopMonitor(), running.report.counts)
        text = metrics.render().decode()
        assert f"{NAMESPACE}_vi_events_total 2.0" in text
        assert f"{NAMESPACE}_vi_active_symbols 0.0" in text
        assert f'{NAMESPACE}_realtime_conditions{{kind="in_use"}} 0.0' in text
        assert f'{NAMESPACE}_realtime_conditions{{kind="limit"}} 10.0' in text


async def test_the_simulators_0s_drives_the_session_of_strategies_and_risk(
    sim: Simulator, tmp_path: Path
) -> None:
    async with daemon(sim, tmp_path, watcher(tmp_path)) as running:
        trader = running.trader
        strat: Any = trader.host.by_name["w"].instance
        assert ("0s", "") in sim.realtime.registered_pairs()
        # The registration's first notices (KRX and NXT regular) come before on_start: the
        # state is there to read, and later notices are handed to on_session.
        await until(lambda: trader.risk.market.from_feed(Exchange.NXT))
        assert trader.risk.market.from_feed(Exchange.KRX)
        assert strat.session is SessionState.REGULAR

        await market(sim, session="closed")
        await until(lambda: strat.session is SessionState.CLOSED)
        last, seen = strat.sessions[-1]
        assert (last.exchange, last.state, seen) == (
            Exchange.KRX,
            SessionState.CLOSED,
            SessionState.CLOSED,
        )
        await until(lambda: trader.portfolio.last.get(SYMBOL) is not None, 5)
        price = trader.portfolio.last[SYMBOL]
        refused = strat.buy(SYMBOL, 1, price)
        assert (refused.state, refused.reason) == (S.REJECTED, "SESSION_CLOSED")
        # NXT's session is its own: an NXT order still goes (and the simulator takes it).
        nxt = strat.buy(SYMBOL, 1, price, venue="NXT")
        await until(lambda: nxt.state is not S.SUBMITTING)
        assert nxt.state in (S.ACCEPTED, S.FILLED)

        await market(sim, session="closing_auction")
        await until(lambda: strat.session is SessionState.CLOSING_AUCTION)
        order = strat.buy(SYMBOL, 1, price)  # the NXT order's twin on KRX: no DUPLICATE
        await until(lambda: order.state is not S.SUBMITTING)
        assert order.state in (S.ACCEPTED, S.FILLED), order.reason
        assert trader.host.by_name["w"].rejections == 0  # SESSION_CLOSED is the market's


async def test_orders_route_to_nxt_and_sor_and_the_nxt_session_applies(
    sim: Simulator, tmp_path: Path
) -> None:
    async with daemon(sim, tmp_path, watcher(tmp_path)) as running:
        trader = running.trader
        strat: Any = trader.host.by_name["w"].instance
        await until(lambda: trader.portfolio.last.get(SYMBOL) is not None, 5)
        price = krx.round_to_tick(trader.portfolio.last[SYMBOL] * 98 // 100, "down")  # rests
        placed = {v: strat.buy(SYMBOL, 1, price, venue=v) for v in ("KRX", "NXT", "SOR")}
        await until(lambda: all(o.state is S.ACCEPTED for o in placed.values()))
        at_sim = {o.ord_no: o.venue for o in sim.exchange.orders()}
        assert {v: at_sim[o.order_no] for v, o in placed.items()} == {
            "KRX": "KRX",
            "NXT": "NXT",
            "SOR": "SOR",
        }
        assert {o.venue for o in placed.values()} == {Exchange.KRX, Exchange.NXT, Exchange.SOR}
        # A cancel goes to the order's own venue (the simulator refuses a wrong one).
        strat.cancel(placed["NXT"])
        await until(lambda: placed["NXT"].state is S.CANCELED)

        await market(sim, nxt_session="closed")
        await until(lambda: trader.risk.market.session(Exchange.NXT) is SessionState.CLOSED)
        refused = strat.buy(SYMBOL, 2, price, venue="NXT")
        assert (refused.state, refused.reason) == (S.REJECTED, "SESSION_CLOSED")
        sor = strat.buy(SYMBOL, 2, price, venue="SOR")  # KRX is open: SOR goes
        await until(lambda: sor.state is not S.SUBMITTING)
        assert sor.state is S.ACCEPTED, sor.reason
        with pytest.raises(ValueError, match="venue must be KRX, NXT or SOR"):
            strat.buy(SYMBOL, 1, price, venue="NYSE")
        assert trader.oms.venues == {Exchange.KRX, Exchange.NXT, Exchange.SOR}


async def test_mode_mock_refuses_nxt_and_sor_before_sending(sim: Simulator, tmp_path: Path) -> None:
    # Mode mock pointed at the simulator: Kiwoom's paper trading is KRX only.
    async with daemon(sim, tmp_path, watcher(tmp_path), mode="mock") as running:
        trader = running.trader
        strat: Any = trader.host.by_name["w"].instance
        trader.risk.check_session_hours = False  # the calendar's hour is not this test's
        await until(lambda: trader.portfolio.last.get(SYMBOL) is not None, 5)
        price = krx.round_to_tick(trader.portfolio.last[SYMBOL] * 98 // 100, "down")
        before = len(sim.exchange.orders())
        for venue in ("NXT", "SOR"):
            order = strat.buy(SYMBOL, 1, price, venue=venue)
            assert (order.state, order.reason) == (S.REJECTED, "VENUE")
        assert len(sim.exchange.orders()) == before  # nothing was sent
        krx_order = strat.buy(SYMBOL, 1, price)
        await until(lambda: krx_order.state is S.ACCEPTED)


async def test_on_realtime_gets_another_type_keyed_by_field_names(
    sim: Simulator, tmp_path: Path
) -> None:
    sector = RealtimeConfig(type="0J", items=("001",))
    async with daemon(sim, tmp_path, watcher(tmp_path, realtime=(sector,))) as running:
        strat: Any = running.trader.host.by_name["w"].instance
        assert ("0J", "001") in sim.realtime.registered_pairs()
        assert ("0J", "101") not in sim.realtime.registered_pairs()
        values = {"20": "101500", "10": "+2650.12", "11": "+12.30", "12": "+0.47"}
        sim.realtime.publish({"type": "0J", "name": "업종지수", "item": "101", "values": values})
        sim.realtime.publish({"type": "0J", "name": "업종지수", "item": "001", "values": values})
        await until(lambda: len(strat.realtime) == 1)
        (ev,) = strat.realtime
        assert (ev.type, ev.item) == ("0J", "001")
        assert ev.values == {
            "체결시간": "101500",
            "현재가": "+2650.12",
            "전일대비": "+12.30",
            "등락율": "+0.47",
        }
