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
CONDITION: Final = "02"  # 조건검색 push (after CNSRREQ search_type 1; never REG'd)
VI: Final = "1h"  # VI발동/해제
SESSION: Final = "0s"  # 장시작시간 (장운영구분)
STOCK_INFO: Final = "0g"  # 주식종목정보

ACCOUNT_TYPES: Final = frozenset({ORDER_EXECUTION, BALANCE})
"""Account-level types: registered with item [""] and pushed whatever the item."""
ITEMLESS_TYPES: Final = ACCOUNT_TYPES | {SESSION}
"""Types registered with item [""]: the account's, and the market's session notices (0s)."""
MODELLED_TYPES: Final = frozenset(
    {TRADE, QUOTE, ORDER_BOOK, ORDER_EXECUTION, BALANCE, CONDITION, VI, SESSION, STOCK_INFO}
)
"""Types the codec decodes into their own events (codec.DECODERS), delivered through their
own handlers (on_trade, on_quote, on_book, on_order/on_fill, on_balance, on_condition,
on_vi, on_session): a strategy's `realtime` list names only the others."""

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

CONDITION_FIDS: Final[dict[str, str]] = {
    "condition_seq": "841",  # 조건식 일련번호 (as in the push example)
    "symbol": "9001",
    "change": "843",  # I 편입 / D 이탈 (code table fid_843)
    "time": "20",
}
CONDITION_ENTERED: Final = "I"
CONDITION_LEFT: Final = "D"

VI_FIDS: Final[dict[str, str]] = {
    "symbol": "9001",
    "trigger": "9068",  # VI발동구분: its codes are documented nowhere (see VI_TRIGGER_CODES)
    "trigger_price": "1221",
    "time": "1223",  # 매매체결처리시각 HHmmss
    "release_time": "1224",  # VI해제시각 HHmmss
    "kind": "1225",  # VI적용구분: 정적/동적/동적+정적
    "static_ref": "1236",
    "dynamic_ref": "1237",
    "count": "1490",
}
# Neither code table is in the catalogue. 1225's description names the kinds in this order
# (정적/동적/동적+정적), so a value of that text or its 1-based position is read as that
# kind. 9068 (VI발동구분) is assumed "1" 발동 / "2" 해제 (or the words); with any other value
# the notice is a release when it carries a release time (1224), a trigger otherwise, and the
# codec logs the value once.
VI_KIND_CODES: Final[dict[str, str]] = {
    "정적": "static",
    "동적": "dynamic",
    "동적+정적": "both",
    "정적+동적": "both",
    "1": "static",
    "2": "dynamic",
    "3": "both",
}
VI_TRIGGER_CODES: Final[dict[str, bool]] = {"1": True, "2": False, "발동": True, "해제": False}

SESSION_FIDS: Final[dict[str, str]] = {
    "code": "215",  # 장운영구분 (code table fid_215)
    "time": "20",
    "remaining": "214",  # 장시작예상잔여시간 HHmmss
}
# 0s codes (catalogue code table fid_215_장운영구분_0s) -> (venue, the state it starts). A
# notice ("알림") starts the auction before the event it announces: 0 (08:40) the opening
# auction, 2 (15:20) the closing auction. Codes e/f/o/s are futures and options notices: the
# engine trades stocks, so SESSION_IGNORED lists them and they are skipped.
SESSION_STATES: Final[dict[str, tuple[str, str]]] = {
    "0": ("KRX", "opening_auction"),
    "3": ("KRX", "regular"),
    "2": ("KRX", "closing_auction"),
    "4": ("KRX", "closed"),
    "8": ("KRX", "closed"),
    "a": ("KRX", "post_close"),
    "b": ("KRX", "closed"),
    "c": ("KRX", "after_hours_single"),
    "d": ("KRX", "closed"),
    "9": ("KRX", "closed"),
    "P": ("NXT", "nxt_pre"),
    "Q": ("NXT", "closed"),
    "R": ("NXT", "regular"),
    "S": ("NXT", "closed"),
    "T": ("NXT", "nxt_after"),
    "U": ("NXT", "nxt_after"),
    "V": ("NXT", "closed"),
}
SESSION_IGNORED: Final = frozenset({"e", "f", "o", "s"})

STOCK_INFO_FIDS: Final[dict[str, str]] = {
    "upper_limit": "305",
    "lower_limit": "306",
    "base_price": "307",
    "extension": "297",
    "pre_extension": "592",
    "post_extension": "593",
    "info": "370",
}

# Code tables (catalogue code_tables fid_913/fid_907/fid_2134/fid_290).
ORDER_STATUS_CODES: Final = ("접수", "체결", "확인", "취소", "거부")
SIDE_SELL: Final = "1"
SIDE_BUY: Final = "2"
EXCHANGE_CODES: Final = {"0": "SOR", "1": "KRX", "2": "NXT"}
# FID 290 장구분 1 장전 시간외 / 2 장중 / 3 장후 시간외; 3 does not say which after-hours
# session (종가 or 단일가): read as post_close.
SESSION_CODES: Final = {"1": "pre_open_after_hours", "2": "regular", "3": "post_close"}
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
        VI: set(VI_FIDS.values()),
        SESSION: set(SESSION_FIDS.values()),
        STOCK_INFO: set(STOCK_INFO_FIDS.values()),
    }
