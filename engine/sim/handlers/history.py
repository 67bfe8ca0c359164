"""ka10075 (미체결), ka10076 (체결) and kt00007 (주문체결내역): the day's orders as
`SimExchange` keeps them, filtered and ordered as each api-id asks."""

from __future__ import annotations

from typing import Any

from engine.sim.exchange import SimExchange, SimOrder
from engine.sim.handlers.fields import (
    QUERY_OK,
    avg_fill,
    hms_colon,
    order_no_cursor,
    side_ok,
    stex_numeric_ok,
    text,
)
from engine.sim.reply import RestHandler, SimReply
from engine.sim.schema import padded


def _open_row(ex: SimExchange, o: SimOrder) -> dict[str, Any]:
    market = ex.market
    bid, ask = market.best(o.symbol)
    return {
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


def open_orders(ex: SimExchange) -> RestHandler:
    """ka10075: orders that can still fill, newest first."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        only = text(body, "stk_cd") if text(body, "all_stk_tp") == "1" else ""
        side_flag = text(body, "trde_tp")
        rows: list[dict[str, Any]] = []
        if stex_numeric_ok(body):
            for o in reversed(ex.open_orders()):
                if (only and o.symbol != only) or not side_ok(side_flag, o.side):
                    continue
                rows.append(_open_row(ex, o))
        return SimReply({"oso": rows}, return_msg=QUERY_OK)

    return handler


def _execution_row(ex: SimExchange, o: SimOrder) -> dict[str, Any]:
    return {
        "ord_no": o.ord_no,
        "stk_nm": ex.market.name(o.symbol),
        "io_tp_nm": o.kind_text,
        "ord_pric": str(o.price),
        "ord_qty": str(o.qty),
        "cntr_pric": str(avg_fill(o)),
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


def executions(ex: SimExchange) -> RestHandler:
    """ka10076: orders with fills, newest first, older than the `ord_no` cursor if given."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        only = text(body, "stk_cd") if text(body, "qry_tp") == "1" else ""
        side_flag = text(body, "sell_tp")
        before = order_no_cursor(body, "ord_no")
        rows: list[dict[str, Any]] = []
        if stex_numeric_ok(body):
            for o in reversed(ex.orders()):
                if o.filled_qty == 0 or (only and o.symbol != only):
                    continue
                if not side_ok(side_flag, o.side):
                    continue
                if before and int(o.ord_no) >= before:  # the cursor: fills older than it
                    continue
                rows.append(_execution_row(ex, o))
        return SimReply({"cntr": rows}, return_msg=QUERY_OK)

    return handler


def _history_row(ex: SimExchange, o: SimOrder) -> dict[str, Any]:
    confirmed = o.action != "new" and o.confirm_time != ""
    return {
        "ord_no": o.ord_no,
        "stk_cd": f"A{o.symbol}",
        "trde_tp": o.trade_type_name,
        "crd_tp": "00",
        "ord_qty": padded(o.qty, 10),
        "ord_uv": padded(o.price, 10),
        "cnfm_qty": padded(o.qty if confirmed else 0, 10),
        "acpt_tp": o.status,
        "rsrv_tp": "",
        "ord_tm": hms_colon(o.time),
        "ori_ord": o.orig_ord_no,
        "stk_nm": ex.market.name(o.symbol),
        "io_tp_nm": o.kind_text,
        "loan_dt": "",
        "cntr_qty": padded(o.filled_qty, 10),
        "cntr_uv": padded(avg_fill(o), 10),
        "ord_remnq": padded(o.open_qty, 10),
        "comm_ord_tp": "",
        "mdfy_cncl": {"modify": "정정", "cancel": "취소"}.get(o.action, ""),
        "cnfm_tm": hms_colon(o.confirm_time),
        "dmst_stex_tp": "KRX",
        "cond_uv": padded(0, 10),
    }


def order_history(ex: SimExchange) -> RestHandler:
    """kt00007: the day's orders in order (qry_tp 1) or reversed (2), open only (3) or with
    fills only (4), from the `fr_ord_no` cursor on."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        qry_tp = text(body, "qry_tp")
        side_flag = text(body, "sell_tp")
        only = text(body, "stk_cd").removeprefix("A")
        from_no = order_no_cursor(body, "fr_ord_no")
        stex = text(body, "dmst_stex_tp").upper()
        orders = ex.orders() if stex in ("", "%", "KRX") else []
        if qry_tp == "2":
            orders = list(reversed(orders))
        rows: list[dict[str, Any]] = []
        for o in orders:
            if qry_tp == "3" and not o.is_open:
                continue
            if qry_tp == "4" and o.filled_qty == 0:
                continue
            if (only and o.symbol != only) or not side_ok(side_flag, o.side):
                continue
            if from_no and int(o.ord_no) < from_no:
                continue
            rows.append(_history_row(ex, o))
        return SimReply({"acnt_ord_cntr_prps_dtl": rows}, return_msg=QUERY_OK)

    return handler
