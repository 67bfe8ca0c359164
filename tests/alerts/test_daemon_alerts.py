"""The real daemon against the built-in simulator, alerting a local fake Bot API and webhook:
start, fills, a halt and resume over the admin endpoint, stop; the server down for a while
with trading unaffected; and the bot token and the webhook URL in no output."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import traceback
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine import config, daemon, logs
from engine.alerts.targets import SendFailed, TelegramTarget
from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import AlertsConfig, Config, TelegramConfig, WebhookConfig
from engine.events import Fill
from engine.secrets import Secret
from engine.trader import Trader
from tests.alerts.conftest import HOOK_SECRET, TOKEN
from tests.alerts.fakebot import Answer, FakeBot
from tests.engine.conftest import write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(60)

DOWN_S = 2.0
"""How long the fake server stays down in the outage test."""

BUY_ONCE = """
class BuyOnce(Strategy):
    def on_start(self):
        self.sent = False

    def on_trade(self, trade):
        if not self.sent and trade.best_ask:
            self.sent = True
            self.buy(trade.symbol, 1, trade.best_ask)
"""

KEEPS_BUYING = """
class KeepsBuying(Strategy):
    def on_trade(self, trade):
        if trade.best_ask and not self.orders():
            self.buy(trade.symbol, 1, trade.best_ask)
"""


def daemon_config(tmp_path: Path, bot: FakeBot, body: str, cls: str, **alerts: Any) -> Config:
    base = config.load(None, env={})
    strategy = write_strategy(tmp_path, cls.lower(), body, cls)
    return dataclasses.replace(
        base,
        sim=dataclasses.replace(base.sim, port=0, events_per_s=200.0),
        daemon=dataclasses.replace(
            base.daemon, state_dir=str(tmp_path / "state"), symbols=("005930",), stop_timeout_s=8.0
        ),
        admin=config.AdminConfig(port=0),
        strategies=(strategy,),
        alerts=AlertsConfig(
            **{"min_interval_s": 0.05, "retry_base_s": 0.1, "retry_max_s": 0.5, **alerts},
            telegram=TelegramConfig(chat_id="42", api_url=bot.api_url, token=Secret(TOKEN)),
            webhook=WebhookConfig(
                url=Secret(bot.hook_url(HOOK_SECRET), redact="/hook/" + HOOK_SECRET)
            ),
        ),
    )


class Running:
    def __init__(self, cfg: Config, clock: Clock = SYSTEM_CLOCK) -> None:
        self.buf = io.StringIO()
        logs.setup("debug", "json", self.buf)
        self.stop = asyncio.Event()
        self.trader: Trader | None = None
        self.fills: list[Fill] = []
        self.task = asyncio.create_task(
            daemon.run(cfg, stop=self.stop, clock=clock, on_ready=self._ready)
        )

    def _ready(self, trader: Trader) -> None:
        self.trader = trader
        trader.bus.subscribe(Fill, self.fills.append)

    async def started(self) -> Trader:
        await until(lambda: self.trader is not None or self.task.done(), 20)
        assert self.trader is not None, self.buf.getvalue()[-3000:]
        return self.trader

    @property
    def admin_port(self) -> int:
        for line in self.buf.getvalue().splitlines():
            if '"daemon_running"' in line:
                return int(orjson.loads(line)["admin_port"])
        raise AssertionError("no daemon_running line")

    async def finish(self) -> str:
        self.stop.set()
        assert await asyncio.wait_for(self.task, 20) == daemon.EXIT_OK
        logs.setup("warning", "json", io.StringIO())
        return self.buf.getvalue()


def fill_lines(bot: FakeBot, kind: str = "sendMessage") -> list[str]:
    return [
        line
        for r in bot.received
        if r.kind == kind
        for line in r.text.splitlines()
        if line.startswith("FILL ")
    ]


def assert_no_secret(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for secret in (TOKEN, TOKEN.split(":")[1], HOOK_SECRET, HOOK_SECRET.split("/")[-1]):
        assert secret.encode() not in data, f"{where} holds a secret"


@pytest.fixture
async def bot() -> Any:
    b = FakeBot()
    await b.start()
    yield b
    await b.stop()


async def test_the_daemon_tells_start_fills_halt_resume_and_stop_and_no_secret_leaks(
    tmp_path: Path, bot: FakeBot
) -> None:
    # The first message is refused with an error page quoting the URL (bot token and all):
    # retried, and the log line of it shows no token.
    bot.script.append(Answer(500, "internal error at {path}"))
    run = Running(daemon_config(tmp_path, bot, BUY_ONCE, "BuyOnce"))
    trader = await run.started()
    await until(lambda: len(fill_lines(bot)) == 1 and len(fill_lines(bot, "hook")) == 1, 15)
    assert fill_lines(bot)[0].startswith("FILL buyonce: BUY 1 005930 @ ")
    fill = run.fills[0]
    assert fill_lines(bot) == [
        f"FILL buyonce: BUY 1 005930 @ {fill.price:,} | realised 0 (day 0)"
        if not (fill.fee + fill.tax)
        else f"FILL buyonce: BUY 1 005930 @ {fill.price:,} | realised -{fill.fee + fill.tax:,} "
        f"(day -{fill.fee + fill.tax:,})"
    ]
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{run.admin_port}"
        async with http.post(f"{base}/halt", json={"reason": "lunch"}) as r:
            assert r.status == 200
        await until(lambda: any(t.startswith("HALTED") for t in bot.lines()), 10)
        async with http.post(f"{base}/resume", json={"reason": "back"}) as r:
            assert r.status == 200
        await until(lambda: any(t.startswith("RESUMED") for t in bot.lines()), 10)
        async with http.get(f"{base}/status") as r:
            status_text = await r.text()
        async with http.get(f"{base}/metrics") as r:
            metrics = await r.text()
    assert trader.risk.state.value == "active"
    status = orjson.loads(status_text)
    assert status["connections"]["alerts"]["telegram"]["sent"] >= 3
    assert status["connections"]["alerts"]["webhook"]["sent"] >= 3
    assert 'kiwoom_engine_alerts_retries_total{target="telegram"} 1.0' in metrics
    assert 'kiwoom_engine_alerts_sent_total{target="webhook"}' in metrics
    out = await run.finish()

    lines = bot.lines()
    assert lines[0] == "STARTED kiwoom-engine (mode sim): strategies buyonce; trading active"
    assert "HALTED [OPERATOR]: OPERATOR_HALT: lunch | by operator (admin endpoint / CLI)" in lines
    assert (
        "RESUMED: now active (was halted): OPERATOR_RESUME: back | by operator "
        "(admin endpoint / CLI)" in lines
    )
    assert lines[-1].startswith("STOPPED kiwoom-engine (mode sim): 1 fills today")
    # The webhook heard the same lines.
    hooked = [line for r in bot.received if r.kind == "hook" for line in r.text.splitlines()]
    assert hooked[0] == lines[0]
    assert hooked[-1].startswith("STOPPED")
    # The refused first try: its log line names the error, never the token.
    assert bot.refused[0].path == f"/bot{TOKEN}/sendMessage"
    retry = [orjson.loads(x) for x in out.splitlines() if '"alerts_send_retry"' in x]
    assert retry
    assert retry[0]["error"] == "HTTP 500: internal error at /bot***/sendMessage"
    assert_no_secret(out, "the log")
    assert_no_secret(status_text, "/status")
    assert_no_secret(metrics, "/metrics")
    journals = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" or "journal" in p.name for p in journals), journals
    for p in journals:
        assert_no_secret(p.read_bytes(), str(p))


async def test_the_server_down_for_a_while_leaves_trading_alone_and_loses_no_fill(
    tmp_path: Path, bot: FakeBot
) -> None:
    run = Running(daemon_config(tmp_path, bot, KEEPS_BUYING, "KeepsBuying", max_attempts=50))
    trader = await run.started()
    await until(lambda: len(fill_lines(bot)) >= 1, 15)
    port = bot.port
    await bot.stop()
    before = len(run.fills)
    # While the server is down the engine trades on: fills keep coming.
    await until(lambda: len(run.fills) >= before + 3, 10)
    await asyncio.sleep(max(0.0, DOWN_S - 0.5))
    during = len(run.fills)
    assert trader.running
    await bot.start(port)
    await until(lambda: len(fill_lines(bot)) >= during, 15)
    out = await run.finish()
    assert len(fill_lines(bot)) == len(run.fills)  # every fill told, none lost
    assert len(fill_lines(bot, "hook")) == len(run.fills)
    retries = [x for x in out.splitlines() if '"alerts_send_retry"' in x]
    assert retries
    assert any("ClientConnectorError" in x for x in retries)
    assert_no_secret(out, "the log")


async def test_a_failing_url_leaves_no_secret_in_the_exception_or_its_traceback() -> None:
    # A closed port: aiohttp's error names the URL's host; the chained exception (which
    # would quote the whole URL) is not kept.
    target = TelegramTarget(
        TelegramConfig(chat_id="1", api_url="http://127.0.0.1:9", token=Secret(TOKEN))
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SendFailed) as exc:
            await target.send_text(session, "hello")
    assert exc.value.status is None
    text = "".join(traceback.format_exception(exc.value))
    assert "ClientConnectorError" in text
    assert_no_secret(text, "the traceback")


async def test_targets_that_never_answer_cost_the_shutdown_only_their_share(
    tmp_path: Path,
) -> None:
    dead = FakeBot()
    await dead.start()
    await dead.stop()  # its port is closed now: every send is refused
    cfg = daemon_config(tmp_path, dead, BUY_ONCE, "BuyOnce", max_attempts=100)
    run = Running(cfg)
    await run.started()
    await until(lambda: '"alerts_send_retry"' in run.buf.getvalue(), 10)
    out = await run.finish()
    lines = [orjson.loads(x) for x in out.splitlines()]
    events = [x["event"] for x in lines]
    assert "alerts_abandoned_at_stop" in events
    assert "shutdown_overran" not in events
    done = next(x for x in lines if x["event"] == "shutdown_done")
    assert done["deadline_s"] == cfg.daemon.stop_timeout_s
    assert_no_secret(out, "the log")
