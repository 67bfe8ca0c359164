"""kt10000-kt10003 (매수/매도/정정/취소): order entry against `SimExchange`.

A refused order raises SimBusinessError(return_code 2, "...[NNNN:사유]"); see
engine.sim.exchange for the codes and for ``reject_mode="push"`` (거부 via realtime 00). Each
answer carries the function that sends the order's 00/04 pushes (`SimReply.send_pushes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.sim.exchange import OrderRejected, Side, SimExchange, SimOrder
from engine.sim.handlers.fields import (
    exchange_field,
    int_field,
    rejected,
    side_word,
    symbol_field,
    text,
)
from engine.sim.reply import RestHandler, SimReply
from engine.sim.schema import padded


def place(ex: SimExchange, side: Side) -> RestHandler:
    """kt10000 (buy) or kt10001 (sell)."""
    word = side_word(side)

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        stex = exchange_field(body, ex.venue_open)
        symbol = symbol_field(ex, body)
        qty = int_field(body, "ord_qty")
        trde_tp = text(body, "trde_tp")
        # Kept for every type: an IOC or FOK limit order's 00 notices carry its price (the
        # exchange ignores it for a market order).
        price = int_field(body, "ord_uv", default=0)
        try:
            with ex.collecting() as pushes:
                order = ex.place(side, symbol, qty, price, trde_tp, venue=stex)
        except OrderRejected as exc:
            raise rejected(word, exc) from None
        return SimReply(
            {"ord_no": order.ord_no, "dmst_stex_tp": stex},
            return_msg=f"{word}주문이 완료되었습니다",
            send_pushes=ex.sender(pushes),
        )

    return handler


def _amend(
    ex: SimExchange, body: dict[str, Any], kind: str, apply: Callable[[str, str], SimOrder]
) -> tuple[SimOrder, str, str, Callable[[], None]]:
    """Check the request, then `apply(orig_ord_no, symbol)` (a modify or cancel).

    Returns (the new order, dmst_stex_tp, the success message, what sends its pushes);
    raises SimBusinessError.
    """
    stex = exchange_field(body, ex.venue_open)
    symbol = symbol_field(ex, body)
    orig = text(body, "orig_ord_no")
    target = ex.order(orig) if orig.isdigit() else None
    label = (side_word(target.side) if target else "") + kind  # "매수정정", "매도취소"
    try:
        with ex.collecting() as pushes:
            new = apply(orig, symbol)
    except OrderRejected as exc:
        raise rejected(label, exc) from None
    return new, stex, f"{label} 주문입력이 완료되었습니다", ex.sender(pushes)


def modify(ex: SimExchange) -> RestHandler:
    """kt10002: a new order number for the moved quantity at the new price."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        new, stex, msg, pushes = _amend(
            ex,
            body,
            "정정",
            lambda orig, symbol: ex.modify(
                orig, symbol, int_field(body, "mdfy_qty"), int_field(body, "mdfy_uv")
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

    return handler


def cancel(ex: SimExchange) -> RestHandler:
    """kt10003: a cancel order under a new number."""

    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        cxl, _stex, msg, pushes = _amend(
            ex,
            body,
            "취소",
            lambda orig, symbol: ex.cancel(orig, symbol, int_field(body, "cncl_qty")),
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

    return handler
