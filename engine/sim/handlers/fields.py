"""Reading an order or account request's body, and the words Kiwoom's answers use for it.

Every request value is a string; these turn them into what the handlers need or raise the
SimBusinessError Kiwoom answers for a bad one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.kiwoom.catalog import all_specs
from engine.sim.exchange import (
    E_BAD_INPUT,
    E_NO_SYMBOL,
    E_VENUE,
    E_VENUE_CLOSED,
    OrderRejected,
    Side,
    SimExchange,
    SimOrder,
)
from engine.sim.reply import RC_INPUT, SimBusinessError, input_error

QUERY_OK = "조회가 완료되었습니다"


def top_level_fields(api_id: str) -> tuple[str, ...]:
    spec = all_specs()[api_id]
    return tuple(f for f in spec.response if f != spec.list_field)


def text(body: dict[str, Any], name: str) -> str:
    v = body.get(name)
    return "" if v is None else str(v).strip()


def int_field(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    raw = text(body, name)
    if not raw and default is not None:
        return default
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit alone admits "²", which int() refuses
        raise input_error(
            E_BAD_INPUT, f"입력 값 형식이 올바르지 않습니다. 파라미터={name} 실패사유=숫자가 아님"
        )
    return int(raw)


def order_no_cursor(body: dict[str, Any], name: str) -> int:
    """An optional order-number filter (ka10076 ord_no, kt00007 fr_ord_no); 0 when absent."""
    raw = text(body, name)
    return int(raw) if raw.isascii() and raw.isdigit() else 0


VENUES = ("KRX", "NXT", "SOR")


def exchange_field(body: dict[str, Any], venue_open: Callable[[str], bool]) -> str:
    """The order's dmst_stex_tp: KRX, NXT or SOR, refused when its venue's notional session
    takes no orders (SOR: when neither does)."""
    tp = text(body, "dmst_stex_tp").upper()
    if tp not in VENUES:
        raise SimBusinessError(
            RC_INPUT,
            f"주문이 거부되었습니다[{E_VENUE}:지원하지 않는 거래소구분입니다({tp}): "
            "KRX, NXT, SOR만 가능]",
        )
    open_now = venue_open("KRX") or venue_open("NXT") if tp == "SOR" else venue_open(tp)
    if not open_now:
        raise SimBusinessError(
            RC_INPUT, f"주문이 거부되었습니다[{E_VENUE_CLOSED}:{tp} 주문 가능 시간이 아닙니다]"
        )
    return tp


def symbol_field(ex: SimExchange, body: dict[str, Any]) -> str:
    code = text(body, "stk_cd")
    if not ex.market.has(code):
        raise input_error(E_NO_SYMBOL, f"종목정보가 없습니다. 종목코드={code}")
    return code


def rejected(label: str, exc: OrderRejected) -> SimBusinessError:
    return SimBusinessError(RC_INPUT, f"{label}주문이 거부되었습니다[{exc.code}:{exc.reason}]")


def side_word(side: Side) -> str:
    return "매수" if side == "buy" else "매도"


def side_ok(flag: str, side: Side) -> bool:
    """ka10075 trde_tp / ka10076, kt00007 sell_tp: 0 전체, 1 매도, 2 매수."""
    return flag in ("", "0") or (flag == "1") == (side == "sell")


def stex_numeric_ok(body: dict[str, Any]) -> bool:
    """ka10075 / ka10076 stex_tp: 0 통합 or 1 KRX (the simulator is KRX only)."""
    return text(body, "stex_tp") in ("", "0", "1")


def avg_fill(o: SimOrder) -> int:
    return o.filled_value // o.filled_qty if o.filled_qty else 0


def hms_colon(hms: str) -> str:
    return f"{hms[0:2]}:{hms[2:4]}:{hms[4:6]}" if len(hms) == 6 else ""
