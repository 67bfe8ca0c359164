"""REST handlers for the simulator's orders and account queries, in Kiwoom's wire format.

kt10000-kt10003 (매수/매도/정정/취소) drive `SimExchange`; kt00001 (예수금), kt00018 (잔고),
ka10075 (미체결), ka10076 (체결) and kt00007 (주문체결내역) read it. Every value is a string;
account amounts are zero-padded signed fixed-width numbers as Kiwoom sends them. ka00001
(계좌번호) answers the exchange's account number, so it agrees with the 00/04 pushes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.kiwoom.catalog import all_specs
from engine.sim.exchange import (
    E_BAD_INPUT,
    E_NO_SYMBOL,
    Holding,
    OrderRejected,
    Side,
    SimExchange,
    SimOrder,
)
from engine.sim.rest import RC_INPUT, RestHandler, SimBusinessError, SimReply, input_error
from engine.sim.schema import padded, percent

QUERY_OK = "조회가 완료되었습니다"


def _top_level_fields(api_id: str) -> tuple[str, ...]:
    spec = all_specs()[api_id]
    return tuple(f for f in spec.response if f != spec.list_field)


def _s(body: dict[str, Any], name: str) -> str:
    v = body.get(name)
    return "" if v is None else str(v).strip()


def _int_field(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    raw = _s(body, name)
    if not raw and default is not None:
        return default
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit alone admits "²", which int() refuses
        raise input_error(
            E_BAD_INPUT, f"입력 값 형식이 올바르지 않습니다. 파라미터={name} 실패사유=숫자가 아님"
        )
    return int(raw)


def _order_no_cursor(body: dict[str, Any], name: str) -> int:
    """An optional order-number filter (ka10076 ord_no, kt00007 fr_ord_no); 0 when absent."""
    raw = _s(body, name)
    return int(raw) if raw.isascii() and raw.isdigit() else 0


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
    """Handlers for kt10000-kt10003, ka00001, kt00001, kt00018, ka10075, ka10076 and kt00007.

    Order rejections raise SimBusinessError(return_code 2, "...[NNNN:사유]"); see
    engine.sim.exchange for the codes and for ``reject_mode="push"`` (거부 via realtime 00).
    """
    ex = exchange
    market = ex.market
    # Fields the simulator does not model answer zero, as for a plain cash account.
    kt00001_fields = _top_level_fields("kt00001")

    def _symbol(body: dict[str, Any]) -> str:
        code = _s(body, "stk_cd")
        if not market.has(code):
            raise input_error(E_NO_SYMBOL, f"종목정보가 없습니다. 종목코드={code}")
        return code

    def place(side: Side) -> RestHandler:
        word = _side_word(side)

        async def handler(body: dict[str, Any], next_key: str) -> SimReply:
            stex = _exchange_field(body)
            symbol = _symbol(body)
            qty = _int_field(body, "ord_qty")
            trde_tp = _s(body, "trde_tp")
            # Kept for every type: an IOC or FOK limit order's 00 notices carry its price (the
            # exchange ignores it for a market order).
            price = _int_field(body, "ord_uv", default=0)
            try:
                with ex.collecting() as pushes:
                    order = ex.place(side, symbol, qty, price, trde_tp)
            except OrderRejected as exc:
                raise _rejected(word, exc) from None
            return SimReply(
                {"ord_no": order.ord_no, "dmst_stex_tp": stex},
                return_msg=f"{word}주문이 완료되었습니다",
                send_pushes=ex.sender(pushes),
            )

        return handler

    def _amend(
        body: dict[str, Any], kind: str, apply: Callable[[str, str], SimOrder]
    ) -> tuple[SimOrder, str, str, Callable[[], None]]:
        """Check the request, then `apply(orig_ord_no, symbol)` (a modify or cancel).

        Returns (the new order, dmst_stex_tp, the success message, what sends its pushes);
        raises SimBusinessError.
        """
        stex = _exchange_field(body)
        symbol = _symbol(body)
        orig = _s(body, "orig_ord_no")
        target = ex.order(orig) if orig.isdigit() else None
        label = (_side_word(target.side) if target else "") + kind  # "매수정정", "매도취소"
        try:
            with ex.collecting() as pushes:
                new = apply(orig, symbol)
        except OrderRejected as exc:
            raise _rejected(label, exc) from None
        return new, stex, f"{label} 주문입력이 완료되었습니다", ex.sender(pushes)

    async def modify(body: dict[str, Any], next_key: str) -> SimReply:
        new, stex, msg, pushes = _amend(
            body,
            "정정",
            lambda orig, symbol: ex.modify(
                orig, symbol, _int_field(body, "mdfy_qty"), _int_field(body, "mdfy_uv")
            ),
        )
        return SimReply(
            {
                "ord_no": new.ord_no,
                "base_orig_ord_no": new.base_ord_no,
                "mdfy_qty": padded(new.qty, 12),
                "dmst_stex_tp": stex,
            },
            return_msg=msg,
            send_pushes=pushes,
        )

    async def cancel(body: dict[str, Any], next_key: str) -> SimReply:
        cxl, _stex, msg, pushes = _amend(
            body, "취소", lambda orig, symbol: ex.cancel(orig, symbol, _int_field(body, "cncl_qty"))
        )
        return SimReply(
            {
                "ord_no": cxl.ord_no,
                "base_orig_ord_no": cxl.base_ord_no,
                "cncl_qty": padded(cxl.qty, 12),
            },
            return_msg=msg,
            send_pushes=pushes,
        )

    async def account_number(body: dict[str, Any], next_key: str) -> SimReply:
        return SimReply({"acctNo": ex.account_no})

    async def deposit(body: dict[str, Any], next_key: str) -> SimReply:
        cash = ex.cash
        orderable = ex.orderable_cash()
        out: dict[str, Any] = dict.fromkeys(kt00001_fields, padded(0))
        for name in ("entr", "d1_entra", "d2_entra"):
            out[name] = padded(cash)
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
            out[name] = padded(orderable)
        out["profa_ch"] = padded(cash - orderable)  # cash held against open buy orders
        out["crd_grnt_rt"] = "0.00"
        out["stk_entr_prst"] = []
        return SimReply(out, return_msg=QUERY_OK)

    def _holding_row(h: Holding, total_evlt: int) -> dict[str, Any]:
        cur = market.last_price(h.symbol)
        evlt = cur * h.qty
        pur_cmsn = ex.rates.total(h.cost, sell=False)
        sell_cmsn, tax = ex.rates.charge(evlt, sell=True)
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

    async def balance(body: dict[str, Any], next_key: str) -> SimReply:
        stex = _s(body, "dmst_stex_tp").upper()
        holdings = ex.holdings() if stex in ("", "KRX") else []
        total_evlt = sum(market.last_price(h.symbol) * h.qty for h in holdings)
        rows = [_holding_row(h, total_evlt) for h in holdings]
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
        before = _order_no_cursor(body, "ord_no")
        rows: list[dict[str, Any]] = []
        if _stex_numeric_ok(body):
            for o in reversed(ex.orders()):
                if o.filled_qty == 0 or (only and o.symbol != only):
                    continue
                if not _side_ok(side_flag, o.side):
                    continue
                if before and int(o.ord_no) >= before:  # the cursor: fills older than it
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
        from_no = _order_no_cursor(body, "fr_ord_no")
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
            if from_no and int(o.ord_no) < from_no:
                continue
            confirmed = o.action != "new" and o.confirm_time != ""
            rows.append(
                {
                    "ord_no": o.ord_no,
                    "stk_cd": f"A{o.symbol}",
                    "trde_tp": o.trade_type_name,
                    "crd_tp": "00",
                    "ord_qty": padded(o.qty, 10),
                    "ord_uv": padded(o.price, 10),
                    "cnfm_qty": padded(o.qty if confirmed else 0, 10),
                    "acpt_tp": o.status,
                    "rsrv_tp": "",
                    "ord_tm": _hms_colon(o.time),
                    "ori_ord": o.orig_ord_no,
                    "stk_nm": market.name(o.symbol),
                    "io_tp_nm": o.kind_text,
                    "loan_dt": "",
                    "cntr_qty": padded(o.filled_qty, 10),
                    "cntr_uv": padded(_avg_fill(o), 10),
                    "ord_remnq": padded(o.open_qty, 10),
                    "comm_ord_tp": "",
                    "mdfy_cncl": {"modify": "정정", "cancel": "취소"}.get(o.action, ""),
                    "cnfm_tm": _hms_colon(o.confirm_time),
                    "dmst_stex_tp": "KRX",
                    "cond_uv": padded(0, 10),
                }
            )
        return SimReply({"acnt_ord_cntr_prps_dtl": rows}, return_msg=QUERY_OK)

    return {
        "kt10000": place("buy"),
        "kt10001": place("sell"),
        "kt10002": modify,
        "kt10003": cancel,
        "ka00001": account_number,
        "kt00001": deposit,
        "kt00018": balance,
        "ka10075": open_orders,
        "ka10076": executions,
        "kt00007": order_history,
    }
