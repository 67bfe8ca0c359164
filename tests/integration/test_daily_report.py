"""The daily report of a day traded on the built-in simulator (issue 17, "The daily
report"): `kiwoom-engine report --day` as a child process beside the running daemon (the
journal read-only) and after it stopped, and the report the daemon writes by itself when the
simulated session closes, handed to its `on_report` hook and sent by the alerts to a local
fake Telegram Bot API (the text, then the PNG as a photo), no secret in any report file.

Every expected figure is worked here from what the bus carried (fills, final order states,
risk rejections) or read raw from the journal's equity rows, never by the report's code."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import textwrap
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from engine import config, daemon
from engine.clock import KST, SYSTEM_CLOCK
from engine.events import Event, Fill, OrderUpdate, RiskRejected, Side
from engine.reports.files import ReportFiles
from engine.trader import Trader
from engine.trading.orders import TERMINAL
from tests.alerts.conftest import TOKEN
from tests.alerts.fakebot import FakeBot
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]

STRATEGY = '''
from engine.strategy import Strategy
from engine.trading.krx import round_to_tick


class Scripted(Strategy):
    """Works through `plan` ([action, qty], ...), one order at a time, on its symbol's
    trades: "buy"/"sell" at the market, "rest" a buy limit 3% under the last price that is
    cancelled once the broker took it."""

    def on_start(self):
        self.plan = [tuple(step) for step in self.params["plan"]]
        self.current = None
        self.cancelled = False

    def on_trade(self, trade):
        o = self.current
        if o is not None and o.is_open:
            if o.state.value == "accepted" and o.price and not self.cancelled:
                self.cancelled = True
                self.cancel(o)
            return
        if not self.plan:
            return
        action, qty = self.plan.pop(0)
        if action == "buy":
            self.current = self.buy(trade.symbol, qty)
        elif action == "sell":
            self.current = self.sell(trade.symbol, qty)
        else:
            price = round_to_tick(trade.price * 97 // 100, "down")
            self.current = self.buy(trade.symbol, qty, price)
'''

PLANS = {
    # Ends holding 1 share; a refusal by quantity (MAX_ORDER_QTY: 100 > 50) and one selling
    # more than it holds; a resting order cancelled.
    "scripted": ("005930", [["buy", 3], ["sell", 1], ["buy", 100], ["rest", 1], ["sell", 5],
                            ["sell", 1]]),
    "flat": ("000660", [["buy", 2], ["sell", 2]]),
}  # fmt: skip


def write_config(tmp: Path, bot_url: str) -> Path:
    (tmp / "scripted.py").write_text(textwrap.dedent(STRATEGY), encoding="utf-8")
    tables = "".join(
        f"""
[[strategies]]
name = "{name}"
path = "{tmp / "scripted.py"}"
class = "Scripted"
symbols = ["{symbol}"]
params = {{ plan = {orjson.dumps(plan).decode()} }}
"""
        for name, (symbol, plan) in PLANS.items()
    )
    path = tmp / "config.toml"
    path.write_text(
        f"""
[kiwoom]
mode = "sim"
[sim]
port = 0
events_per_s = 300.0
control = true
[daemon]
symbols = ["005930", "000660"]
state_dir = "{tmp / "state"}"
stop_timeout_s = 5.0
[report]
equity_interval_s = 0.1
timeout_s = 60.0
[alerts]
fills = false
min_interval_s = 0.05
[alerts.telegram]
chat_id = "42"
api_url = "{bot_url}"
[risk]
max_order_qty = 50
max_orders_per_s = 100
duplicate_window_s = 0
{tables}""",
        encoding="utf-8",
    )
    return path


def realised(fills: list[Fill]) -> int:
    """Average cost per symbol; a sale realises price less the cost of the shares sold
    (pro rata, floored), fees and tax; a buy its fee."""
    held: dict[str, tuple[int, int]] = {}
    pnl = 0
    for f in fills:
        qty, cost = held.get(f.symbol, (0, 0))
        if f.side is Side.BUY:
            held[f.symbol] = (qty + f.qty, cost + f.qty * f.price)
            pnl -= f.fee + f.tax
        else:
            basis = cost * f.qty // qty
            held[f.symbol] = (qty - f.qty, cost - basis)
            pnl += f.qty * f.price - basis - f.fee - f.tax
    return pnl


def expected(events: list[Event]) -> dict[str, Any]:
    fills = [e for e in events if isinstance(e, Fill)]
    final: dict[str, OrderUpdate] = {}
    for e in events:
        if isinstance(e, OrderUpdate):
            final[e.client_id] = e
    refusals = [e for e in events if isinstance(e, RiskRejected)]
    out: dict[str, Any] = {}
    for name in PLANS:
        mine = [f for f in fills if f.strategy == name]
        out[name] = {
            "realized_pnl": realised(mine),
            "fills": len(mine),
            "fees": sum(f.fee for f in mine),
            "tax": sum(f.tax for f in mine),
            "orders_by_state": dict(
                Counter(u.state.value for u in final.values() if u.strategy == name)
            ),
            "rejections_by_reason": dict(Counter(r.reason for r in refusals if r.strategy == name)),
        }
    return out


def equity_rows(journal_dir: Path, day: date) -> list[tuple[int, int, bytes]]:
    con = sqlite3.connect(f"file:{journal_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT cash + positions_value, unrealized, strategies FROM equity"
            " WHERE trading_day = ? ORDER BY ts_ns, rowid",
            (day.strftime("%Y%m%d"),),
        ).fetchall()
    finally:
        con.close()


def worst_fall(equity: list[int]) -> int:
    peak, worst = equity[0], 0
    for e in equity:
        peak = max(peak, e)
        worst = max(worst, peak - e)
    return worst


def check(report: dict[str, Any], want: dict[str, Any], rows: list[tuple[int, int, bytes]]) -> None:
    for name, figures in want.items():
        got = report["strategies"][name]
        assert {k: got[k] for k in figures} == figures, name
    total = report["total"]
    assert total["realized_pnl"] == sum(w["realized_pnl"] for w in want.values())
    assert total["fills"] == sum(w["fills"] for w in want.values())
    assert total["orders_by_state"] == dict(
        sum((Counter(w["orders_by_state"]) for w in want.values()), Counter())
    )
    # The equity line as journaled: its snapshots, last mark and largest fall.
    assert report["snapshots"] == len(rows)
    assert total["end_equity"] == rows[-1][0]
    assert total["unrealized_pnl"] == rows[-1][1]
    last = orjson.loads(rows[-1][2])
    assert report["strategies"]["scripted"]["unrealized_pnl"] == last["scripted"]["unrealized"]
    assert report["strategies"]["flat"]["unrealized_pnl"] == 0  # it holds nothing
    assert total["max_drawdown_won"] == worst_fall([r[0] for r in rows])


async def report_cli(cfg_path: Path, day: date, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "-c", str(cfg_path), "report", "--day", day.isoformat(),
        *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=cfg_path.parent,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    directory = Path(text.strip().splitlines()[-1].removeprefix("report in "))
    report: dict[str, Any] = orjson.loads((directory / "report.json").read_bytes())
    assert (directory / "equity.png").read_bytes().startswith(b"\x89PNG")
    return report


async def test_a_simulated_day_reports_beside_the_daemon_after_it_and_at_the_sessions_end(
    tmp_path: Path,
) -> None:
    bot = FakeBot()
    await bot.start()
    cfg_path = write_config(tmp_path, bot.api_url)
    cfg = config.load(cfg_path, env={"KIWOOM_TELEGRAM_TOKEN": TOKEN})
    journal_dir = cfg.journal_dir
    assert journal_dir == tmp_path / "state" / "builtin-sim"
    events: list[Event] = []
    reports: list[ReportFiles] = []
    holder: list[Trader] = []

    def on_ready(trader: Trader) -> None:
        holder.append(trader)
        trader.bus.subscribe_all(events.append)

    async def on_report(files: ReportFiles) -> None:
        reports.append(files)

    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(cfg, stop=stop, on_ready=on_ready, on_report=on_report))
    try:
        await until(lambda: bool(holder), within_s=15.0)
        trader = holder[0]
        day = SYSTEM_CLOCK.now().astimezone(KST).date()
        plans = sum(len(plan) for _, plan in PLANS.values())

        def settled() -> bool:
            ended = {
                e.client_id for e in events if isinstance(e, OrderUpdate) and e.state in TERMINAL
            }
            return len(ended) == plans and not trader.oms.open_orders()

        await until(settled, within_s=20.0)
        await until(lambda: trader.journal_queue.depth == 0, within_s=5.0)
        await asyncio.sleep(0.3)  # a few snapshots after the last fill
        want = expected(events)
        assert want["scripted"]["orders_by_state"] == {"filled": 3, "rejected": 2, "canceled": 1}
        assert want["scripted"]["rejections_by_reason"]["MAX_ORDER_QTY"] == 1
        assert want["flat"]["orders_by_state"] == {"filled": 2}

        # Beside the running daemon: its journal read-only, no lock taken.
        running = await report_cli(cfg_path, day, "--out", str(tmp_path / "beside"))
        rows = equity_rows(journal_dir, day)
        assert len(rows) >= running["snapshots"] > 1
        check(running, want, rows[: running["snapshots"]])
        assert trader.running  # and trading went on

        # The simulated session closes: the daemon writes the day's report by itself.
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{trader.cfg.rest_url}/_sim/market", json={"session": "closed"}) as r,
        ):
            assert r.status == 200
        await until(lambda: bool(reports), within_s=30.0)
        files = reports[0]
        assert files.day == day.isoformat()
        assert files.directory == tmp_path / "state" / "reports" / day.isoformat()
        assert files.png is not None
        assert files.png.read_bytes().startswith(b"\x89PNG")
        assert files.text.startswith(f"kiwoom-engine daily report {day.isoformat()}")
        auto = orjson.loads(files.json.read_bytes())
        check(auto, want, equity_rows(journal_dir, day)[: auto["snapshots"]])
        # The alerts send it: the text as messages, then the PNG as a photo, byte for byte.
        await until(lambda: any(r.kind == "sendPhoto" for r in bot.received), within_s=15.0)
        (photo,) = [r for r in bot.received if r.kind == "sendPhoto"]
        assert photo.photo == files.png.read_bytes()
        assert files.text.splitlines()[0] in bot.lines()
        assert files.text.splitlines()[-1] in bot.lines()
        for p in files.directory.rglob("*"):
            if p.is_file():
                for secret in (TOKEN, TOKEN.split(":")[1]):
                    assert secret.encode() not in p.read_bytes(), f"{p} holds the bot token"
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == daemon.EXIT_OK
        await bot.stop()

    # After the daemon stopped: the same day, ending on the mark taken at the stop.
    after = await report_cli(cfg_path, day)
    check(after, want, equity_rows(journal_dir, day))
    assert (tmp_path / "state" / "reports" / day.isoformat() / "report.json").is_file()
