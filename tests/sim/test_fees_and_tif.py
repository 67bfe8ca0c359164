"""The simulator's fees (the rates `[portfolio]` estimates, rounded as it rounds) and its IOC /
FOK order types (Kiwoom trde_tp 10, 13, 20, 23), over real sockets: a whole `Simulator` on a
loopback port and a plain aiohttp client, no engine client code.

The market stands still (events_per_s = 0), so the book a test reads is the book its order
meets. Expected figures are written out with literal rates, never asked of the code under test.
The simulator's day (the sell-tax table's row) is pinned in 2026: KOSPI 0.05 % securities
transaction tax + 0.15 % rural tax = 0.20 %, as published for 2026.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import config
from engine.clock import KST, OffsetClock
from engine.config import PortfolioConfig
from engine.events import Side
from engine.sim.simulator import Simulator
from engine.trading.fees import FeeRates
from engine.trading.portfolio import Portfolio
from tests.sim.conftest import SimClient

SYM = "005930"
CASH = 100_000_000


def sim_config(**over: Any) -> config.SimConfig:
    base = config.load(None, env={}).sim
    return dataclasses.replace(base, **{"port": 0, "events_per_s": 0.0, "cash": CASH, **over})


def in_2026() -> OffsetClock:
    """The live clock moved to a trading morning of 2026, whenever the test runs."""
    day = datetime(2026, 6, 15, 10, 0, tzinfo=KST)
    return OffsetClock((day - datetime.now(KST)).total_seconds())


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, SimClient]]:
    async with Simulator(sim_config(), in_2026()) as s, aiohttp.ClientSession() as session:
        yield s, SimClient(s.state, s.rest_url, session)


def order(qty: int, price: int | str, trde_tp: str) -> dict[str, str]:
    return {
        "dmst_stex_tp": "KRX",
        "stk_cd": SYM,
        "ord_qty": str(qty),
        "ord_uv": str(price),
        "trde_tp": trde_tp,
        "cond_uv": "",
    }


async def entr(client: SimClient) -> int:
    reply = await client.call("kt00001", {"qry_tp": "3"})
    assert reply.rc == 0, reply.msg
    return int(reply.body["entr"])


async def history(client: SimClient, ord_no: str) -> dict[str, Any]:
    """The kt00007 row of one order."""
    reply = await client.call(
        "kt00007",
        {"qry_tp": "1", "stk_bond_tp": "0", "sell_tp": "0", "dmst_stex_tp": "KRX"},
    )
    assert reply.rc == 0, reply.msg
    rows = [r for r in reply.body["acnt_ord_cntr_prps_dtl"] if r["ord_no"] == ord_no]
    assert len(rows) == 1, reply.body
    return rows[0]


async def open_orders(client: SimClient) -> list[dict[str, Any]]:
    reply = await client.call("ka10075", {"all_stk_tp": "0", "trde_tp": "0", "stex_tp": "0"})
    assert reply.rc == 0, reply.msg
    return list(reply.body["oso"])


# ---- fees --------------------------------------------------------------------------------------


def test_the_simulator_charges_the_portfolio_estimate_by_default() -> None:
    cfg = config.load(None, env={})
    # The published table by default in both; 18.0 is the flat rate `sell_tax_table = false`
    # falls back to.
    assert (cfg.sim.commission_bp, cfg.sim.sell_tax_bp, cfg.sim.sell_tax_table) == (1.5, 18.0, True)
    assert (
        cfg.portfolio.commission_bp,
        cfg.portfolio.sell_tax_bp,
        cfg.portfolio.sell_tax_table,
    ) == (1.5, 18.0, True)


def test_fractional_basis_points_can_be_configured(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[sim]\ncommission_bp = 0.7\nsell_tax_bp = 20\n")
    cfg = config.load(path, env={})
    assert cfg.sim.commission_bp == 0.7
    assert cfg.sim.sell_tax_bp == 20
    assert cfg.sim.sell_tax_table is False  # the explicit flat rate wins over the table


@pytest.mark.parametrize(
    ("commission", "tax", "value", "sell", "expected"),
    [
        (1.5, 18.0, 100_000, False, (15, 0)),
        (1.5, 18.0, 100_000, True, (15, 180)),
        # 1.5 bp of 5,129 is 0.77 won and 18 bp 9.23: rounded apart they make 9, rounded once
        # (as the portfolio estimates, 19.5 bp: 10.0016) 10. The tax takes the won.
        (1.5, 18.0, 5_129, True, (0, 10)),
        (1.5, 18.0, 6_666, False, (0, 0)),
        (1.5, 18.0, 6_667, False, (1, 0)),
        # 0.7 in binary is 0.69999...: x 100,000 / 10,000 would round down to 6.
        (0.7, 0.0, 100_000, False, (7, 0)),
        (0.0, 0.0, 10**13, True, (0, 0)),
        # The largest account amount the simulator allows (sim.cash <= 10^13 won).
        (1.5, 18.0, 10**13 + 7, True, (1_500_000_000, 18_000_000_000)),
        (1.5, 18.0, 10**13 - 1, True, (1_499_999_999, 18_000_000_000)),
    ],
)
def test_fee_and_tax_of_a_fill(
    commission: float, tax: float, value: int, sell: bool, expected: tuple[int, int]
) -> None:
    rates = FeeRates(commission, tax)
    assert rates.charge(value, sell=sell) == expected
    assert rates.total(value, sell=sell) == sum(expected)


@pytest.mark.parametrize("qty", [1, 3, 7, 10, 13, 77])
@pytest.mark.parametrize("price", [1_009, 5_129, 70_100, 123_500, 987_000])
def test_fee_and_tax_together_equal_the_portfolio_estimate(qty: int, price: int) -> None:
    rates = FeeRates(1.5, 18.0)
    estimate = Portfolio(
        PortfolioConfig(commission_bp=1.5, sell_tax_bp=18.0, sell_tax_table=False)
    ).fee_for
    for side in Side:
        sell = side is Side.SELL
        assert sum(rates.charge(qty * price, sell=sell)) == estimate(side, qty, price)


async def test_a_round_trip_over_rest_pays_fee_and_tax(sim: tuple[Simulator, SimClient]) -> None:
    s, client = sim
    ask_price, ask_qty = s.market.book(SYM).asks[0]
    qty = min(ask_qty, 10)
    buy = await client.call("kt10000", order(qty, ask_price, "0"))
    assert buy.rc == 0, buy.msg
    value = ask_price * qty
    buy_fee = value * 15 // 100_000  # 1.5 bp, rounded down to the won
    assert await entr(client) == CASH - value - buy_fee
    assert int((await history(client, buy.body["ord_no"]))["cntr_qty"]) == qty

    bid_price, bid_qty = s.market.book(SYM).bids[0]
    sell_qty = min(bid_qty, qty)
    sell = await client.call("kt10001", order(sell_qty, bid_price, "0"))
    assert sell.rc == 0, sell.msg
    proceeds = bid_price * sell_qty
    # 1.5 bp commission + 2026's published KOSPI sell tax of 20 bp (0.05 % + 0.15 % rural
    # tax), rounded once.
    sell_all_in = proceeds * 215 // 100_000
    assert await entr(client) == CASH - value - buy_fee + proceeds - sell_all_in
    execs = await client.call("ka10076", {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"})
    rows = {r["ord_no"]: r for r in execs.body["cntr"]}
    assert int(rows[buy.body["ord_no"]]["tdy_trde_cmsn"]) == buy_fee
    assert int(rows[buy.body["ord_no"]]["tdy_trde_tax"]) == 0
    sold = rows[sell.body["ord_no"]]
    assert int(sold["tdy_trde_cmsn"]) == proceeds * 15 // 100_000
    assert int(sold["tdy_trde_cmsn"]) + int(sold["tdy_trde_tax"]) == sell_all_in


async def test_a_config_file_s_flat_sell_tax_bp_is_what_the_simulator_charges(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[sim]\nsell_tax_bp = 18.0\n")  # explicit: beats 2026's table (20 bp)
    cfg = dataclasses.replace(config.load(path, env={}).sim, port=0, events_per_s=0.0, cash=CASH)
    async with (
        Simulator(cfg, in_2026()) as s,
        aiohttp.ClientSession() as session,
    ):
        client = SimClient(s.state, s.rest_url, session)
        ask_price, ask_qty = s.market.book(SYM).asks[0]
        qty = min(ask_qty, 10)
        buy = await client.call("kt10000", order(qty, ask_price, "0"))
        assert buy.rc == 0, buy.msg
        bid_price, bid_qty = s.market.book(SYM).bids[0]
        sell_qty = min(bid_qty, qty)
        sell = await client.call("kt10001", order(sell_qty, bid_price, "0"))
        assert sell.rc == 0, sell.msg
        proceeds = bid_price * sell_qty
        execs = await client.call("ka10076", {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"})
        sold = {r["ord_no"]: r for r in execs.body["cntr"]}[sell.body["ord_no"]]
        # 1.5 bp commission + the flat 18 bp, rounded once.
        assert int(sold["tdy_trde_cmsn"]) + int(sold["tdy_trde_tax"]) == proceeds * 195 // 100_000
        assert int(sold["tdy_trde_tax"]) > 0


# ---- IOC and FOK -------------------------------------------------------------------------------


async def test_an_ioc_limit_buy_fills_what_it_can_and_the_rest_is_cancelled(
    sim: tuple[Simulator, SimClient],
) -> None:
    s, client = sim
    ask_price, ask_qty = s.market.book(SYM).asks[0]
    reply = await client.call("kt10000", order(ask_qty + 5, ask_price, "10"))
    assert reply.rc == 0, reply.msg
    row = await history(client, reply.body["ord_no"])
    assert int(row["cntr_qty"]) == ask_qty  # the next level is above the limit
    assert int(row["cntr_uv"]) == ask_price
    assert int(row["ord_remnq"]) == 0
    assert row["acpt_tp"] == "취소"
    assert row["trde_tp"] == "보통(IOC)"
    assert await open_orders(client) == []
    value = ask_price * ask_qty
    assert await entr(client) == CASH - value - value * 15 // 100_000
    deposit = await client.call("kt00001", {"qry_tp": "3"})
    assert int(deposit.body["ord_alow_amt"]) == int(deposit.body["entr"])  # nothing reserved


async def test_an_ioc_limit_order_that_fills_whole_is_not_cancelled(
    sim: tuple[Simulator, SimClient],
) -> None:
    s, client = sim
    bid_price, bid_qty = s.market.book(SYM).bids[0]
    buy = await client.call("kt10000", order(1, s.market.book(SYM).asks[0][0], "10"))
    assert buy.rc == 0, buy.msg
    sell = await client.call("kt10001", order(1, bid_price, "10"))
    assert sell.rc == 0, sell.msg
    row = await history(client, sell.body["ord_no"])
    assert (int(row["cntr_qty"]), row["acpt_tp"]) == (1, "체결")
    assert bid_qty >= 1


async def test_a_fok_limit_buy_that_cannot_fill_whole_fills_nothing(
    sim: tuple[Simulator, SimClient],
) -> None:
    s, client = sim
    book = s.market.book(SYM)
    ask_price, ask_qty = book.asks[0]
    reply = await client.call("kt10000", order(ask_qty + 5, ask_price, "20"))
    assert reply.rc == 0, reply.msg
    row = await history(client, reply.body["ord_no"])
    assert (int(row["cntr_qty"]), int(row["ord_remnq"]), row["acpt_tp"]) == (0, 0, "취소")
    assert row["trde_tp"] == "보통(FOK)"
    assert await open_orders(client) == []
    assert await entr(client) == CASH
    assert s.market.book(SYM) == book  # no liquidity taken


async def test_a_fok_limit_buy_that_can_fill_whole_fills_whole(
    sim: tuple[Simulator, SimClient],
) -> None:
    s, client = sim
    asks = s.market.book(SYM).asks
    # Two levels: the limit is the second ask, and the quantity both levels together.
    limit = asks[1][0]
    qty = asks[0][1] + asks[1][1]
    reply = await client.call("kt10000", order(qty, limit, "20"))
    assert reply.rc == 0, reply.msg
    row = await history(client, reply.body["ord_no"])
    assert (int(row["cntr_qty"]), int(row["ord_remnq"]), row["acpt_tp"]) == (qty, 0, "체결")
    value = asks[0][0] * asks[0][1] + asks[1][0] * asks[1][1]
    fees = asks[0][0] * asks[0][1] * 15 // 100_000 + asks[1][0] * asks[1][1] * 15 // 100_000
    assert await entr(client) == CASH - value - fees


@pytest.mark.parametrize(("trde_tp", "name"), [("13", "시장가(IOC)"), ("23", "시장가(FOK)")])
async def test_market_ioc_and_fok_fill_whole(
    sim: tuple[Simulator, SimClient], trde_tp: str, name: str
) -> None:
    s, client = sim
    ask_qty = s.market.book(SYM).asks[0][1]
    reply = await client.call("kt10000", order(ask_qty + 5, "", trde_tp))
    assert reply.rc == 0, reply.msg
    row = await history(client, reply.body["ord_no"])
    assert (int(row["cntr_qty"]), int(row["ord_remnq"]), row["acpt_tp"]) == (ask_qty + 5, 0, "체결")
    assert row["trde_tp"] == name
    assert await open_orders(client) == []


async def test_trade_types_the_simulator_does_not_model_are_still_refused(
    sim: tuple[Simulator, SimClient],
) -> None:
    s, client = sim
    reply = await client.call("kt10000", order(1, s.market.book(SYM).asks[0][0], "16"))
    assert reply.rc == 2
    assert "[2005:" in reply.msg
