"""REST handlers for the simulator's orders and account queries, in Kiwoom's wire format.

kt10000-kt10003 (매수/매도/정정/취소) drive `SimExchange`; kt00001 (예수금), kt00018 (잔고),
ka10075 (미체결), ka10076 (체결) and kt00007 (주문체결내역) read it. Every value is a string;
account amounts are zero-padded signed fixed-width numbers as Kiwoom sends them.
"""

from __future__ import annotations

from typing import Any

from engine.sim.exchange import (
    E_BAD_INPUT,
    NO_ORDER,
    Holding,
    OrderRejected,
    Side,
    SimExchange,
    SimOrder,
    rate2,
)
from engine.sim.rest import RC_INPUT, RestHandler, SimBusinessError, SimReply, input_error

QUERY_OK = "조회가 완료되었습니다"

# kt00001 top-level fields (catalogue order). The ones the simulator models are filled below;
# the rest are zero amounts, as for a plain cash account.
_KT00001_FIELDS: tuple[str, ...] = (
    *("entr", "profa_ch", "bncr_profa_ch", "nxdy_bncr_sell_exct", "fc_stk_krw_repl_set_amt"),
    *("crd_grnta_ch", "crd_grnt_ch", "add_grnt_ch", "etc_profa", "uncl_stk_amt", "shrts_prica"),
    *("crd_set_grnta", "chck_ina_amt", "etc_chck_ina_amt", "crd_grnt_ruse", "knx_asset_evltv"),
    *("elwdpst_evlta", "crd_ls_rght_frcs_amt", "lvlh_join_amt", "lvlh_trns_alowa", "repl_amt"),
    *("remn_repl_evlta", "trst_remn_repl_evlta", "bncr_remn_repl_evlta", "profa_repl"),
    *("crd_grnta_repl", "crd_grnt_repl", "add_grnt_repl", "rght_repl_amt", "pymn_alow_amt"),
    *("wrap_pymn_alow_amt", "ord_alow_amt", "bncr_buy_alowa", "20stk_ord_alow_amt"),
    *("30stk_ord_alow_amt", "40stk_ord_alow_amt", "100stk_ord_alow_amt", "ch_uncla"),
    *("ch_uncla_dlfe", "ch_uncla_tot", "crd_int_npay", "int_npay_amt_dlfe", "int_npay_amt_tot"),
    *("etc_loana", "etc_loana_dlfe", "etc_loan_tot", "nrpy_loan", "loan_sum", "ls_sum"),
    *("crd_grnt_rt", "mdstrm_usfe", "min_ord_alow_yn", "loan_remn_evlt_amt", "dpst_grntl_remn"),
    *("sell_grntl_remn", "d1_entra", "d1_slby_exct_amt", "d1_buy_exct_amt", "d1_out_rep_mor"),
    *("d1_sel_exct_amt", "d1_pymn_alow_amt", "d2_entra", "d2_slby_exct_amt", "d2_buy_exct_amt"),
    *("d2_out_rep_mor", "d2_sel_exct_amt", "d2_pymn_alow_amt", "50stk_ord_alow_amt"),
    "60stk_ord_alow_amt",
)


def fixed(n: int, width: int = 15) -> str:
    """Kiwoom's zero-padded signed fixed width: 17598258 -> "000000017598258",
    -196888 -> "-00000000196888" (the sign takes one of the `width` characters)."""
    if n < 0:
        return "-" + str(-n).zfill(width - 1)
    return str(n).zfill(width)


def _s(body: dict[str, Any], name: str) -> str:
    v = body.get(name)
    return "" if v is None else str(v).strip()


def _int_field(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    raw = _s(body, name)
    if not raw and default is not None:
        return default
    if not raw.isdigit():
        raise input_error(
            E_BAD_INPUT, f"입력 값 형식이 올바르지 않습니다. 파라미터={name} 실패사유=숫자가 아님"
        )
    return int(raw)


def _exchange_field(body: dict[str, Any]) -> str:
    tp = _s(body, "dmst_stex_tp").upper()
    if tp != "KRX":
        raise SimBusinessError(
            RC_INPUT,
            f"주문이 거부되었습니다[2010:지원하지 않는 거래소구분입니다({tp}): KRX만 가능]",
        )
    return tp


def _rejected(label: str, exc: OrderRejected) -> SimBusinessError:
    return SimBusinessError(RC_INPUT, f"{label}주문이 거부되었습니다[{exc.code}:{exc.reason}]")


def _side_word(side: Side) -> str:
    return "매수" if side == "buy" else "매도"


def _side_ok(flag: str, side: Side) -> bool:
    """ka10075 trde_tp / ka10076, kt00007 sell_tp: 0 전체, 1 매도, 2 매수."""
    return flag in ("", "0") or (flag == "1") == (side == "sell")


def _avg_fill(o: SimOrder) -> int:
    return o.filled_value // o.filled_qty if o.filled_qty else 0


def trading_handlers(exchange: SimExchange) -> dict[str, RestHandler]:
    """Handlers for kt10000-kt10003, kt00001, kt00018, ka10075, ka10076 and kt00007.

    Order rejections raise SimBusinessError(return_code 2, "...[NNNN:사유]"); see
    engine.sim.exchange for the codes and for ``reject_mode="push"`` (거부 via realtime 00).
    """
    ex = exchange
    market = ex.market

    def _symbol(body: dict[str, Any]) -> str:
        code = _s(body, "stk_cd")
        if not market.has(code):
            raise input_error(1902, f"종목정보가 없습니다. 종목코드={code}")
        return code

    def place(side: Side) -> RestHandler:
        word = _side_word(side)

        async def handler(body: dict[str, Any], next_key: str) -> SimReply:
            stex = _exchange_field(body)
            symbol = _symbol(body)
            qty = _int_field(body, "ord_qty")
            trde_tp = _s(body, "trde_tp")
            price = _int_field(body, "ord_uv", default=0) if trde_tp == "0" else 0
            try:
                order = ex.place(side, symbol, qty, price, trde_tp)
            except OrderRejected as exc:
                raise _rejected(word, exc) from None
            return SimReply(
                {"ord_no": order.ord_no, "dmst_stex_tp": stex},
                return_msg=f"{word}주문이 완료되었습니다",
            )

        return handler

    async def modify(body: dict[str, Any], next_key: str) -> SimReply:
        stex = _exchange_field(body)
        symbol = _symbol(body)
        orig = _s(body, "orig_ord_no")
        qty = _int_field(body, "mdfy_qty")
        price = _int_field(body, "mdfy_uv")
        target = ex.order(orig) if orig.isdigit() else None
        word = _side_word(target.side) if target else ""
        try:
            new = ex.modify(orig, symbol, qty, price)
        except OrderRejected as exc:
            raise _rejected(f"{word}정정", exc) from None
        return SimReply(
            {
                "ord_no": new.ord_no,
                "base_orig_ord_no": new.base_ord_no,
                "mdfy_qty": fixed(new.qty, 12),
                "dmst_stex_tp": stex,
            },
            return_msg=f"{word}정정 주문입력이 완료되었습니다",
        )

    async def cancel(body: dict[str, Any], next_key: str) -> SimReply:
        _exchange_field(body)
        symbol = _symbol(body)
        orig = _s(body, "orig_ord_no")
        qty = _int_field(body, "cncl_qty")
        target = ex.order(orig) if orig.isdigit() else None
        word = _side_word(target.side) if target else ""
        try:
            cxl = ex.cancel(orig, symbol, qty)
        except OrderRejected as exc:
            raise _rejected(f"{word}취소", exc) from None
        return SimReply(
            {
                "ord_no": cxl.ord_no,
                "base_orig_ord_no": cxl.base_ord_no,
                "cncl_qty": fixed(cxl.qty, 12),
            },
            return_msg=f"{word}취소 주문입력이 완료되었습니다",
        )

    async def deposit(body: dict[str, Any], next_key: str) -> SimReply:
        cash = ex.cash
        orderable = ex.orderable_cash()
        out: dict[str, Any] = dict.fromkeys(_KT00001_FIELDS, fixed(0))
        for name in ("entr", "d1_entra", "d2_entra"):
            out[name] = fixed(cash)
        for name in (
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
        ):
            out[name] = fixed(orderable)
        out["profa_ch"] = fixed(cash - orderable)  # cash held against open buy orders
        out["crd_grnt_rt"] = "0.00"
        out["stk_entr_prst"] = []
        return SimReply(out, return_msg=QUERY_OK)

    def _holding_row(h: Holding, total_evlt: int) -> dict[str, Any]:
        cur = market.last_price(h.symbol)
        evlt = cur * h.qty
        pur_cmsn = h.cost * ex.commission_bp // 10_000
        sell_cmsn = evlt * ex.commission_bp // 10_000
        tax = evlt * ex.sell_tax_bp // 10_000
        pl = evlt - h.cost - pur_cmsn - sell_cmsn - tax
        return {
            "stk_cd": f"A{h.symbol}",
            "stk_nm": market.name(h.symbol),
            "evltv_prft": fixed(pl),
            "prft_rt": rate2(pl, h.cost),
            "pur_pric": fixed(h.avg_price),
            "pred_close_pric": fixed(market.prev_close(h.symbol), 12),
            "rmnd_qty": fixed(h.qty),
            "trde_able_qty": fixed(ex.orderable_qty(h.symbol)),
            "cur_prc": fixed(cur, 12),
            "pred_buyq": fixed(0),
            "pred_sellq": fixed(0),
            "tdy_buyq": fixed(h.today_buy_qty),
            "tdy_sellq": fixed(h.today_sell_qty),
            "pur_amt": fixed(h.cost),
            "pur_cmsn": fixed(pur_cmsn),
            "evlt_amt": fixed(evlt),
            "sell_cmsn": fixed(sell_cmsn),
            "tax": fixed(tax),
            "sum_cmsn": fixed(pur_cmsn + sell_cmsn),
            "poss_rt": rate2(evlt, total_evlt),
            "crd_tp": "00",
            "crd_tp_nm": "",
            "crd_loan_dt": "",
        }

    async def balance(body: dict[str, Any], next_key: str) -> SimReply:
        stex = _s(body, "dmst_stex_tp").upper()
        holdings = ex.holdings() if stex in ("", "KRX") else []
        total_evlt = sum(market.last_price(h.symbol) * h.qty for h in holdings)
        rows = [_holding_row(h, total_evlt) for h in holdings]
        tot_pur = sum(h.cost for h in holdings)
        tot_pl = sum(int(r["evltv_prft"]) for r in rows)
        return SimReply(
            {
                "tot_pur_amt": fixed(tot_pur),
                "tot_evlt_amt": fixed(total_evlt),
                "tot_evlt_pl": fixed(tot_pl),
                "tot_prft_rt": rate2(tot_pl, tot_pur),
                "prsm_dpst_aset_amt": fixed(ex.cash + total_evlt),
                "tot_loan_amt": fixed(0),
                "tot_crd_loan_amt": fixed(0),
                "tot_crd_ls_amt": fixed(0),
                "acnt_evlt_remn_indv_tot": rows,
            },
            return_msg=QUERY_OK,
        )

    def _stex_numeric_ok(body: dict[str, Any]) -> bool:
        return _s(body, "stex_tp") in ("", "0", "1")

    async def open_orders(body: dict[str, Any], next_key: str) -> SimReply:
        only = _s(body, "stk_cd") if _s(body, "all_stk_tp") == "1" else ""
        side_flag = _s(body, "trde_tp")
        rows: list[dict[str, Any]] = []
        if _stex_numeric_ok(body):
            for o in reversed(ex.open_orders()):
                if (only and o.symbol != only) or not _side_ok(side_flag, o.side):
                    continue
                bid, ask = market.best(o.symbol)
                rows.append(
                    {
                        "acnt_no": ex.account_no,
                        "ord_no": o.ord_no,
                        "mang_empno": "",
                        "stk_cd": o.symbol,
                        "tsk_tp": "",
                        "ord_stt": o.status,
                        "stk_nm": market.name(o.symbol),
                        "ord_qty": str(o.qty),
                        "ord_pric": str(o.price),
                        "oso_qty": str(o.open_qty),
                        "cntr_tot_amt": str(o.filled_value),
                        "orig_ord_no": o.orig_ord_no,
                        "io_tp_nm": o.kind_text,
                        "trde_tp": o.trade_type_name,
                        "tm": o.time,
                        "cntr_no": "",
                        "cntr_pric": str(o.last_fill_price),
                        "cntr_qty": str(o.filled_qty),
                        "cur_prc": market.signed(o.symbol, market.last_price(o.symbol)),
                        "sel_bid": market.signed(o.symbol, ask),
                        "buy_bid": market.signed(o.symbol, bid),
                        "unit_cntr_pric": "",
                        "unit_cntr_qty": "",
                        "tdy_trde_cmsn": str(o.fee),
                        "tdy_trde_tax": str(o.tax),
                        "ind_invsr": "0",
                        "stex_tp": "1",
                        "stex_tp_txt": "KRX",
                        "sor_yn": "N",
                        "stop_pric": "",
                    }
                )
        return SimReply({"oso": rows}, return_msg=QUERY_OK)

    async def executions(body: dict[str, Any], next_key: str) -> SimReply:
        only = _s(body, "stk_cd") if _s(body, "qry_tp") == "1" else ""
        side_flag = _s(body, "sell_tp")
        before = _s(body, "ord_no")
        rows: list[dict[str, Any]] = []
        if _stex_numeric_ok(body):
            for o in reversed(ex.orders()):
                if o.filled_qty == 0 or (only and o.symbol != only):
                    continue
                if not _side_ok(side_flag, o.side):
                    continue
                if before.isdigit() and int(before) > 0 and int(o.ord_no) >= int(before):
                    continue
                rows.append(
                    {
                        "ord_no": o.ord_no,
                        "stk_nm": market.name(o.symbol),
                        "io_tp_nm": o.kind_text,
                        "ord_pric": str(o.price),
                        "ord_qty": str(o.qty),
                        "cntr_pric": str(_avg_fill(o)),
                        "cntr_qty": str(o.filled_qty),
                        "oso_qty": str(o.open_qty),
                        "tdy_trde_cmsn": str(o.fee),
                        "tdy_trde_tax": str(o.tax),
                        "ord_stt": "체결",
                        "trde_tp": o.trade_type_name,
                        "orig_ord_no": o.orig_ord_no,
                        "ord_tm": o.time,
                        "stk_cd": o.symbol,
                        "stex_tp": "1",
                        "stex_tp_txt": "KRX",
                        "sor_yn": "N",
                        "stop_pric": "",
                    }
                )
        return SimReply({"cntr": rows}, return_msg=QUERY_OK)

    def _hms_colon(hms: str) -> str:
        return f"{hms[0:2]}:{hms[2:4]}:{hms[4:6]}" if len(hms) == 6 else ""

    async def order_history(body: dict[str, Any], next_key: str) -> SimReply:
        qry_tp = _s(body, "qry_tp")
        side_flag = _s(body, "sell_tp")
        only = _s(body, "stk_cd").removeprefix("A")
        from_no = _s(body, "fr_ord_no")
        stex = _s(body, "dmst_stex_tp").upper()
        orders = ex.orders() if stex in ("", "%", "KRX") else []
        if qry_tp == "2":
            orders = list(reversed(orders))
        rows: list[dict[str, Any]] = []
        for o in orders:
            if qry_tp == "3" and not o.is_open:
                continue
            if qry_tp == "4" and o.filled_qty == 0:
                continue
            if (only and o.symbol != only) or not _side_ok(side_flag, o.side):
                continue
            if from_no.isdigit() and int(from_no) > 0 and int(o.ord_no) < int(from_no):
                continue
            confirmed = o.action != "new" and o.confirm_time != ""
            rows.append(
                {
                    "ord_no": o.ord_no,
                    "stk_cd": f"A{o.symbol}",
                    "trde_tp": o.trade_type_name,
                    "crd_tp": "00",
                    "ord_qty": fixed(o.qty, 10),
                    "ord_uv": fixed(o.price, 10),
                    "cnfm_qty": fixed(o.qty if confirmed else 0, 10),
                    "acpt_tp": o.status,
                    "rsrv_tp": "",
                    "ord_tm": _hms_colon(o.time),
                    "ori_ord": o.orig_ord_no if o.orig_ord_no != NO_ORDER else NO_ORDER,
                    "stk_nm": market.name(o.symbol),
                    "io_tp_nm": o.kind_text,
                    "loan_dt": "",
                    "cntr_qty": fixed(o.filled_qty, 10),
                    "cntr_uv": fixed(_avg_fill(o), 10),
                    "ord_remnq": fixed(o.open_qty, 10),
                    "comm_ord_tp": "",
                    "mdfy_cncl": {"modify": "정정", "cancel": "취소"}.get(o.action, ""),
                    "cnfm_tm": _hms_colon(o.confirm_time),
                    "dmst_stex_tp": "KRX",
                    "cond_uv": fixed(0, 10),
                }
            )
        return SimReply({"acnt_ord_cntr_prps_dtl": rows}, return_msg=QUERY_OK)

    return {
        "kt10000": place("buy"),
        "kt10001": place("sell"),
        "kt10002": modify,
        "kt10003": cancel,
        "kt00001": deposit,
        "kt00018": balance,
        "ka10075": open_orders,
        "ka10076": executions,
        "kt00007": order_history,
    }
