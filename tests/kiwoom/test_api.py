"""Typed wrappers (engine.kiwoom.api) against the simulator: request bodies and int decoding."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import pytest

from engine.clock import KST
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError, ValidationError
from engine.kiwoom.rest import KiwoomRest
from engine.models import Exchange, OrderType, Side
from engine.sim.rest import SimReply

from .conftest import SimEnv

pytestmark = pytest.mark.timeout(30)


def _capture(sim: SimEnv, api_id: str, reply: dict[str, Any]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        seen.append(body)
        return SimReply(reply)

    sim.state.rest_handlers[api_id] = handler
    return seen


async def test_stock_info_and_candles(sim: SimEnv) -> None:
    async with KiwoomRest.from_config(sim.config()) as rest:
        api = KiwoomApi(rest)
        info = await api.stock_info("005930")
        assert info.symbol == "005930"
        assert info.name == "삼성전자"
        assert isinstance(info.price, int)
        assert info.price > 0
        assert info.lower_limit <= info.price <= info.upper_limit
        assert info.low <= info.high
        days = await api.daily_candles("005930", date(2026, 1, 5))
        assert sim.state.request_counts["ka10081"] >= 3
        assert len(days) == len({c.at for c in days})
        assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in days)
        assert days[0].at > days[-1].at
        assert days[0].at.tzinfo is not None
        mins = await api.minute_candles("005930", 5)
        assert mins
        assert all(isinstance(c.close, int) and c.close > 0 for c in mins)
        with pytest.raises(ValidationError, match="minutes"):
            await api.minute_candles("005930", 7)


async def test_buy_market_sends_empty_price(sim: SimEnv) -> None:
    seen = _capture(sim, "kt10000", {"ord_no": "0000024", "dmst_stex_tp": "KRX"})
    async with KiwoomRest.from_config(sim.config()) as rest:
        api = KiwoomApi(rest)
        ack = await api.buy("005930", 10, OrderType.MARKET)
        assert ack.order_no == "0000024"
        assert ack.exchange is Exchange.KRX
        await api.buy("005930", 3, OrderType.LIMIT, 70000, exchange=Exchange.NXT)
        await api.buy("005930", 1, OrderType.STOP_LIMIT, 71000, stop_price=70500)
        with pytest.raises(ValidationError, match="take no price"):
            await api.buy("005930", 1, OrderType.MARKET, 70000)
        with pytest.raises(ValidationError, match="need a price"):
            await api.buy("005930", 1, OrderType.LIMIT)
        with pytest.raises(ValidationError, match="qty"):
            await api.buy("005930", 0, OrderType.MARKET)
        with pytest.raises(ValidationError, match="stop_price"):
            await api.buy("005930", 1, OrderType.STOP_LIMIT, 71000)
        with pytest.raises(ValidationError, match="symbol"):
            await api.buy("005930_NX", 1, OrderType.MARKET)
    assert seen == [
        {
            "dmst_stex_tp": "KRX",
            "stk_cd": "005930",
            "ord_qty": "10",
            "ord_uv": "",
            "trde_tp": "3",
            "cond_uv": "",
        },
        {
            "dmst_stex_tp": "NXT",
            "stk_cd": "005930",
            "ord_qty": "3",
            "ord_uv": "70000",
            "trde_tp": "0",
            "cond_uv": "",
        },
        {
            "dmst_stex_tp": "KRX",
            "stk_cd": "005930",
            "ord_qty": "1",
            "ord_uv": "71000",
            "trde_tp": "28",
            "cond_uv": "70500",
        },
    ]
    assert sim.state.request_counts["kt10000"] == 3  # refused arguments never left


async def test_sell_modify_cancel(sim: SimEnv) -> None:
    sells = _capture(sim, "kt10001", {"ord_no": "0000138", "dmst_stex_tp": "SOR"})
    mods = _capture(
        sim,
        "kt10002",
        {
            "ord_no": "0000140",
            "base_orig_ord_no": "0000139",
            "mdfy_qty": "000000000001",
            "dmst_stex_tp": "KRX",
        },
    )
    cans = _capture(
        sim,
        "kt10003",
        {"ord_no": "0000141", "base_orig_ord_no": "0000139", "cncl_qty": "000000000000"},
    )
    async with KiwoomRest.from_config(sim.config()) as rest:
        api = KiwoomApi(rest)
        s = await api.sell("005930", 2, OrderType.BEST_IOC, exchange=Exchange.SOR)
        assert s.exchange is Exchange.SOR
        m = await api.modify("0000139", "005930", 1, 199700)
        assert (m.order_no, m.original_order_no, m.qty) == ("0000140", "0000139", 1)
        c = await api.cancel("0000140", "005930")
        assert (c.order_no, c.original_order_no, c.qty, c.exchange) == (
            "0000141",
            "0000139",
            0,
            None,
        )
    assert sells[0]["trde_tp"] == "16"
    assert sells[0]["ord_uv"] == ""
    assert mods[0] == {
        "dmst_stex_tp": "KRX",
        "orig_ord_no": "0000139",
        "stk_cd": "005930",
        "mdfy_qty": "1",
        "mdfy_uv": "199700",
        "mdfy_cond_uv": "",
    }
    assert cans[0] == {
        "dmst_stex_tp": "KRX",
        "orig_ord_no": "0000140",
        "stk_cd": "005930",
        "cncl_qty": "0",
    }


async def test_account_views_decode_ints(sim: SimEnv) -> None:
    _capture(
        sim,
        "kt00018",
        {
            "tot_pur_amt": "000000017598258",
            "tot_evlt_amt": "000000025789890",
            "tot_evlt_pl": "-00000000196888",
            "tot_prft_rt": "-1.25",
            "prsm_dpst_aset_amt": "000001012632507",
            "acnt_evlt_remn_indv_tot": [
                {
                    "stk_cd": "A005930",
                    "stk_nm": "삼성전자",
                    "evltv_prft": "-00000000196888",
                    "prft_rt": "-52.71",
                    "pur_pric": "000000000124500",
                    "rmnd_qty": "000000000000003",
                    "trde_able_qty": "000000000000003",
                    "cur_prc": "000000059000",
                    "pur_amt": "000000000373500",
                    "evlt_amt": "000000000177000",
                }
            ],
        },
    )
    _capture(
        sim,
        "kt00001",
        {
            "entr": "000000100000000",
            "ord_alow_amt": "000000099000000",
            "pymn_alow_amt": "000000098000000",
            "d1_entra": "000000100000000",
            "d2_entra": "000000097000000",
        },
    )
    oso = _capture(
        sim,
        "ka10075",
        {
            "oso": [
                {
                    "ord_no": "0000139",
                    "stk_cd": "005930",
                    "stk_nm": "삼성전자",
                    "ord_stt": "접수",
                    "ord_qty": "10",
                    "ord_pric": "70000",
                    "oso_qty": "7",
                    "cntr_qty": "3",
                    "cntr_pric": "+70000",
                    "orig_ord_no": "0000000",
                    "io_tp_nm": "+매수",
                    "trde_tp": "보통",
                    "tm": "093015",
                    "stex_tp_txt": "KRX",
                }
            ]
        },
    )
    cntr = _capture(
        sim,
        "ka10076",
        {
            "cntr": [
                {
                    "ord_no": "0000139",
                    "stk_cd": "005930",
                    "stk_nm": "삼성전자",
                    "io_tp_nm": "-매도",
                    "ord_pric": "70000",
                    "ord_qty": "10",
                    "cntr_pric": "-69900",
                    "cntr_qty": "10",
                    "oso_qty": "0",
                    "tdy_trde_cmsn": "100",
                    "tdy_trde_tax": "1260",
                    "ord_stt": "체결",
                    "trde_tp": "보통",
                    "orig_ord_no": "0000000",
                    "ord_tm": "093016",
                    "stex_tp_txt": "SOR",
                }
            ]
        },
    )
    hist = _capture(
        sim,
        "kt00007",
        {
            "acnt_ord_cntr_prps_dtl": [
                {
                    "ord_no": "0000140",
                    "stk_cd": "A005930",
                    "stk_nm": "삼성전자",
                    "io_tp_nm": "매수정정",
                    "ord_qty": "000000000001",
                    "ord_uv": "000000199700",
                    "cnfm_qty": "000000000001",
                    "cntr_qty": "000000000000",
                    "cntr_uv": "000000000000",
                    "ord_remnq": "000000000001",
                    "ori_ord": "0000139",
                    "mdfy_cncl": "정정",
                    "ord_tm": "10:01:02",
                    "dmst_stex_tp": "KRX",
                }
            ]
        },
    )
    async with KiwoomRest.from_config(sim.config()) as rest:
        api = KiwoomApi(rest)
        bal = await api.account_balance()
        assert bal.pnl == -196888
        assert bal.pnl_pct == pytest.approx(-1.25)
        h = bal.holdings[0]
        assert (h.symbol, h.qty, h.avg_price, h.price, h.pnl) == (
            "005930",
            3,
            124500,
            59000,
            -196888,
        )
        cash = await api.cash_balance()
        assert (cash.deposit, cash.orderable, cash.d2_deposit) == (
            100_000_000,
            99_000_000,
            97_000_000,
        )
        (o,) = await api.open_orders(symbol="005930", side=Side.BUY)
        assert (o.side, o.qty, o.open_qty, o.filled_qty, o.fill_price) == (
            Side.BUY,
            10,
            7,
            3,
            70000,
        )
        assert o.original_order_no is None
        assert o.time == time(9, 30, 15)
        (e,) = await api.executions()
        assert (e.side, e.fill_price, e.tax, e.exchange) == (Side.SELL, 69900, 1260, "SOR")
        (r,) = await api.order_history(date(2026, 1, 5))
        assert (r.symbol, r.side, r.price, r.original_order_no) == (
            "005930",
            Side.BUY,
            199700,
            "0000139",
        )
        assert r.time == time(10, 1, 2)
        await api.order_history(from_order_no="0000140")
        with pytest.raises(ValidationError):
            await api.account_balance(Exchange.SOR)
    assert oso[0] == {"all_stk_tp": "1", "trde_tp": "2", "stk_cd": "005930", "stex_tp": "0"}
    assert cntr[0]["qry_tp"] == "0"
    assert hist[0]["ord_dt"] == "20260105"
    assert hist[0]["dmst_stex_tp"] == "%"
    # fr_ord_no: the whole day unless a start number is given (issue 14 item 24).
    assert [h["fr_ord_no"] for h in hist] == ["", "0000140"]


async def test_schema_shaped_answers_parse(sim: SimEnv) -> None:
    """Every wrapper copes with the simulator's generic catalogue-shaped answers."""
    async with KiwoomRest.from_config(sim.config()) as rest:
        api = KiwoomApi(rest)
        bal = await api.account_balance()
        assert all(isinstance(h.qty, int) for h in bal.holdings)
        await api.cash_balance(estimated=True)
        ack = await api.buy("005930", 1, OrderType.MARKET)
        assert ack.order_no


def test_candle_time_is_kst() -> None:
    c = KiwoomApi._candle(
        "ka10080",
        {
            "cntr_tm": "20260105093000",
            "open_pric": "-70000",
            "high_pric": "+70100",
            "low_pric": "69900",
            "cur_prc": "-70000",
            "trde_qty": "15",
        },
        "cntr_tm",
    )
    assert c.at == datetime(2026, 1, 5, 9, 30, tzinfo=KST)
    assert (c.open, c.high, c.low, c.close, c.volume, c.turnover_m) == (
        70000,
        70100,
        69900,
        70000,
        15,
        None,
    )


async def test_account_views_refuse_an_incomplete_answer(sim: SimEnv) -> None:
    # Open orders and holdings cut short by the page guard would look like orders that do not
    # exist and positions that are flat: the engine could send a duplicate order.
    row = {"ord_no": "0000139", "stk_cd": "005930", "ord_qty": "1", "oso_qty": "1"}

    async def endless(body: dict[str, Any], next_key: str) -> SimReply:
        return SimReply({"oso": [row]}, next_key=f"k{int(next_key[1:] or 0) + 1}")

    async def repeating(body: dict[str, Any], next_key: str) -> SimReply:
        holding = {"stk_cd": "A005930", "rmnd_qty": "000000000000003"}
        return SimReply({"acnt_evlt_remn_indv_tot": [holding]}, next_key="same")

    sim.state.rest_handlers["ka10075"] = endless
    sim.state.rest_handlers["kt00018"] = repeating
    async with KiwoomRest.from_config(sim.config(max_pages=3)) as rest:
        api = KiwoomApi(rest)
        with pytest.raises(KiwoomError, match="ka10075: incomplete"):
            await api.open_orders()
        with pytest.raises(KiwoomError, match="kt00018: incomplete"):
            await api.account_balance()
    assert sim.state.request_counts["ka10075"] == 3


async def test_a_malformed_symbol_in_a_row_is_a_kiwoom_error(sim: SimEnv) -> None:
    _capture(sim, "ka10076", {"cntr": [{"ord_no": "0000139", "stk_cd": " ", "ord_qty": "1"}]})
    async with KiwoomRest.from_config(sim.config()) as rest:
        with pytest.raises(KiwoomError, match="stk_cd"):
            await KiwoomApi(rest).executions()


async def test_best_quote_reads_the_first_levels_of_ka10004(sim: SimEnv) -> None:
    # Direction-signed prices, as Kiwoom sends them: the sign is no arithmetic sign.
    seen = _capture(
        sim, "ka10004", {"sel_fpr_bid": "-70100", "buy_fpr_bid": "+70000", "sel_fpr_req": "5"}
    )
    async with KiwoomRest.from_config(sim.config()) as rest:
        quote = await KiwoomApi(rest).best_quote("005930")
    assert seen == [{"stk_cd": "005930"}]
    assert (quote.symbol, quote.best_ask, quote.best_bid) == ("005930", 70100, 70000)
    assert quote.exchange is Exchange.KRX


async def test_best_quote_of_the_simulators_book(sim: SimEnv) -> None:
    async with KiwoomRest.from_config(sim.config()) as rest:
        quote = await KiwoomApi(rest).best_quote("000660")
    assert quote.best_ask > quote.best_bid > 0
