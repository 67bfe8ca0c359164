"""The admin endpoint over real HTTP, on an engine trading against the simulator: health,
Prometheus metrics, status and the kill switch."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine import control
from engine.admin import AdminServer
from engine.config import AdminConfig, Config, StrategyConfig
from engine.events import OrderState
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.metrics import EngineMetrics, LoopMonitor
from engine.plugins import load_all
from engine.sim.simulator import Simulator
from engine.trader import Trader
from tests.engine.conftest import SYMBOL, engine_config, sim_config, write_strategy
from tests.support import until

BUYS_THEN_OVERSIZES = """
class BuysThenOversizes(Strategy):
    def on_start(self):
        self.first = None
        self.second = None

    def on_trade(self, trade):
        if not trade.best_ask:
            return
        if self.first is None:
            self.first = self.buy(trade.symbol, 1, trade.best_ask)
        elif self.second is None and self.first.state is OrderState.FILLED:
            self.second = self.buy(trade.symbol, 50, trade.best_ask)  # over max_order_qty
"""


class Admin:
    def __init__(self, server: AdminServer, trader: Trader, ws: KiwoomWebSocket) -> None:
        self.server = server
        self.trader = trader
        self.ws = ws
        self.base = f"http://127.0.0.1:{server.port}"

    async def call(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.base + path, data=body, headers=headers) as r,
        ):
            raw = await r.read()
            if r.content_type == "application/json":
                return r.status, orjson.loads(raw)
            return r.status, raw.decode()

    async def metrics(self) -> dict[str, float]:
        code, text = await self.call("GET", "/metrics")
        assert code == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


@asynccontextmanager
async def engine_with_admin(
    sim: Simulator,
    state_dir: Path,
    strategies: tuple[StrategyConfig, ...] = (),
    *,
    configure: Callable[[Config], Config] | None = None,
    **risk: Any,
) -> AsyncIterator[Admin]:
    """The daemon's pieces in-process (as engine/daemon.py wires them), with a feed that
    turns stale after half a second of silence. `configure` edits the config first."""
    cfg = engine_config(sim, state_dir, strategies, **risk)
    if configure is not None:
        cfg = configure(cfg)
    loaded, problems = load_all(cfg)
    assert not problems, problems
    async with KiwoomRest.from_config(cfg) as rest:
        trader = Trader(cfg, KiwoomApi(rest), sim.clock, loaded)
        await trader.recover()
        counts: Counter[str] = Counter()
        trader.bus.subscribe_all(lambda ev: counts.update((type(ev).__name__,)))
        ws = KiwoomWebSocket(
            cfg.ws_url,
            rest.tokens.token,
            rest.tokens.invalidate,
            on_event=trader.on_event,
            stale_after_s=0.5,
            stale_grace_s=30.0,
            sequence=trader.bus.next_seq,
        )
        loop = LoopMonitor(interval_s=0.05)
        monitor = asyncio.create_task(loop.run())
        server = AdminServer(
            AdminConfig(port=0),
            trader,
            ws,
            EngineMetrics(trader, ws, loop, counts),
            loop,
            sim.clock,
            mode="sim",
            urls={"rest": cfg.rest_url, "ws": cfg.ws_url},
        )
        await server.start()
        try:
            await ws.start()
            await ws.subscribe(["0B", "0C", "0D"], [SYMBOL])
            await ws.subscribe(["00", "04"], [])
            await trader.start()
            yield Admin(server, trader, ws)
        finally:
            await trader.stop(cancel_open=False, timeout_s=3.0)
            await ws.close()
            await server.close()
            monitor.cancel()


@pytest.fixture
async def sim() -> Simulator:
    async with Simulator(sim_config()) as s:
        yield s  # type: ignore[misc]


async def test_healthz_is_200_while_live_and_503_once_the_feed_is_stale(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        code, body = await admin.call("GET", "/healthz")
        assert (code, body["healthy"], body["feed_live"]) == (200, True, True)
        sim.state.faults.ws_silent = True  # the server froze; its socket stays open
        await until(lambda: admin.ws.stale, 5)
        code, body = await admin.call("GET", "/healthz")
        assert code == 503
        assert body["feed_live"] is False
        assert body["loop_ok"] is True
        sim.state.faults.ws_silent = False
        await until(lambda: admin.ws.connected, 5)
        code, _ = await admin.call("GET", "/healthz")
        assert code == 200


async def test_healthz_is_503_right_after_the_loop_was_blocked(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        await until(lambda: admin.server.loop.stalled_s() < 0.5, 5)
        time.sleep(1.2)  # noqa: ASYNC251 - a handler blocking the loop past loop_stall_s (1 s)
        healthy, checks = admin.server.health()
        assert not healthy
        assert checks["loop_ok"] is False
        assert checks["loop_stalled_s"] >= 1.0


async def test_metrics_count_events_orders_rejections_and_tick_to_order(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "bto", BUYS_THEN_OVERSIZES, "BuysThenOversizes")
    async with engine_with_admin(sim, tmp_path / "state", (sc,), max_order_qty=10) as admin:
        strat = admin.trader.host.by_name["bto"].instance
        await until(lambda: strat.second is not None, 10)
        assert strat.second.state is OrderState.REJECTED
        await until(lambda: admin.trader.journal_queue.depth == 0)
        m = await admin.metrics()
        assert m['kiwoom_engine_orders{state="filled"}'] == 1
        assert m['kiwoom_engine_orders{state="rejected"}'] == 1
        assert m['kiwoom_engine_risk_rejections_total{reason="MAX_ORDER_QTY"}'] == 1
        # One order went out, answering a trade: one tick-to-order sample.
        assert m["kiwoom_engine_tick_to_order_seconds_count"] == 1
        assert 0 < m["kiwoom_engine_tick_to_order_seconds_sum"] < 1
        assert m['kiwoom_engine_events_in_total{type="Trade"}'] > 0
        assert m['kiwoom_engine_events_in_total{type="Fill"}'] == 1
        journal = admin.trader.journal_queue
        assert m['kiwoom_engine_events_out_total{consumer="journal"}'] == journal.offered > 0
        assert m['kiwoom_engine_queue_depth{consumer="journal",kind="all"}'] == 0
        assert 'kiwoom_engine_events_dropped_total{consumer="journal",why="overflow"}' in m
        # The journal's own health: one intent (the oversized order never got that far).
        assert m["kiwoom_engine_journal_intents_total"] == admin.trader.journal.intents == 1
        assert m["kiwoom_engine_journal_intents_pending"] == 0
        assert m["kiwoom_engine_journal_write_errors_total"] == 0
        assert m["kiwoom_engine_journal_failed_events_total"] == 0
        assert m["kiwoom_engine_event_loop_lag_seconds_count"] > 0
        assert m['kiwoom_engine_trading_state{state="active"}'] == 1
        assert m["kiwoom_engine_feed_live"] == 1
        assert m["kiwoom_engine_ws_reconnects_total"] == 0
        sessions = admin.ws.sessions
        sim.state.faults.ws_drop_now()
        await until(lambda: admin.ws.sessions > sessions and admin.ws.connected, 10)
        m = await admin.metrics()
        assert m["kiwoom_engine_ws_reconnects_total"] == 1


async def test_status_and_the_kill_switch(sim: Simulator, tmp_path: Path) -> None:
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        code, st = await admin.call("GET", "/status")
        assert code == 200
        assert st["mode"] == "sim"
        assert st["trading_state"] == "active"
        assert st["connections"]["feed"]["live"] is True
        assert st["connections"]["feed"]["compressed"] is True  # kiwoom.ws_compression default
        assert st["connections"]["rest"]["url"] == sim.rest_url
        assert st["limits"]["max_order_qty"] == admin.trader.cfg.risk.max_order_qty
        assert "portfolio" in st
        assert "open_orders" in st

        code, body = await admin.call("POST", "/halt", b'{"reason": "lunch\\nbreak"}')
        assert code == 200
        assert body == {"trading_state": "halted", "reason": "OPERATOR_HALT: lunch\\x0abreak"}
        assert admin.trader.risk.state.value == "halted"
        code, body = await admin.call("POST", "/resume")
        assert (code, body["trading_state"]) == (200, "active")

        # A malformed command changes nothing.
        for raw in (b"not json", b'{"reason": 3}', b'{"why": "x"}', b"[1]"):
            code, body = await admin.call("POST", "/halt", raw)
            assert code == 400, raw
            assert "error" in body
        assert admin.trader.risk.state.value == "active"
        # A web page in a local browser cannot flip the switch (browsers send Origin).
        code, _ = await admin.call("POST", "/halt", Origin="http://evil.example")
        assert code == 403
        assert admin.trader.risk.state.value == "active"
        code, _ = await admin.call("GET", "/halt")
        assert code == 405


async def test_every_route_refuses_a_foreign_host_name(sim: Simulator, tmp_path: Path) -> None:
    # DNS rebinding: a web page whose own domain name now resolves to 127.0.0.1 reaches the
    # endpoint from a local browser, which sends that domain in Host (and for a simple
    # cross-site POST, Origin is the page's, but a GET needs none). Every route refuses it.
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        foreign = {"Host": f"evil.example:{admin.server.port}"}
        for method, path in (
            ("GET", "/status"),
            ("GET", "/metrics"),
            ("GET", "/healthz"),
            ("POST", "/halt"),
            ("POST", "/resume"),
            ("POST", "/enable"),
            ("GET", "/no-such-route"),
        ):
            code, body = await admin.call(method, path, b"", **foreign)
            assert code == 403, (method, path, body)
            assert "portfolio" not in str(body), (method, path)
        assert admin.trader.risk.state.value == "active"  # the halt never applied
        # Loopback names, with and without the port, as the CLI, Prometheus and curl send.
        for host in (
            f"127.0.0.1:{admin.server.port}",
            f"localhost:{admin.server.port}",
            "127.0.0.1",
            f"[::1]:{admin.server.port}",
        ):
            code, body = await admin.call("GET", "/status", Host=host)
            assert (code, body["trading_state"]) == (200, "active"), host
        # The CLI (`kiwoom-engine status`, `halt`, `resume`) through engine.control.
        cfg = dataclasses.replace(admin.trader.cfg, admin=AdminConfig(port=admin.server.port))
        st = await asyncio.to_thread(control.request, cfg, "GET", "/status")
        assert st["trading_state"] == "active"
        halted = await asyncio.to_thread(control.request, cfg, "POST", "/halt", {"reason": "x"})
        assert halted["trading_state"] == "halted"
        resumed = await asyncio.to_thread(control.request, cfg, "POST", "/resume")
        assert resumed["trading_state"] == "active"
        m = await admin.metrics()  # a Prometheus scrape of 127.0.0.1:port
        assert m['kiwoom_engine_trading_state{state="active"}'] == 1


async def test_reload_swaps_limits_and_params_and_refuses_bad_params(
    sim: Simulator, tmp_path: Path
) -> None:
    body = """
    class Tunable(Strategy):
        @classmethod
        def check_params(cls, params):
            if params.get("qty", 1) < 1:
                raise ValueError("qty must be >= 1")

        def on_start(self):
            self.seen = []
            self.on_params()

        def on_params(self):
            self.qty = self.params.get("qty", 1)
            self.seen.append(self.qty)
    """
    sc = write_strategy(tmp_path, "tunable", body, "Tunable", params={"qty": 1})
    async with engine_with_admin(sim, tmp_path / "state", (sc,)) as admin:
        trader = admin.trader
        strat = trader.host.by_name["tunable"].instance
        sessions = admin.ws.sessions
        new = dataclasses.replace(
            trader.cfg,
            risk=dataclasses.replace(trader.cfg.risk, max_order_qty=7),
            strategies=(dataclasses.replace(sc, params={"qty": 4}),),
        )
        assert trader.reload(new) == []
        assert trader.risk.cfg.max_order_qty == 7
        assert strat.params["qty"] == 4
        assert strat.seen == [1, 4]
        refused = dataclasses.replace(
            new,
            risk=dataclasses.replace(new.risk, max_order_qty=2),
            strategies=(dataclasses.replace(sc, params={"qty": 0}),),
        )
        assert trader.reload(refused) == ["strategies[0].params: qty must be >= 1"]
        assert trader.risk.cfg.max_order_qty == 7  # nothing of the refused file applied
        assert strat.seen == [1, 4]
        # A lower daily loss limit already breached halts at once.
        trader.risk.add_realized_pnl(-5_000)
        lower = dataclasses.replace(new, risk=dataclasses.replace(new.risk, daily_loss_limit=1_000))
        assert trader.reload(lower) == []
        assert trader.risk.state.value == "halted"
        assert admin.ws.sessions == sessions  # no reconnect


def test_the_admin_host_must_be_loopback(tmp_path: Path) -> None:
    from engine import config

    p = tmp_path / "c.toml"
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        p.write_text(f'[admin]\nhost = "{host}"\n')
        assert config.load(p, env={}).admin == AdminConfig(host=host)
    for host in ("0.0.0.0", "192.168.1.5", "example.com"):
        p.write_text(f'[admin]\nhost = "{host}"\n')
        with pytest.raises(config.ConfigError, match=r"admin\.host: must be a loopback address"):
            config.load(p, env={})
    p.write_text("[kiwoom]\n")
    assert config.load(p, env={}).admin is None  # no table, no endpoint


def _post(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """A POST from another thread (the engine's loop is about to be blocked)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


async def test_while_the_loop_is_blocked_a_halt_is_queued_and_a_resume_withdrawn(
    sim: Simulator, tmp_path: Path
) -> None:
    import concurrent.futures

    async with engine_with_admin(sim, tmp_path / "state") as admin:
        port = admin.server.port
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # Sent from another thread while the engine's loop is held past the 2 s wait.
            halting = pool.submit(_post, port, "/halt")
            time.sleep(2.5)  # noqa: ASYNC251
            code, body = halting.result(timeout=10)
            assert code == 503, body
            assert body["queued"] is True
            await until(lambda: admin.trader.risk.state.value == "halted", 2)  # applied now

            resuming = pool.submit(_post, port, "/resume")
            time.sleep(2.5)  # noqa: ASYNC251
            code, body = resuming.result(timeout=10)
            assert code == 503, body
            assert body["queued"] is False
            await asyncio.sleep(0.2)
            assert admin.trader.risk.state.value == "halted"  # a late resume is not applied
        # The endpoint answered throughout, and answers now.
        code, health = await admin.call("GET", "/healthz")
        assert code == 200, health
