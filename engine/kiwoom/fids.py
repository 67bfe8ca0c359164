"""Kiwoom realtime FID numbers -> engine field names, for the types the engine models.

The only place outside the catalogue where FID numbers live. Every FID here exists in the
catalogue's `fids` table for its type (tests/kiwoom/test_codec.py checks it).
"""

from __future__ import annotations

from typing import Final

ORDER_EXECUTION: Final = "00"
BALANCE: Final = "04"
TRADE: Final = "0B"
QUOTE: Final = "0C"
ORDER_BOOK: Final = "0D"

ACCOUNT_TYPES: Final = frozenset({ORDER_EXECUTION, BALANCE})
"""Account-level types: registered with item [""] and pushed whatever the item."""

TRADE_FIDS: Final[dict[str, str]] = {
    "time": "20",  # 체결시간 HHmmss
    "price": "10",  # 현재가 (direction-signed)
    "qty": "15",  # 거래량 (+ 매수체결 / - 매도체결)
    "cum_volume": "13",  # 누적거래량
    "change": "11",  # 전일대비 (truly signed)
    "best_ask": "27",
    "best_bid": "28",
    "open": "16",
    "high": "17",
    "low": "18",
    "session": "290",  # 장구분 1/2/3
}

QUOTE_FIDS: Final[dict[str, str]] = {"best_ask": "27", "best_bid": "28"}

BOOK_TIME: Final = "21"
BOOK_ASK_PRICES: Final = tuple(str(f) for f in range(41, 51))
BOOK_BID_PRICES: Final = tuple(str(f) for f in range(51, 61))
BOOK_ASK_QTYS: Final = tuple(str(f) for f in range(61, 71))
BOOK_BID_QTYS: Final = tuple(str(f) for f in range(71, 81))
BOOK_TOTAL_ASK: Final = "121"
BOOK_TOTAL_BID: Final = "125"

ORDER_EXECUTION_FIDS: Final[dict[str, str]] = {
    "account": "9201",
    "order_no": "9203",
    "symbol": "9001",
    "status": "913",
    "name": "302",
    "order_qty": "900",
    "order_price": "901",
    "unfilled_qty": "902",
    "cum_fill_amount": "903",
    "orig_order_no": "904",
    "kind": "905",  # 주문구분 "+매수", "-매도", "매수정정", "매도취소", ...
    "order_type": "906",  # 매매구분 by name: 보통, 시장가, ...
    "side": "907",  # 1 매도, 2 매수
    "time": "908",
    "fill_no": "909",
    "fill_price": "910",
    "fill_qty": "911",
    "unit_fill_price": "914",
    "unit_fill_qty": "915",
    "fee": "938",
    "tax": "939",
    "reject_reason": "919",
    "exchange": "2134",  # 0 통합, 1 KRX, 2 NXT
    "sor": "2136",  # Y/N
}

BALANCE_FIDS: Final[dict[str, str]] = {
    "account": "9201",
    "symbol": "9001",
    "credit_kind": "917",
    "loan_date": "916",
    "name": "302",
    "price": "10",
    "qty": "930",
    "avg_price": "931",
    "total_cost": "932",
    "orderable_qty": "933",
    "today_net_buy_qty": "945",
    "side_kind": "946",
    "today_sell_pnl": "950",
    "best_ask": "27",
    "best_bid": "28",
    "base_price": "307",
    "realized_pnl_rate": "8019",
    "credit_amount": "957",
    "credit_interest": "958",
    "maturity_date": "918",
    "today_realized_pnl": "990",
    "today_realized_pnl_rate": "991",
    "today_credit_realized_pnl": "992",
    "today_credit_realized_pnl_rate": "993",
    "collateral_loan_qty": "959",
}

# Code tables (catalogue code_tables fid_913/fid_907/fid_2134/fid_290).
ORDER_STATUS_CODES: Final = ("접수", "체결", "확인", "취소", "거부")
SIDE_SELL: Final = "1"
SIDE_BUY: Final = "2"
EXCHANGE_CODES: Final = {"0": "SOR", "1": "KRX", "2": "NXT"}
SESSION_CODES: Final = {"1": "pre", "2": "regular", "3": "post"}
ITEM_SUFFIX_NXT: Final = "_NX"
ITEM_SUFFIX_SOR: Final = "_AL"


def used_fids() -> dict[str, set[str]]:
    """Every FID this module refers to, by realtime type (for the catalogue check)."""
    book = {BOOK_TIME, BOOK_TOTAL_ASK, BOOK_TOTAL_BID}
    book.update(BOOK_ASK_PRICES, BOOK_BID_PRICES, BOOK_ASK_QTYS, BOOK_BID_QTYS)
    return {
        TRADE: set(TRADE_FIDS.values()),
        QUOTE: set(QUOTE_FIDS.values()),
        ORDER_BOOK: book,
        ORDER_EXECUTION: set(ORDER_EXECUTION_FIDS.values()),
        BALANCE: set(BALANCE_FIDS.values()),
    }
