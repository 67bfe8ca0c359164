"""The daemon end to end against the built-in simulator: starts, streams, stops cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import types
from pathlib import Path

import orjson
import pytest

from engine import config, daemon, logs
from engine.clock import SYSTEM_CLOCK
from engine.events import Balance, OrderState
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.models import OrderType
from engine.sim.simulator import Simulator
from engine.trader import Trader
from tests.integration.conftest import client_config
from tests.support import until


def sim_config(state_dir: Path | None = None, **sim: object) -> config.Config:
    cfg = config.load(None, env={})
    daemon_cfg = dataclasses.replace(cfg.daemon, symbols=("005930", "000660"))
    if state_dir is not None:
        daemon_cfg = dataclasses.replace(daemon_cfg, state_dir=str(state_dir))
    return dataclasses.replace(
        cfg,
        sim=dataclasses.replace(cfg.sim, **{"port": 0, "events_per_s": 500.0, **sim}),
        daemon=daemon_cfg,
    )


def external_sim_config(sim: Simulator, state_dir: Path) -> config.Config:
    """The daemon pointed at a simulator of the test (its fault knobs at hand); its journal
    in the test's own directory, never ./var."""
    cfg = client_config(sim)
    return dataclasses.replace(
        cfg, daemon=dataclasses.replace(cfg.daemon, state_dir=str(state_dir))
    )


class Ready:
    """daemon.run's on_ready: the running engine, for tests to watch its state."""

    def __init__(self) -> None:
        self.trader: Trader | None = None

    def __call__(self, trader: Trader) -> None:
        self.trader = trader

    async def wait(self) -> Trader:
        await until(lambda: self.trader is not None, within_s=10.0)
        assert self.trader is not None
        return self.trader


async def test_daemon_streams_from_the_simulator_and_stops_cleanly(tmp_path: Path) -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    stop = asyncio.Event()
    ready = Ready()
    task = asyncio.create_task(daemon.run(sim_config(tmp_path), stop=stop, on_ready=ready))
    try:
        trader = await ready.wait()
        assert trader.running
        assert not trader.risk.reconciling
        # Trades of both symbols reach the engine (its last prices come from the feed only).
        await until(lambda: {"005930", "000660"} <= set(trader.portfolio.last), within_s=10.0)
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK
    assert not trader.running
    lines = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    events = [line["event"] for line in lines]
    assert "daemon_running" in events
    assert "account_snapshot" in events
    stopping = next(line for line in lines if line["event"] == "daemon_stopping")
    assert stopping["events"].get("Trade", 0) > 0
    assert stopping["codec"]["bad_frames"] == 0
    # The token is revoked at shutdown, and never printed.
    assert "token_revoked" in events
    assert events[-1] == "daemon_stopped"


async def test_the_daemon_registers_the_account_streams_and_hears_them(
    simulator: Simulator, tmp_path: Path
) -> None:
    # Order notices (00) and balances (04) are what the engine reconciles on: without their
    # registration the daemon would trade blind while every market stream looks fine.
    cfg = external_sim_config(simulator, tmp_path)
    stop = asyncio.Event()
    balances: list[Balance] = []

    def on_ready(trader: Trader) -> None:
        ready(trader)
        trader.bus.subscribe(Balance, balances.append)

    ready = Ready()
    task = asyncio.create_task(daemon.run(cfg, stop=stop, on_ready=on_ready))
    try:
        trader = await ready.wait()
        assert {("00", ""), ("04", "")} <= simulator.realtime.registered_pairs()
        async with KiwoomRest.from_config(cfg, revoke_on_close=False) as rest:
            ack = await KiwoomApi(rest).buy("005930", 1, OrderType.MARKET)
        # Placed elsewhere: the engine tracks it from its 00 notices as external, and books
        # its fill on the account.
        await until(lambda: ack.order_no in trader.oms.by_order_no, within_s=5.0)
        order = trader.oms.by_order_no[ack.order_no]
        await until(lambda: order.state is OrderState.FILLED, within_s=5.0)
        assert (order.external, order.strategy, order.filled_qty) == (True, None, 1)
        assert trader.oms.stats.external_orders == 1
        assert trader.portfolio.position_qty("005930") == 1
        await until(lambda: any(b.symbol == "005930" and b.qty == 1 for b in balances))
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK


async def test_a_silent_feed_is_reported_stale_then_replaced(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    monkeypatch.setattr(daemon, "STATS_INTERVAL_S", 0.05)
    cfg = external_sim_config(simulator, tmp_path)
    cfg = dataclasses.replace(
        cfg, kiwoom=dataclasses.replace(cfg.kiwoom, ws_stale_s=0.5, ws_stale_grace_s=0.5)
    )

    def logged(event: str) -> list[dict[str, object]]:
        lines = [orjson.loads(line) for line in buf.getvalue().splitlines()]
        return [line for line in lines if line["event"] == event]

    stop = asyncio.Event()
    ready = Ready()
    task = asyncio.create_task(daemon.run(cfg, stop=stop, on_ready=ready))
    try:
        trader = await ready.wait()
        await until(lambda: bool(logged("feed_stats")), within_s=10.0)
        assert logged("feed_stats")[-1]["state"] == "live"
        assert trader.risk.feed_live
        simulator.state.faults.ws_silent = True  # the server froze; its socket stays open
        # The engine stops new exposure as soon as the feed is stale.
        await until(lambda: not trader.risk.feed_live)
        # The stats say so while the TCP connection still looks fine.
        await until(lambda: logged("feed_stats")[-1]["state"] == "stale")
        stale = logged("feed_stats")[-1]
        assert stale["connected"] is False
        assert isinstance(stale["silent_s"], float)
        assert stale["silent_s"] >= 0.5
        await until(lambda: bool(logged("feed_disconnected")))
        assert logged("feed_disconnected")[0]["reason"] == "stale"
        reconciled = trader.reconciler.runs
        simulator.state.faults.ws_silent = False
        # Back, and reconciled with the broker's books, before new exposure flows again.
        await until(lambda: trader.risk.feed_live and not trader.risk.reconciling)
        assert trader.reconciler.runs > reconciled
        await until(lambda: logged("feed_stats")[-1]["state"] == "live")
    finally:
        stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK


async def test_daemon_reports_a_taken_simulator_port() -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        code = await daemon.run(sim_config(port=port), stop=asyncio.Event())
    finally:
        blocker.close()
    assert code == daemon.EXIT_STARTUP
    assert "sim_start_failed" in buf.getvalue()
    assert "kiwoom-engine sim" in buf.getvalue()


async def test_unwritable_record_file_is_a_startup_failure_with_its_reason(
    tmp_path: Path,
) -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    cfg = sim_config(tmp_path)
    cfg = dataclasses.replace(
        cfg, daemon=dataclasses.replace(cfg.daemon, record=str(tmp_path / "no" / "dir.ndjson"))
    )
    code = await asyncio.wait_for(daemon.run(cfg, stop=asyncio.Event()), 10)
    assert code == daemon.EXIT_STARTUP
    failed = [json.loads(line) for line in buf.getvalue().splitlines() if "startup_failed" in line]
    assert failed
    assert failed[0]["error_type"] == "FileNotFoundError"


async def test_stop_during_a_hanging_startup_returns_promptly() -> None:
    # A broker that accepts connections and never answers: the token request would retry for
    # longer than systemd's stop timeout. SIGTERM (stop) must end start-up, not wait it out.
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    conns: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(w)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = config.load(None, env={"KIWOOM_APPKEY": "hang-appkey-1234", "KIWOOM_SECRETKEY": "s" * 9})
    cfg = dataclasses.replace(
        cfg,
        kiwoom=dataclasses.replace(
            cfg.kiwoom,
            mode="mock",
            rest_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}/api/dostk/websocket",
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(cfg, stop=stop))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if conns:
                break
        assert conns, "the daemon never reached the broker"
        stop.set()
        assert await asyncio.wait_for(task, 3) == daemon.EXIT_OK
    finally:
        task.cancel()
        server.close()
        for w in conns:
            w.close()
    assert "daemon_stopped_during_startup" in buf.getvalue()


async def test_a_crash_in_the_stats_report_does_not_end_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    monkeypatch.setattr(daemon, "STATS_INTERVAL_S", 0.01)
    rounds = 0

    class FlakyFeed:
        stats = types.SimpleNamespace(bad_frames=0, bad_entries=0)
        state = "live"
        silent_s = 0.0

        @property
        def connected(self) -> bool:
            nonlocal rounds
            rounds += 1
            if rounds == 1:
                raise RuntimeError("stats bug")
            return True

    engine = types.SimpleNamespace(
        oms=types.SimpleNamespace(counts_by_state=dict),
        risk=types.SimpleNamespace(
            state=types.SimpleNamespace(value="active"), roll_day=lambda: None
        ),
        portfolio=types.SimpleNamespace(realized_today=0),
        clock=SYSTEM_CLOCK,  # the report waits on the engine's clock
    )
    task = asyncio.create_task(
        daemon._report_stats(daemon.FeedReport(), FlakyFeed(), engine)  # type: ignore[arg-type]
    )
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if rounds >= 3:
                break
        assert not task.done()
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # cancelled, not failed: shutdown's `await stats` cannot re-raise a bug
    out = buf.getvalue()
    assert "feed_stats_failed" in out
    assert '"event":"feed_stats"' in out


@pytest.fixture(autouse=True)
def _quiet_logs() -> object:
    yield
    logs.setup("warning", "json", io.StringIO())


async def test_a_flusher_gets_its_share_of_the_stop_deadline_and_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hook the MQTT mirror's spool uses: flushed after the journal, before the revoke.
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    budgets: list[float] = []

    async def hangs(budget_s: float) -> None:
        budgets.append(budget_s)
        await asyncio.Event().wait()  # a broker that never takes the spool

    start = daemon._start

    async def start_with_flusher(*args: object) -> daemon.Running:
        running = await start(*args)  # type: ignore[arg-type]
        running.flushers.append(hangs)
        return running

    monkeypatch.setattr(daemon, "_start", start_with_flusher)
    cfg = sim_config()
    cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, stop_timeout_s=2.0))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(cfg, stop=stop))
    await until(lambda: "daemon_running" in buf.getvalue() or task.done(), 15)
    stop.set()
    assert await asyncio.wait_for(task, 10) == daemon.EXIT_OK
    lines = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    events = [line["event"] for line in lines]
    assert len(budgets) == 1
    assert 0 < budgets[0] <= 2.0 * (1 - daemon.KEEP_AFTER_FLUSH)
    assert events.index("flush_abandoned") < events.index("token_revoked")
    (done,) = [line for line in lines if line["event"] == "shutdown_done"]
    assert done["within_s"] <= 2.0


def test_a_reload_names_the_settings_that_need_a_restart() -> None:
    cfg = sim_config()
    changed = dataclasses.replace(
        cfg,
        risk=dataclasses.replace(cfg.risk, max_order_qty=1),
        daemon=dataclasses.replace(cfg.daemon, symbols=("005930",)),
    )
    assert daemon._needs_restart(cfg, changed) == ["daemon"]
    assert daemon._needs_restart(cfg, dataclasses.replace(cfg, risk=changed.risk)) == []


def test_a_reload_of_the_same_file_with_an_mqtt_password_needs_no_restart(
    tmp_path: Path,
) -> None:
    # SIGHUP re-reads the file without its secrets (daemon.reload_config): the password the
    # running config got from the environment is no change of [mqtt].
    p = tmp_path / "config.toml"
    text = '[mqtt]\nhost = "127.0.0.1"\nusername = "engine"\n'
    p.write_text(text)
    running = config.load(p, env={"KIWOOM_MQTT_PASSWORD": "mqtt-pass-never-shown"})
    assert running.mqtt is not None
    assert running.mqtt.password is not None
    assert daemon._needs_restart(running, config.load(p, with_secrets=False)) == []
    p.write_text(text.replace('"engine"', '"other"'))
    assert daemon._needs_restart(running, config.load(p, with_secrets=False)) == ["mqtt"]


async def test_a_taken_admin_port_is_a_startup_failure_with_its_reason() -> None:
    # A daemon the operator could not halt must not trade.
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    cfg = dataclasses.replace(sim_config(), admin=config.AdminConfig(port=port))
    try:
        code = await asyncio.wait_for(daemon.run(cfg, stop=asyncio.Event()), 15)
    finally:
        blocker.close()
    assert code == daemon.EXIT_STARTUP
    lines = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    (failed,) = [line for line in lines if line["event"] == "admin_start_failed"]
    assert failed["port"] == port
    assert "daemon_running" not in buf.getvalue()
