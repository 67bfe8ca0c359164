"""/metrics beyond the engine's health (issue 17): per strategy (state, errors, orders by
state, fills, positions and exposure per symbol, PnL), per account (cash, orderable cash,
gross exposure, the daily loss against its limit), the feed's silence, reconciliation's
divergences, the cap on per-symbol series, and the loop's lateness read live while it is
stuck. Over real HTTP, on an engine trading against the simulator; expected values come from
the simulator's books, not from the engine."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from engine.config import Config
from engine.sim.simulator import Simulator
from tests.engine.conftest import OTHER, SYMBOL, sim_config, write_strategy
from tests.engine.test_admin import engine_with_admin
from tests.support import until

pytestmark = pytest.mark.timeout(60)

ROUND_TRIP = """
class RoundTrip(Strategy):
    def on_start(self):
        self.bought = None
        self.sold = None

    def on_trade(self, trade):
        if not trade.best_ask or not trade.best_bid:
            return
        if self.bought is None:
            self.bought = self.buy(trade.symbol, 2, trade.best_ask)
        elif self.sold is None and self.bought.state is OrderState.FILLED:
            self.sold = self.sell(trade.symbol, 1, trade.best_bid)
"""

BUYS_EACH = """
class BuysEach(Strategy):
    def on_start(self):
        self.orders = {}

    def on_trade(self, trade):
        if trade.best_ask and trade.symbol not in self.orders:
            self.orders[trade.symbol] = self.buy(trade.symbol, 1, trade.best_ask)
"""

RAISES = """
class Raises(Strategy):
    def on_trade(self, trade):
        raise RuntimeError("boom")
"""


@pytest.fixture
async def sim() -> Simulator:
    async with Simulator(sim_config()) as s:
        yield s  # type: ignore[misc]


async def test_strategy_and_account_series_match_the_brokers_books(
    sim: Simulator, tmp_path: Path
) -> None:
    rt = write_strategy(tmp_path, "rt", ROUND_TRIP, "RoundTrip")
    bad = write_strategy(tmp_path, "bad", RAISES, "Raises", max_errors=1)
    async with engine_with_admin(
        sim, tmp_path / "state", (rt, bad), daily_loss_limit=1_000_000
    ) as admin:
        strat = admin.trader.host.by_name["rt"].instance
        await until(lambda: strat.sold is not None and strat.sold.state.value == "filled", 15)
        await until(lambda: admin.trader.journal_queue.depth == 0)
        m = await admin.metrics()
        fills = sim.exchange.fills()
        assert [f.side for f in fills] == ["buy", "sell"], fills
        buy, sell = fills
        assert m['kiwoom_engine_strategy_running{strategy="rt"}'] == 1
        assert m['kiwoom_engine_strategy_fills_total{strategy="rt"}'] == 2
        assert m['kiwoom_engine_strategy_orders{state="filled",strategy="rt"}'] == 2
        assert m['kiwoom_engine_strategy_errors_total{strategy="rt"}'] == 0
        assert m['kiwoom_engine_strategy_overruns_total{strategy="rt"}'] >= 0
        # The strategy that raised: disabled, with why.
        assert m['kiwoom_engine_strategy_running{strategy="bad"}'] == 0
        assert m['kiwoom_engine_strategy_disabled{reason="too_many_errors",strategy="bad"}'] == 1
        assert m['kiwoom_engine_strategy_errors_total{strategy="bad"}'] == 1
        assert m['kiwoom_engine_strategy_disabled{reason="",strategy="rt"}'] == 0
        assert not [
            k
            for k in m
            if k.startswith('kiwoom_engine_strategy_disabled{reason="t') and 'strategy="rt"' in k
        ]
        # One share left, bought at the buy fill's price: exposure less unrealised PnL is its
        # cost, whatever the last price was at the scrape.
        shares = f'kiwoom_engine_strategy_position_shares{{strategy="rt",symbol="{SYMBOL}"}}'
        exposure = f'kiwoom_engine_strategy_exposure_krw{{strategy="rt",symbol="{SYMBOL}"}}'
        assert m[shares] == 1
        unrealized = m['kiwoom_engine_strategy_pnl_krw{kind="unrealized",strategy="rt"}']
        assert m[exposure] - unrealized == buy.price
        assert m[f'kiwoom_engine_position_shares{{symbol="{SYMBOL}"}}'] == 1
        assert m["kiwoom_engine_account_gross_exposure_krw"] == m[exposure]
        # Realised: the share sold against its cost, less both fills' fees and tax.
        realized = (sell.price - buy.price) - buy.fee - buy.tax - sell.fee - sell.tax
        assert m['kiwoom_engine_strategy_pnl_krw{kind="realized",strategy="rt"}'] == realized
        assert m["kiwoom_engine_daily_loss_krw"] == max(0, -realized)
        assert m["kiwoom_engine_daily_loss_limit_krw"] == 1_000_000
        # Cash as the broker holds it (no open orders: orderable is all of it).
        assert m["kiwoom_engine_account_cash_krw"] == sim.exchange.orderable_cash()
        assert m["kiwoom_engine_account_orderable_cash_krw"] == sim.exchange.orderable_cash()
        assert m["kiwoom_engine_position_divergences"] == 0
        assert m["kiwoom_engine_reconcile_runs_total"] >= 1
        assert m['kiwoom_engine_symbol_series_dropped{metric="strategy_position"}'] == 0


async def test_per_symbol_series_are_capped_and_the_rest_summed_and_counted(
    sim: Simulator, tmp_path: Path
) -> None:
    sc = write_strategy(tmp_path, "each", BUYS_EACH, "BuysEach", symbols=(SYMBOL, OTHER))

    def one_series(cfg: Config) -> Config:
        return dataclasses.replace(
            cfg, metrics=dataclasses.replace(cfg.metrics, max_symbol_series=1)
        )

    async with engine_with_admin(sim, tmp_path / "state", (sc,), configure=one_series) as admin:
        await admin.ws.subscribe(["0B"], [OTHER])
        await until(lambda: len(sim.exchange.holdings()) == 2, 15)
        await until(lambda: admin.trader.portfolio.position_qty(OTHER) == 1, 5)
        await until(lambda: admin.trader.portfolio.position_qty(SYMBOL) == 1, 5)
        m = await admin.metrics()
        shares = [k for k in m if k.startswith("kiwoom_engine_strategy_position_shares{")]
        exposures = {
            k: v for k, v in m.items() if k.startswith("kiwoom_engine_strategy_exposure_krw{")
        }
        assert len(shares) == 1, shares
        assert len(exposures) == 2, exposures  # the one kept, and the other summed
        assert 'kiwoom_engine_strategy_exposure_krw{strategy="each",symbol="_other"}' in m
        assert m['kiwoom_engine_symbol_series_dropped{metric="strategy_position"}'] == 1
        assert m['kiwoom_engine_symbol_series_dropped{metric="position"}'] == 1
        account = [k for k in m if k.startswith("kiwoom_engine_position_shares{")]
        assert len(account) == 1, account
        # Nothing lost in the sum: the series add up to the account's gross exposure.
        assert sum(exposures.values()) == m["kiwoom_engine_account_gross_exposure_krw"]
        # The kept one is the larger exposure (SK hynix and Samsung trade at other prices).
        kept = next(k for k in exposures if "_other" not in k)
        assert (
            exposures[kept]
            >= exposures['kiwoom_engine_strategy_exposure_krw{strategy="each",symbol="_other"}']
        )


async def test_a_divergence_found_by_reconciliation_is_a_series(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        m = await admin.metrics()
        assert m["kiwoom_engine_position_divergences"] == 0
        runs = m["kiwoom_engine_reconcile_runs_total"]
        # Shares appear at the broker that the engine never bought.
        sim.exchange.account.shares[OTHER] = 5
        sim.exchange.account.cost[OTHER] = 5 * 10_000
        admin.trader.request_reconcile()
        await until(lambda: admin.trader.reconciler.runs > runs, 10)
        m = await admin.metrics()
        assert m["kiwoom_engine_position_divergences"] == 1
        assert m["kiwoom_engine_position_divergences_found_total"] == 1


async def test_the_feeds_silence_grows_while_the_server_is_silent(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        m = await admin.metrics()
        assert m["kiwoom_engine_feed_silent_seconds"] < 5
        sim.state.faults.ws_silent = True
        await until(lambda: not admin.ws.connected, 10)

        async def silence() -> float:
            return (await admin.metrics())["kiwoom_engine_feed_silent_seconds"]

        deadline = time.monotonic() + 10
        while (s := await silence()) < 1.0:
            assert time.monotonic() < deadline, s
            await asyncio.sleep(0.1)
        assert (await admin.metrics())["kiwoom_engine_feed_live"] == 0
        sim.state.faults.ws_silent = False


async def test_the_loops_lateness_is_read_live_while_the_loop_is_stuck(
    sim: Simulator, tmp_path: Path
) -> None:
    async with engine_with_admin(sim, tmp_path / "state") as admin:
        await until(lambda: admin.server.loop.stalled_s() < 0.5, 5)
        url = admin.base + "/metrics"
        seen: list[str] = []

        def scrape() -> None:
            time.sleep(1.0)  # well into the block below
            with urllib.request.urlopen(url, timeout=10) as r:
                seen.append(r.read().decode())

        scraper = threading.Thread(target=scrape)
        scraper.start()
        time.sleep(2.0)  # noqa: ASYNC251 - the engine's loop blocked, as by a stuck handler
        await asyncio.to_thread(scraper.join, 10)
        assert seen, "the scrape did not answer"
        stalled = next(
            float(line.rpartition(" ")[2])
            for line in seen[0].splitlines()
            if line.startswith("kiwoom_engine_event_loop_stalled_seconds ")
        )
        assert stalled >= 0.5
        samples = [
            line
            for line in seen[0].splitlines()
            if line.startswith("kiwoom_engine_event_loop_stalled_seconds")
        ]
        assert len(samples) == 1, samples  # the thread's, not also a stale rendering's
