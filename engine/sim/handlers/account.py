"""ka00001 (계좌번호), kt00001 (예수금) and kt00018 (잔고): the account as `SimExchange` keeps it.

Account amounts are zero-padded signed fixed-width numbers as Kiwoom sends them; fields the
simulator does not model answer zero, as for a plain cash account. ka00001 answers the
exchange's account number, so it agrees with the 00/04 pushes.
"""

from __future__ import annotations

from typing import Any

from engine.sim.exchange import Holding, SimExchange
from engine.sim.handlers.fields import QUERY_OK, text, top_level_fields
from engine.sim.reply import RestHandler, SimReply
from engine.sim.schema import padded, percent

_ORDERABLE_FIELDS = (
    "ord_alow_amt",
    "pymn_alow_amt",
    "d1_pymn_alow_amt",
    "d2_pymn_alow_amt",
    "20stk_ord_alow_amt",
    "30stk_ord_alow_amt",
    "40stk_ord_alow_amt",
    "50stk_ord_alow_amt",
    "60stk_ord_alow_amt",
    "100stk_ord_alow_amt",
)


def account_number(ex: SimExchange) -> RestHandler:
    """ka00001."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        return SimReply({"acctNo": ex.account_no})

    return handler


def deposit(ex: SimExchange) -> RestHandler:
    """kt00001: 예수금 and what open buy orders leave of it to order with."""
    fields = top_level_fields("kt00001")

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        cash = ex.cash
        orderable = ex.orderable_cash()
        out: dict[str, Any] = dict.fromkeys(fields, padded(0))
        for name in ("entr", "d1_entra", "d2_entra"):
            out[name] = padded(cash)
        for name in _ORDERABLE_FIELDS:
            out[name] = padded(orderable)
        out["profa_ch"] = padded(cash - orderable)  # cash held against open buy orders
        out["crd_grnt_rt"] = "0.00"
        out["stk_entr_prst"] = []
        return SimReply(out, return_msg=QUERY_OK)

    return handler


def _holding_row(ex: SimExchange, h: Holding, total_evlt: int) -> dict[str, Any]:
    market = ex.market
    cur = market.last_price(h.symbol)
    evlt = cur * h.qty
    rates = ex.rates_for(h.symbol)
    pur_cmsn = rates.total(h.cost, sell=False)
    sell_cmsn, tax = rates.charge(evlt, sell=True)
    pl = evlt - h.cost - pur_cmsn - sell_cmsn - tax
    return {
        "stk_cd": f"A{h.symbol}",
        "stk_nm": market.name(h.symbol),
        "evltv_prft": padded(pl),
        "prft_rt": percent(pl, h.cost),
        "pur_pric": padded(h.avg_price),
        "pred_close_pric": padded(market.prev_close(h.symbol), 12),
        "rmnd_qty": padded(h.qty),
        "trde_able_qty": padded(ex.orderable_qty(h.symbol)),
        "cur_prc": padded(cur, 12),
        "pred_buyq": padded(0),
        "pred_sellq": padded(0),
        "tdy_buyq": padded(h.today_buy_qty),
        "tdy_sellq": padded(h.today_sell_qty),
        "pur_amt": padded(h.cost),
        "pur_cmsn": padded(pur_cmsn),
        "evlt_amt": padded(evlt),
        "sell_cmsn": padded(sell_cmsn),
        "tax": padded(tax),
        "sum_cmsn": padded(pur_cmsn + sell_cmsn),
        "poss_rt": percent(evlt, total_evlt),
        "crd_tp": "00",
        "crd_tp_nm": "",
        "crd_loan_dt": "",
    }


def balance(ex: SimExchange) -> RestHandler:
    """kt00018: holdings valued at the last trade, with the fees and tax a sale would pay."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        stex = text(body, "dmst_stex_tp").upper()
        holdings = ex.holdings() if stex in ("", "KRX") else []
        total_evlt = sum(ex.market.last_price(h.symbol) * h.qty for h in holdings)
        rows = [_holding_row(ex, h, total_evlt) for h in holdings]
        tot_pur = sum(h.cost for h in holdings)
        tot_pl = sum(int(r["evltv_prft"]) for r in rows)
        return SimReply(
            {
                "tot_pur_amt": padded(tot_pur),
                "tot_evlt_amt": padded(total_evlt),
                "tot_evlt_pl": padded(tot_pl),
                "tot_prft_rt": percent(tot_pl, tot_pur),
                "prsm_dpst_aset_amt": padded(ex.cash + total_evlt),
                "tot_loan_amt": padded(0),
                "tot_crd_loan_amt": padded(0),
                "tot_crd_ls_amt": padded(0),
                "acnt_evlt_remn_indv_tot": rows,
            },
            return_msg=QUERY_OK,
        )

    return handler
