"""kill -9 of a trading daemon, then a restart: the journal and the broker's books rebuild
positions, open orders, strategy attribution and risk counters, and nothing is sent again.

The simulator runs as `kiwoom-engine sim` in its own process, so that it outlives the daemon
(`kiwoom-engine run`, another process) that is killed mid-trading. The restart is the daemon's
own start-up path (daemon.run) in this process, with the strategy told to stay quiet, so that
its state can be read and compared with the simulator's books and the journal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from engine import config, daemon
from engine.events import OrderState, RiskRejected, Side
from engine.journal import Journal
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.models import OrderRecord
from engine.sim.simulator import Simulator
from engine.trader import Trader
from engine.trading.order_events import Sent, apply
from engine.trading.orders import Order
from tests.engine.conftest import running_engine, sim_config, write_strategy
from tests.support import until

pytestmark = pytest.mark.timeout(90)

SYMBOL = "005930"

CHURN = """
from engine.strategy import Strategy


class Churn(Strategy):
    \"\"\"Trades all the time: market buys up to 4 shares, market sells of 2, and now and then
    a buy resting under the market, so that orders are open, filling and in flight.\"\"\"

    def on_start(self):
        self.active = self.params.get("active", True)
        self.n = 0

    def on_trade(self, trade):
        if not self.active or not trade.best_bid:
            return
        self.n += 1
        if self.n % 6:
            return
        step = self.n // 6
        if step % 4 == 0 and len(self.orders()) < 8:
            self.buy(trade.symbol, 1, trade.best_bid - 100 * (5 + step % 7))
        elif self.position(trade.symbol) < 4:
            self.buy(trade.symbol, 1, None)
        else:
            self.sell(trade.symbol, 2, None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sim_process(tmp: Path) -> Iterator[int]:
    """`kiwoom-engine sim` on a free port, until the block ends; yields the port."""
    port = free_port()
    cfg = tmp / "sim.toml"
    cfg.write_text(f'[kiwoom]\nmode = "sim"\n[sim]\nport = {port}\nevents_per_s = 800.0\n')
    log = (tmp / "sim.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "-c", str(cfg), "sim"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, tail(tmp / "sim.log")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def engine_toml(tmp: Path, port: int, *, active: bool) -> Path:
    cfg = tmp / f"engine-{'active' if active else 'quiet'}.toml"
    cfg.write_text(
        f"""
[kiwoom]
mode = "sim"
rest_url = "http://127.0.0.1:{port}"
ws_url = "ws://127.0.0.1:{port}/api/dostk/websocket"
revoke_on_exit = false

[kiwoom.rate]
account_per_s = 500.0
account_burst = 100

[log]
format = "json"

[daemon]
symbols = ["{SYMBOL}"]
state_dir = "{tmp / "state"}"

[risk]
fat_finger_bp = 2000
max_orders_per_s = 20
duplicate_window_s = 0.2

[[strategies]]
name = "churn"
path = "{tmp / "churn.py"}"
class = "Churn"
symbols = ["{SYMBOL}"]
params = {{ active = {"true" if active else "false"} }}
"""
    )
    return cfg


@asynccontextmanager
async def broker(cfg: Path) -> AsyncIterator[KiwoomApi]:
    """A REST client of our own on the simulator, to read its books."""
    async with KiwoomRest.from_config(config.load(str(cfg), env={}), revoke_on_close=False) as rest:
        yield KiwoomApi(rest)


def placed(history: list[OrderRecord]) -> list[OrderRecord]:
    return [r for r in history if not r.original_order_no]


def tail(log: Path) -> str:
    return log.read_text()[-3_000:]


async def test_kill_9_during_trading_then_restart_loses_nothing_and_resends_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "churn.py").write_text(CHURN)
    with sim_process(tmp_path) as port:
        active = engine_toml(tmp_path, port, active=True)
        quiet = engine_toml(tmp_path, port, active=False)
        async with broker(active) as api:
            # 1. The daemon trades until orders are filled (both ways) and open.
            log = (tmp_path / "daemon.log").open("w")
            env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "engine", "-c", str(active), "run"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
            try:
                async with asyncio.timeout(40):
                    while True:
                        assert proc.returncode is None, tail(tmp_path / "daemon.log")
                        history = placed(await api.order_history())
                        sold = any(r.side is Side.SELL and r.filled_qty for r in history)
                        resting = any(r.remaining_qty for r in history)
                        if len(history) >= 12 and sold and resting:
                            break
                        await asyncio.sleep(0.1)
            finally:
                proc.send_signal(signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 10)
                log.close()
            assert proc.returncode == -signal.SIGKILL

            before = placed(await api.order_history())

            # 2. The restart: the daemon's start-up path, the strategy quiet.
            stop = asyncio.Event()
            ready: list[Trader] = []
            task = asyncio.create_task(
                daemon.run(config.load(str(quiet), env={}), stop=stop, on_ready=ready.append)
            )
            try:
                await until(lambda: bool(ready), 15)
                trader = ready[0]
                await check_recovered(trader, api, before)
            finally:
                stop.set()
            assert await asyncio.wait_for(task, 15) == daemon.EXIT_OK


async def check_recovered(trader: Trader, api: KiwoomApi, before: list[OrderRecord]) -> None:
    journal = trader.journal
    await until(lambda: trader.journal_queue.depth == 0)

    # Positions: the account's equal the broker's (kt00018), and all of it is the strategy's
    # by the journal's fills.
    holdings = {h.symbol: h.qty for h in (await api.account_balance()).holdings if h.qty}
    assert holdings  # the daemon did buy
    ours = {s: p.qty for s, p in trader.portfolio.positions.items() if p.qty}
    assert ours == holdings
    assert {s: trader.portfolio.strategy_qty("churn", s) for s in holdings} == holdings
    assert journal.strategy_positions() == {"churn": holdings}

    # Open orders: the engine's are the broker's (ka10075), each the strategy's. A resting
    # order may fill while we look: compare again until both sides agree.
    async with asyncio.timeout(10):
        while True:
            theirs = {o.order_no for o in await api.open_orders()}
            engine_open = {o.order_no for o in trader.oms.open_orders()}
            if theirs == engine_open:
                break
            await asyncio.sleep(0.05)
    assert theirs  # some were resting at the kill
    assert all(o.strategy == "churn" and not o.external for o in trader.oms.open_orders())
    assert not [o for o in trader.oms.open_orders() if o.state is OrderState.UNKNOWN]
    await until(lambda: trader.journal_queue.depth == 0)
    assert {o.order_no for o in journal.load_orders(open_only=True)} == theirs

    # Attribution: every order the daemon placed is its strategy's, in the engine and in
    # the journal (an intent whose answer the kill cut off is matched to its broker order).
    after = placed(await api.order_history())
    journaled = {no: o for o in journal.load_orders() for no in o.order_nos}
    for r in after:
        assert r.order_no in journaled, r
        assert (journaled[r.order_no].strategy, journaled[r.order_no].external) == ("churn", False)
        assert trader.oms.by_order_no[r.order_no].client_id == journaled[r.order_no].client_id

    # Nothing was sent again: the broker has exactly the orders it had at the kill.
    assert [r.order_no for r in after] == [r.order_no for r in before]
    assert trader.oms.stats.submitted == 0

    # Risk counters: what the journal's orders and fills imply.
    counters = trader.risk.counters()
    day = trader.risk.trading_day()
    with contextlib.closing(sqlite3.connect(f"file:{journal.path}?mode=ro", uri=True)) as db:
        assert counters["orders_sent"] == sent_by_journal(db, day)
        assert counters["realized_pnl"] == realized_by_journal(db, day)
    # The day's PnL the portfolio reports is the same figure (it restarted at 0 before).
    assert trader.portfolio.realized_today == counters["realized_pnl"]


def sent_by_journal(db: sqlite3.Connection, day: str) -> int:
    """Orders the engine sent on `day`: journaled, its own, and not refused by risk (those
    are journaled too, with a RiskRejected in the audit table)."""
    refused = {
        row[0]
        for row in db.execute(
            "SELECT json_extract(payload, '$.client_id') FROM audit"
            " WHERE trading_day = ? AND type = ?",
            (day, RiskRejected.__name__),
        )
    }
    ours = db.execute(
        "SELECT client_id FROM orders WHERE trading_day = ? AND external = 0", (day,)
    ).fetchall()
    return len([c for (c,) in ours if c not in refused])


def realized_by_journal(db: sqlite3.Connection, day: str) -> int:
    """`day`'s realised PnL replayed from the journal's fills, oldest first, by average cost
    written out here (not the portfolio's code, which is what is checked): the account was flat
    at the start, a buy realises minus its fee, and a sell realises its value less the average
    cost of the shares it sold, its fee and its tax (the simulator charges [portfolio]'s rates,
    and each journaled fill carries what was charged for it)."""
    held = cost = total = 0
    for side, qty, price, fee, tax in db.execute(
        "SELECT side, qty, price, fee, tax FROM fills WHERE trading_day = ? ORDER BY rowid",
        (day,),
    ):
        assert fee > 0  # every fill here is worth more than a won of commission
        if side == "buy":
            assert tax == 0
            held += qty
            cost += qty * price
            total -= fee
        else:
            basis = cost * qty // held
            total += qty * price - basis - fee - tax
            held -= qty
            cost -= basis
    return total


# --- the same, step by step, in one process ---------------------------------------------------

QUIET = "class Quiet(Strategy):\n    pass\n"


async def test_intents_whose_answers_died_with_the_process_are_settled_at_restart(
    tmp_path: Path,
) -> None:
    # What a kill -9 leaves in the journal between an order's intent and its answer: one
    # intent (NEW: the SUBMITTING update never got written) and one SUBMITTING, both without a
    # broker number and without their counter. The broker took the second, not the first.
    # An order just like the second, ended a moment earlier, holds its own broker number.
    state = tmp_path / "state"
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    async with Simulator(sim_config()) as sim:
        journal = Journal(state, sim.clock)
        journal.open()
        prefix = journal.next_client_seq()
        lower = sim.market.limits(SYMBOL)[0]  # a buy there rests

        def intent(n: int, qty: int) -> Order:
            return Order(f"{prefix}.{n}", "s", SYMBOL, Side.BUY, qty, lower)

        ended = sim.exchange.place("buy", SYMBOL, 2, lower)
        sim.exchange.cancel(ended.ord_no, SYMBOL, 0)
        cancelled = intent(1, 2)
        cancelled.created_ns = sim.clock.time_ns()
        cancelled.order_no = ended.ord_no
        cancelled.order_nos = [ended.ord_no]
        cancelled.state = OrderState.CANCELED
        journal.record_intent(cancelled)
        lost, taken = intent(2, 3), intent(3, 2)
        for order in (lost, taken):
            order.created_ns = sim.clock.time_ns()
            journal.record_intent(order)
        update = apply(taken, Sent()).update
        assert update is not None
        journal.write([dataclasses.replace(update, ts_recv=sim.clock.time_ns(), seq=5_000)])
        journal.close()
        at_broker = sim.exchange.place("buy", SYMBOL, 2, lower)

        async with running_engine(sim, state, (sc,)) as (trader, _ws, api):
            adopted = {o.client_id: o for o in trader.oms.orders.values()}
            assert set(adopted) == {cancelled.client_id, lost.client_id, taken.client_id}
            assert adopted[cancelled.client_id].state is OrderState.CANCELED
            settled = adopted[taken.client_id]
            # Attributed to its intent at start-up, before the strategies ran.
            assert (settled.state, settled.order_no) == (OrderState.ACCEPTED, at_broker.ord_no)
            assert settled.strategy == "s"
            unsent = adopted[lost.client_id]
            assert unsent.state is OrderState.UNKNOWN
            await until(lambda: unsent.state is OrderState.REJECTED, 10)
            assert unsent.reason == "NOT_AT_BROKER"

            assert {o.order_no for o in trader.oms.open_orders()} == {
                o.order_no for o in await api.open_orders()
            }
            # All three counted as sent (one may have been); none sent again.
            assert trader.risk.counters()["orders_sent"] == 3
            assert len(sim.exchange.orders()) == 3  # with the cancel's own number
            assert sim.state.request_counts["kt10000"] == 0
            # The journal holds what the engine holds.
            await until(lambda: trader.journal_queue.depth == 0)
            rows = {o.client_id: o for o in trader.journal.load_orders()}
            assert (rows[taken.client_id].state, rows[taken.client_id].order_no) == (
                OrderState.ACCEPTED,
                at_broker.ord_no,
            )
            assert rows[lost.client_id].state is OrderState.REJECTED
