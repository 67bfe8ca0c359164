"""The shipped dashboard and alert rules, proven on a real Prometheus (issue 17).

`promtool check rules` and `promtool test rules` (the `for:` logic) pass. Then one real
Prometheus (Debian's, on a free port, scraping and evaluating every second) scrapes one
`kiwoom-engine run` daemon that trades against the simulator (in this process, over real
sockets) and mirrors to a real Mosquitto; through Prometheus's HTTP API:
- every query of ops/grafana/kiwoom-engine.json (its variables substituted) returns data;
- every alert rule evaluates without error, and each metric it names has series;
- each alert fires on its own injected fault, and was not active before it: trading halted
  (`kiwoom-engine halt`), a strategy disabled (one that raises), the daily loss near its limit
  (a strategy losing fees round trip after round trip), a divergence (shares appear at the
  broker behind the engine's back), journal errors (the state directory a full tmpfs), the
  loop stalled (a strategy that blocks until the watchdog breaks it), and the feed held down
  (the simulator silent: no frame, no LOGIN ack, for as long as the test wants).

Prometheus loads a copy of ops/prometheus/alerts.yml in which every `for:` longer than 0s is
cut to 2s (a regex over the `for:` lines; the count of cuts is asserted), so that the test
waits seconds, not minutes; the expressions are the shipped ones. Waits poll with generous
deadlines; no fixed sleep is an assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from engine.sim.simulator import Simulator
from tests.engine.conftest import OTHER, SYMBOL, sim_config
from tests.engine.test_journal_fault import fill_up
from tests.integration.service import Daemon, daemon, free_port, until_running
from tests.mirror.conftest import Broker
from tests.support import until

pytestmark = pytest.mark.timeout(120)
"""The first test also starts the daemon and Prometheus (about 10 s)."""

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "ops" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "kiwoom-engine.json"

SHORT_FOR = "2s"
DAILY_LOSS_LIMIT = 100_000
COMMISSION_BP = 300.0
"""3 % a side on 005930 at about 70,000 KRW: 2,100 KRW per share and side."""
LOSER_STOPS_AT = 80_000
"""The loser stops its round trips once its own realised loss reaches this: with the
holder's buy fee (2,100) the day's loss passes the alert's 80 %; a round trip of 3 shares
loses about 13,300, so the day stays short of the limit (no DAILY_LOSS halt, which would
refuse the later faults' orders)."""
HANDLER_STALL_S = 4.0
"""Past the alert's 2.5 s bucket: the blocked loop's one late tick lands above it."""
DEADLINE_S = 40.0
"""How long any one wait may take (a loaded 2-core machine)."""

STRATEGIES = '''
import os
import time

from engine.strategy import Strategy


class Flagged(Strategy):
    """Armed while its flag file exists (the test creates it)."""

    def on_start(self):
        self.armed = False
        self.set_timer("flag", 0.1, repeat=True)

    def on_timer(self, name):
        self.armed = os.path.exists(self.params["flag"])
        if self.armed:
            self.on_armed()

    def on_armed(self):
        pass


class Holder(Flagged):
    """Once armed: buys one share and keeps it (positions, exposure, a fill, tick to order),
    and sends one order off the tick grid (a TICK_SIZE rejection)."""

    def on_start(self):
        super().on_start()
        self.done = False

    def on_trade(self, trade):
        if self.done or not self.armed or not trade.best_ask:
            return
        self.done = True
        self.buy(trade.symbol, 1)
        self.buy(trade.symbol, 1, trade.best_ask + 1)


class Loser(Flagged):
    """While armed: market round trips of 1 to 3 shares, each losing the spread, the
    commission and the tax, until its own realised loss reaches params.stop_at. Paced (an
    order at most every 0.3 s, the quantity cycling) past the order-rate and duplicate
    checks, which would refuse it."""

    def on_start(self):
        super().on_start()
        self.order = None
        self.last = 0.0
        self.trips = 0

    def on_trade(self, trade):
        if not self.armed or (self.order is not None and self.order.is_open):
            return
        now = time.monotonic()
        if now - self.last < 0.3 or self.realized_pnl() <= -self.params["stop_at"]:
            return
        self.last = now
        held = self.position(trade.symbol)
        if held:
            self.order = self.sell(trade.symbol, held)
        else:
            self.trips += 1
            self.order = self.buy(trade.symbol, 1 + self.trips % 3)


class Raises(Flagged):
    def on_armed(self):
        raise RuntimeError("the test asked for it")


class Blocks(Flagged):
    """Holds the loop in pure Python until the stall watchdog breaks it."""

    def on_armed(self):
        started = time.monotonic()
        while time.monotonic() - started < 60:
            pass


class BuysOnce(Flagged):
    def on_start(self):
        super().on_start()
        self.sent = False

    def on_armed(self):
        if not self.sent:
            self.sent = True
            self.buy(self.symbols[0], 1)
'''


@dataclass
class Stack:
    sim: Simulator
    daemon: Daemon
    prom: str
    """Prometheus's base URL."""
    flags: Path
    state: Path
    tmpfs: bool
    """Whether the state directory is a tiny tmpfs of its own (the journal's fault needs it)."""
    config: Path
    http: aiohttp.ClientSession

    def flag(self, name: str) -> None:
        (self.flags / name).touch()

    async def api(self, path: str, **params: str) -> Any:
        async with self.http.get(self.prom + path, params=params) as r:
            body = await r.json()
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("/api/v1/query", query=expr)
        return list(data["result"])

    async def alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts called `name` with these labels."""
        data = await self.api("/api/v1/alerts")
        return [
            a
            for a in data["alerts"]
            if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    async def until_firing(self, name: str, **labels: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            found = [a for a in await self.alerts(name, **labels) if a["state"] == "firing"]
            if found:
                return found[0]
            assert time.monotonic() < deadline, (
                f"{name} {labels} did not fire; active: {await self.api('/api/v1/alerts')}"
            )
            await asyncio.sleep(0.25)

    async def until_quiet(self, name: str, **labels: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while active := await self.alerts(name, **labels):
            assert time.monotonic() < deadline, f"{name} {labels} stays active: {active}"
            await asyncio.sleep(0.25)

    async def until_value(self, expr: str, ok: Any) -> float:
        """Poll the instant query `expr` until `ok(value)` holds for its one sample."""
        deadline = time.monotonic() + DEADLINE_S
        last: Any = None
        while True:
            result = await self.query(expr)
            if result:
                last = float(result[0]["value"][1])
                if ok(last):
                    return last
            assert time.monotonic() < deadline, (expr, last, self.daemon.log[-10:])
            await asyncio.sleep(0.25)

    async def cli(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "engine", "-c", str(self.config), *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
        assert proc.returncode == 0, out.decode()
        return out.decode()


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: run `make test` (it installs Debian's prometheus) or "
            "apt-get install prometheus"
        )
    return found


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "prometheus is not installed: run `make test` (it installs it) or apt-get install "
            "prometheus"
        )
    return found


def test_promtool_checks_the_rules() -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", RULES_TEST.name],
        cwd=RULES_TEST.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def short_rules(text: str) -> tuple[str, int]:
    """The rules with every non-zero `for:` cut to SHORT_FOR, and how many were cut."""
    return re.subn(r"(?m)^(\s+)for: (?!0s\s*$)\S+\s*$", rf"\g<1>for: {SHORT_FOR}", text)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target in the dashboard, its variables substituted as
    Grafana would for "All" daemons and a 1 s scrape interval."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1s")
                .replace('"$instance"', '".+"')
            )
            assert "$" not in expr, (panel["title"], expr)
            out.append((panel["title"], expr))
    return out


@contextlib.contextmanager
def state_dir(path: Path) -> Iterator[bool]:
    """`path` as a 16 MB tmpfs of its own (True), or a plain directory where mounting is not
    allowed (False: the journal's fault is then skipped)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
    )
    try:
        yield mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def daemon_config(tmp: Path, sim: Simulator, admin_port: int, broker: Broker, state: Path) -> Path:
    flags = tmp / "flags"
    src = tmp / "alert_strategies.py"
    src.write_text(STRATEGIES)

    def strategy(name: str, cls: str, **extra: Any) -> str:
        lines = [
            "[[strategies]]",
            f'name = "{name}"',
            f'class = "{cls}"',
            f'path = "{src}"',
            f'symbols = ["{SYMBOL}"]',
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items() if k != "params"]
        params = {"flag": str(flags / name), **extra.get("params", {})}
        lines.append(
            "params = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in params.items()) + " }"
        )
        return "\n".join(lines) + "\n"

    path = tmp / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [kiwoom]
            mode = "sim"
            rest_url = "{sim.rest_url}"
            ws_url = "{sim.ws_url}"
            request_timeout_s = 10.0
            ws_stale_s = 2.0
            [kiwoom.rate]
            account_per_s = 500.0
            account_burst = 100
            [sim]
            commission_bp = {COMMISSION_BP}
            [daemon]
            symbols = ["{SYMBOL}"]
            state_dir = "{state}"
            stop_timeout_s = 5.0
            handler_stall_s = {HANDLER_STALL_S}
            [admin]
            port = {admin_port}
            [metrics]
            max_symbol_series = 50
            [risk]
            daily_loss_limit = {DAILY_LOSS_LIMIT}
            [portfolio]
            reconcile_s = 1.0
            [mqtt]
            host = "127.0.0.1"
            port = {broker.port}
            prefix = "test-{uuid.uuid4().hex[:12]}"
            client_id = "kiwoom-engine-{uuid.uuid4().hex[:12]}"
            """
        )
        + strategy("holder", "Holder")
        + strategy("loser", "Loser", params={"stop_at": LOSER_STOPS_AT})
        + strategy("faulty", "Raises", max_errors=1)
        + strategy("blocker", "Blocks")
        + strategy("journaler", "BuysOnce")
    )
    flags.mkdir()
    return path


def prometheus_config(tmp: Path, admin_port: int) -> Path:
    rules, cut = short_rules(RULES.read_text())
    assert cut == 2, cut  # KiwoomFeedDown (1m) and KiwoomPositionDivergence (2m)
    (tmp / "alerts.yml").write_text(rules)
    path = tmp / "prometheus.yml"
    path.write_text(
        textwrap.dedent(
            f"""\
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files:
              - {tmp / "alerts.yml"}
            scrape_configs:
              - job_name: kiwoom-engine
                static_configs:
                  - targets: ["127.0.0.1:{admin_port}"]
            """
        )
    )
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    prometheus = _prometheus()
    broker = Broker(tmp)
    await broker.start()
    admin_port = free_port()
    prom_port = free_port()
    prom_tmp = tmp / "prom"
    prom_tmp.mkdir()
    with state_dir(tmp / "state") as tmpfs:
        try:
            async with Simulator(sim_config(commission_bp=COMMISSION_BP)) as sim:
                config = daemon_config(tmp, sim, admin_port, broker, tmp / "state")
                async with daemon(config, admin_port) as d:
                    await until_running(d, DEADLINE_S)
                    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; polled below
                        [
                            prometheus,
                            f"--config.file={prometheus_config(prom_tmp, admin_port)}",
                            f"--storage.tsdb.path={prom_tmp / 'data'}",
                            f"--web.listen-address=127.0.0.1:{prom_port}",
                            "--log.level=warn",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=(prom_tmp / "prometheus.log").open("wb"),
                    )
                    try:
                        async with aiohttp.ClientSession() as http:
                            s = Stack(
                                sim,
                                d,
                                f"http://127.0.0.1:{prom_port}",
                                tmp / "flags",
                                tmp / "state",
                                tmpfs,
                                config,
                                http,
                            )
                            await _until_scraping(s, proc, prom_tmp / "prometheus.log")
                            yield s
                    finally:
                        proc.terminate()
                        try:
                            proc.wait(10)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait(10)
        finally:
            broker.stop()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _until_scraping(s: Stack, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until Prometheus is ready and has scraped the daemon at least once."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert proc.poll() is None, f"prometheus exited: {_text(log)}"
        with contextlib.suppress(aiohttp.ClientError, AssertionError):
            result = await s.query('up{job="kiwoom-engine"} == 1')
            if result:
                return
        assert time.monotonic() < deadline, f"prometheus never scraped: {_text(log)}"
        await asyncio.sleep(0.25)


module = pytest.mark.asyncio(loop_scope="module")


@module
async def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 30
    # The holder's fill (positions, tick to order) and its rejection, once Prometheus
    # scrapes (a counter's first sample is no increase).
    stack.flag("holder")
    await stack.until_value(
        "kiwoom_engine_strategy_fills_total{strategy='holder'}", lambda v: v == 1
    )
    await stack.until_value(
        "kiwoom_engine_risk_rejections_total{reason='TICK_SIZE'}", lambda v: v == 1
    )
    await stack.until_value("kiwoom_engine_mirror_connected", lambda v: v == 1)
    deadline = time.monotonic() + DEADLINE_S
    missing = queries
    while missing:
        still = []
        for title, expr in missing:
            samples = await stack.query(expr)
            values = [float(s["value"][1]) for s in samples]
            if not any(not math.isnan(v) for v in values):
                still.append((title, expr, values))
        missing = [(t, e) for t, e, _ in still]
        assert not missing or time.monotonic() < deadline, still
        if missing:
            await asyncio.sleep(0.5)


@module
async def test_every_alert_expression_evaluates_over_series_that_exist(stack: Stack) -> None:
    groups = (await stack.api("/api/v1/rules", type="alert"))["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(
        [
            "KiwoomFeedDown",
            "KiwoomLoopStalled",
            "KiwoomTradingHalted",
            "KiwoomStrategyDisabled",
            "KiwoomJournalErrors",
            "KiwoomPositionDivergence",
            "KiwoomDailyLossNearLimit",
        ]
    )
    for rule in rules:
        # Evaluated (at 1 s) without error.
        deadline = time.monotonic() + DEADLINE_S
        while rule.get("health") != "ok":
            assert rule.get("health") != "err", rule
            assert time.monotonic() < deadline, rule
            await asyncio.sleep(0.5)
            groups = (await stack.api("/api/v1/rules", type="alert"))["groups"]
            rule = next(r for g in groups for r in g["rules"] if r["name"] == rule["name"])
        # Each metric it reads is scraped (a renamed metric would leave an alert that never
        # fires): a histogram's _bucket and _count as well.
        names = set(re.findall(r"\bkiwoom_engine_[a-z_]+\b", rule["query"]))
        assert names, rule["query"]
        for name in names:
            series = await stack.api("/api/v1/series", **{"match[]": name})
            assert series, f"{rule['name']}: no series {name}"
    # Nothing is active (pending or firing) on a daemon without faults.
    deadline = time.monotonic() + DEADLINE_S
    while active := (await stack.api("/api/v1/alerts"))["alerts"]:
        assert time.monotonic() < deadline, active
        await asyncio.sleep(0.5)


@module
async def test_trading_halted_fires_on_kiwoom_engine_halt(stack: Stack) -> None:
    await stack.until_quiet("KiwoomTradingHalted")
    await stack.cli("halt", "--reason", "alert test")
    alert = await stack.until_firing("KiwoomTradingHalted")
    assert "OPERATOR" in alert["annotations"]["description"]
    await stack.cli("resume", "--reason", "alert test done")
    await stack.until_quiet("KiwoomTradingHalted")


@module
async def test_strategy_disabled_fires_for_the_strategy_that_raised(stack: Stack) -> None:
    assert not await stack.alerts("KiwoomStrategyDisabled", strategy="faulty")
    stack.flag("faulty")
    alert = await stack.until_firing("KiwoomStrategyDisabled", strategy="faulty")
    assert alert["labels"]["reason"] == "too_many_errors"
    assert not await stack.alerts("KiwoomStrategyDisabled", strategy="holder")


@module
async def test_daily_loss_near_its_limit_fires(stack: Stack) -> None:
    assert not await stack.alerts("KiwoomDailyLossNearLimit")
    stack.flag("loser")
    await stack.until_firing("KiwoomDailyLossNearLimit")
    loss = await stack.until_value("kiwoom_engine_daily_loss_krw", lambda v: True)
    assert loss >= 0.8 * DAILY_LOSS_LIMIT


@module
async def test_position_divergence_fires_when_the_broker_holds_what_we_do_not(
    stack: Stack,
) -> None:
    # A pass that compared while a fill's notice was on its way may have differed once.
    await stack.until_quiet("KiwoomPositionDivergence")
    stack.sim.exchange.account.shares[OTHER] = 5
    stack.sim.exchange.account.cost[OTHER] = 5 * 10_000
    try:
        alert = await stack.until_firing("KiwoomPositionDivergence")
        assert alert["value"] == "1e+00"  # the one symbol
    finally:
        stack.sim.exchange.account.shares.pop(OTHER)
        stack.sim.exchange.account.cost.pop(OTHER)


def refused_for_the_full_disk(stack: Stack) -> bool:
    """The journaler's order was refused for the full disk: by the journal itself (its intent
    could not be written), or, when another write (an equity snapshot, an order update) met the
    full disk first, by the JOURNAL halt that fault raised."""
    if stack.daemon.events("journal_refused_order"):
        return True
    journal_halt = any(
        e.get("state") == "halted" and "JOURNAL" in e.get("reasons", [])
        for e in stack.daemon.events("trading_state_changed")
    )
    refused = any(
        e.get("strategy") == "journaler" and e.get("reason") == "HALTED"
        for e in stack.daemon.events("risk_rejected")
    )
    return journal_halt and refused


@module
async def test_journal_errors_fire_while_the_disk_is_full(stack: Stack) -> None:
    if not stack.tmpfs:
        pytest.skip("cannot mount a tmpfs for the state directory (needs CAP_SYS_ADMIN)")
    assert not await stack.alerts("KiwoomJournalErrors")
    filler = fill_up(stack.state)
    try:
        stack.flag("journaler")  # an order whose intent cannot be stored
        await stack.until_firing("KiwoomJournalErrors")
        await until(lambda: refused_for_the_full_disk(stack), DEADLINE_S)
    finally:
        filler.unlink()
    await stack.until_value("kiwoom_engine_journal_faulty", lambda v: v == 0)


@module
async def test_loop_stalled_fires_on_a_blocking_strategy_the_watchdog_breaks(
    stack: Stack,
) -> None:
    assert not await stack.alerts("KiwoomLoopStalled")
    stack.flag("blocker")
    await stack.until_firing("KiwoomLoopStalled")
    # The watchdog broke it: the daemon runs on, the strategy disabled for the stall.
    alert = await stack.until_firing("KiwoomStrategyDisabled", strategy="blocker")
    assert alert["labels"]["reason"] == "stalled"
    assert stack.daemon.proc.returncode is None
    assert stack.daemon.events("handler_stalled")


@module
async def test_feed_down_fires_while_the_simulator_is_silent(stack: Stack) -> None:
    await stack.until_quiet("KiwoomFeedDown")
    stack.sim.state.faults.ws_silent = True
    try:
        await stack.until_firing("KiwoomFeedDown")
        # Held down, not a blip: still down well past the (shortened) for:.
        assert await stack.until_value("kiwoom_engine_feed_live", lambda v: v == 0) == 0
    finally:
        stack.sim.state.faults.ws_silent = False
