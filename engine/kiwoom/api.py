"""Typed wrappers over KiwoomRest for what the engine needs: quotes, candles, orders, balances,
open orders, executions and order history.

Kiwoom field names and codes stop here: callers get engine.models dataclasses with int KRW and
share counts. Every method may block on the network and raises what KiwoomRest.call raises,
plus ValidationError for arguments Kiwoom would refuse, and KiwoomError for a malformed answer.

The order calls (buy, sell, modify, cancel) end in exactly one of:
- an OrderAck: Kiwoom took the order, under `order_no`;
- OutcomeUnknownError (``reason`` says why: a timeout, a reset, a 5xx, an unreadable answer,
  ``cancelled`` for a caller cancelled while the POST was on the wire, ``no_order_no`` for an
  answer with return_code 0 but no readable order number): it may be live. Reconcile
  (ka10075 / ka10076 / kt00007, the 00 feed); never resend it;
- any other KiwoomError: proof it was not taken. ValidationError (refused before sending),
  BrokerError and its RateLimitError / AuthError (Kiwoom said no), OrderExpiredError (its
  `deadline` passed before it could be sent), or a TransportError that is not an
  OutcomeUnknownError (it never left: no connection, or the client was closing);
- CancelledError only when cancelled before its POST started: nothing was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, TypeVar

import structlog

from engine.clock import KST
from engine.events import Quote
from engine.kiwoom import numbers
from engine.kiwoom.errors import (
    KiwoomError,
    OutcomeUnknownError,
    UnknownOutcome,
    ValidationError,
)
from engine.kiwoom.rest import KiwoomRest, Pages
from engine.models import (
    PRICELESS_ORDER_TYPES,
    AccountBalance,
    Candle,
    CashBalance,
    Exchange,
    Execution,
    Holding,
    Listed,
    ListedMarket,
    OpenOrder,
    OrderAck,
    OrderAction,
    OrderRecord,
    OrderType,
    Side,
    StockInfo,
)

T = TypeVar("T")

# mrkt_tp of ka10099 (the catalog's request field): the markets whose lists we read.
MRKT_TP: Mapping[ListedMarket, str] = {ListedMarket.KOSPI: "0", ListedMarket.KOSDAQ: "10"}

log = structlog.get_logger(__name__)

# trde_tp of kt10000 / kt10001 (facts sheet, section f)
TRDE_TP: Mapping[OrderType, str] = {
    OrderType.LIMIT: "0",
    OrderType.MARKET: "3",
    OrderType.CONDITIONAL_LIMIT: "5",
    OrderType.BEST_LIMIT: "6",
    OrderType.PRIORITY_LIMIT: "7",
    OrderType.LIMIT_IOC: "10",
    OrderType.MARKET_IOC: "13",
    OrderType.BEST_IOC: "16",
    OrderType.LIMIT_FOK: "20",
    OrderType.MARKET_FOK: "23",
    OrderType.BEST_FOK: "26",
    OrderType.STOP_LIMIT: "28",
    OrderType.MID: "29",
    OrderType.MID_IOC: "30",
    OrderType.MID_FOK: "31",
    OrderType.PRE_MARKET_CLOSE: "61",
    OrderType.AFTER_HOURS_CLOSE: "81",
    OrderType.AFTER_HOURS_SINGLE: "62",
}
# ka10075 / ka10076 sell_tp / trde_tp filter: 0 all, 1 sell, 2 buy
_SIDE_FILTER = {None: "0", Side.SELL: "1", Side.BUY: "2"}
# ka10075 / ka10076 stex_tp: 0 통합, 1 KRX, 2 NXT (SOR is not a venue: all)
_STEX_TP_ACCOUNT = {None: "0", Exchange.KRX: "1", Exchange.NXT: "2", Exchange.SOR: "0"}
_NO_ORIGINAL = frozenset({"", "0000000"})


def _s(row: Mapping[str, Any], key: str) -> str:
    v = row.get(key, "")
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _num(api_id: str, row: Mapping[str, Any], key: str, fn: Callable[[str], T]) -> T:
    """`fn` applied to the field; its ValueError becomes a KiwoomError naming the field."""
    try:
        return fn(_s(row, key))
    except ValueError:
        raise KiwoomError(f"{api_id}: field {key} is malformed: {_s(row, key)[:20]!r}") from None


def _order_row(
    a: str,
    r: Mapping[str, Any],
    *,
    price: str,
    fill_price: str,
    orig: str,
    tm: str,
    exchange: str,
) -> dict[str, Any]:
    """The fields every order view (ka10075, ka10076, kt00007) shares, under their names."""
    return {
        "order_no": _s(r, "ord_no").strip(),
        "symbol": _num(a, r, "stk_cd", numbers.code),
        "name": _s(r, "stk_nm").strip(),
        "side": _side(_s(r, "io_tp_nm")),
        "qty": _num(a, r, "ord_qty", numbers.unsigned),
        "price": _num(a, r, price, numbers.price),
        "filled_qty": _num(a, r, "cntr_qty", numbers.unsigned),
        "fill_price": _num(a, r, fill_price, numbers.price),
        "original_order_no": _orig(_s(r, orig)),
        "time": _hhmmss(_s(r, tm)),
        "exchange": _s(r, exchange).strip(),
    }


def _side(label: str) -> Side | None:
    if "매수" in label:
        return Side.BUY
    if "매도" in label:
        return Side.SELL
    return None


def _hhmmss(value: str) -> time | None:
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) < 6:
        return None
    try:
        return time(int(digits[0:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return None


def _action(label: str) -> OrderAction:
    """kt00007's 정정/취소 label (e.g. "정정", "취소", "현금매수정정"): what the row is."""
    if "정정" in label:
        return OrderAction.AMEND
    if "취소" in label:
        return OrderAction.CANCEL
    return OrderAction.NEW


def _orig(value: str) -> str | None:
    v = value.strip()
    return None if v in _NO_ORIGINAL or not v.strip("0") else v


def _plain_symbol(symbol: str) -> str:
    s = symbol.strip()
    if not s or "_" in s or len(s) > 12:
        raise ValidationError(f"symbol must be a plain code like '005930', got {symbol!r}")
    return s


def _symbol_filter(symbol: str | None) -> str:
    return "" if symbol is None else _plain_symbol(symbol)


def _positive(name: str, value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{name} must be a positive int, got {value!r}")
    return str(value)


def _non_negative(name: str, value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{name} must be an int >= 0, got {value!r}")
    return str(value)


class KiwoomApi:
    """Domain-typed calls over an open KiwoomRest."""

    def __init__(self, rest: KiwoomRest) -> None:
        self.rest = rest

    # --- market data -------------------------------------------------------------------

    async def stock_info(self, symbol: str, exchange: Exchange = Exchange.KRX) -> StockInfo:
        """ka10001: the symbol's current quote and reference data."""
        stk_cd = numbers.with_exchange(_plain_symbol(symbol), exchange.value)
        b = (await self.rest.call("ka10001", {"stk_cd": stk_cd})).body
        a = "ka10001"
        return StockInfo(
            symbol=_num(a, b, "stk_cd", lambda v: numbers.split_exchange(v or stk_cd)[0]),
            name=_s(b, "stk_nm").strip(),
            price=_num(a, b, "cur_prc", numbers.price),
            change=_num(a, b, "pred_pre", numbers.signed),
            change_pct=_num(a, b, "flu_rt", numbers.rate),
            open=_num(a, b, "open_pric", numbers.price),
            high=_num(a, b, "high_pric", numbers.price),
            low=_num(a, b, "low_pric", numbers.price),
            upper_limit=_num(a, b, "upl_pric", numbers.price),
            lower_limit=_num(a, b, "lst_pric", numbers.price),
            base_price=_num(a, b, "base_pric", numbers.price),
            volume=_num(a, b, "trde_qty", numbers.price),
            listed_shares_k=_num(a, b, "flo_stk", numbers.price),
            market_cap_100m=_num(a, b, "mac", numbers.price),
        )

    async def listed(self, market: ListedMarket) -> list[Listed]:
        """ka10099: every symbol listed on `market`, with its name (all pages). Rows without a
        code or a name are left out."""
        pages = await self.rest.call_all("ka10099", {"mrkt_tp": MRKT_TP[market]})
        out = []
        for row in pages.rows:
            symbol, name = _s(row, "code").strip(), _s(row, "name").strip()
            if symbol and name:
                out.append(Listed(symbol=symbol, name=name, market=market))
        return out

    async def best_quote(self, symbol: str, exchange: Exchange = Exchange.KRX) -> Quote:
        """ka10004 (주식호가요청): the best ask and bid now, as a `Quote` (0 for an empty
        side). Raises as `stock_info`."""
        stk_cd = numbers.with_exchange(_plain_symbol(symbol), exchange.value)
        b = (await self.rest.call("ka10004", {"stk_cd": stk_cd})).body
        a = "ka10004"
        return Quote(
            symbol=_plain_symbol(symbol),
            exchange=exchange,
            best_ask=_num(a, b, "sel_fpr_bid", numbers.price),
            best_bid=_num(a, b, "buy_fpr_bid", numbers.price),
        )

    async def minute_candles(
        self,
        symbol: str,
        minutes: int = 1,
        *,
        adjusted: bool = True,
        base_date: date | None = None,
        exchange: Exchange = Exchange.KRX,
        max_pages: int | None = 1,
    ) -> list[Candle]:
        """ka10080: minute bars, newest first. `minutes` is one of 1,3,5,10,15,30,45,60."""
        if minutes not in (1, 3, 5, 10, 15, 30, 45, 60):
            raise ValidationError(f"minutes must be one of 1,3,5,10,15,30,45,60, got {minutes!r}")
        body = {
            "stk_cd": numbers.with_exchange(_plain_symbol(symbol), exchange.value),
            "tic_scope": str(minutes),
            "upd_stkpc_tp": "1" if adjusted else "0",
        }
        if base_date is not None:
            body["base_dt"] = base_date.strftime("%Y%m%d")
        rows = (await self.rest.call_all("ka10080", body, max_pages)).rows
        return [self._candle("ka10080", r, "cntr_tm") for r in rows]

    async def daily_candles(
        self,
        symbol: str,
        base_date: date,
        *,
        adjusted: bool = True,
        exchange: Exchange = Exchange.KRX,
        max_pages: int | None = None,
    ) -> list[Candle]:
        """ka10081: daily bars counting back from `base_date`, newest first, every page
        (bounded by `max_pages`, default config.kiwoom.max_pages)."""
        body = {
            "stk_cd": numbers.with_exchange(_plain_symbol(symbol), exchange.value),
            "base_dt": base_date.strftime("%Y%m%d"),
            "upd_stkpc_tp": "1" if adjusted else "0",
        }
        rows = (await self.rest.call_all("ka10081", body, max_pages)).rows
        return [self._candle("ka10081", r, "dt") for r in rows]

    @staticmethod
    def _candle(api_id: str, r: Mapping[str, Any], time_key: str) -> Candle:
        raw = "".join(c for c in _s(r, time_key) if c.isdigit())
        # A whole yyyyMMdd or yyyyMMddHHmmss only: strptime would read "202411" as 2024-01-01.
        fmt = {8: "%Y%m%d", 14: "%Y%m%d%H%M%S"}.get(len(raw)) if raw.isascii() else None
        try:
            at = datetime.strptime(raw, fmt).replace(tzinfo=KST) if fmt else None
        except ValueError:
            at = None
        if at is None:
            raise KiwoomError(f"{api_id}: bad bar time {raw[:20]!r}")
        turnover = _s(r, "trde_prica")
        return Candle(
            at=at,
            open=_num(api_id, r, "open_pric", numbers.price),
            high=_num(api_id, r, "high_pric", numbers.price),
            low=_num(api_id, r, "low_pric", numbers.price),
            close=_num(api_id, r, "cur_prc", numbers.price),
            volume=_num(api_id, r, "trde_qty", numbers.price),
            turnover_m=_num(api_id, r, "trde_prica", numbers.price) if turnover.strip() else None,
        )

    # --- orders ------------------------------------------------------------------------

    async def buy(
        self,
        symbol: str,
        qty: int,
        order_type: OrderType = OrderType.LIMIT,
        price: int | None = None,
        *,
        exchange: Exchange = Exchange.KRX,
        stop_price: int | None = None,
        deadline: float | None = None,
        shield: bool = True,
    ) -> OrderAck:
        """kt10000. Ends as the module docstring says; never sent after `deadline`
        (`clock.monotonic()` seconds), when given: OrderExpiredError. `shield`: see
        KiwoomRest.call."""
        return await self._place(
            "kt10000", symbol, qty, order_type, price, exchange, stop_price, deadline, shield
        )

    async def sell(
        self,
        symbol: str,
        qty: int,
        order_type: OrderType = OrderType.LIMIT,
        price: int | None = None,
        *,
        exchange: Exchange = Exchange.KRX,
        stop_price: int | None = None,
        deadline: float | None = None,
        shield: bool = True,
    ) -> OrderAck:
        """kt10001. Ends as the module docstring says; never sent after `deadline`
        (`clock.monotonic()` seconds), when given: OrderExpiredError. `shield`: see
        KiwoomRest.call."""
        return await self._place(
            "kt10001", symbol, qty, order_type, price, exchange, stop_price, deadline, shield
        )

    async def _place(
        self,
        api_id: str,
        symbol: str,
        qty: int,
        order_type: OrderType,
        price: int | None,
        exchange: Exchange,
        stop_price: int | None,
        deadline: float | None,
        shield: bool = True,
    ) -> OrderAck:
        order_type = OrderType(order_type)
        if order_type in PRICELESS_ORDER_TYPES:
            if price is not None:
                raise ValidationError(f"{order_type.value} orders take no price")
            ord_uv = ""
        else:
            if price is None:
                raise ValidationError(f"{order_type.value} orders need a price")
            ord_uv = _positive("price", price)
        if order_type is OrderType.STOP_LIMIT:
            if stop_price is None:
                raise ValidationError("stop_limit orders need a stop_price")
            cond_uv = _positive("stop_price", stop_price)
        elif stop_price is not None:
            raise ValidationError("stop_price is only for stop_limit orders")
        else:
            cond_uv = ""
        body = {
            "dmst_stex_tp": Exchange(exchange).value,
            "stk_cd": _plain_symbol(symbol),
            "ord_qty": _positive("qty", qty),
            "ord_uv": ord_uv,
            "trde_tp": TRDE_TP[order_type],
            "cond_uv": cond_uv,
        }
        answer = await self.rest.call(api_id, body, deadline=deadline, shield=shield)
        return self._ack(api_id, answer.body, None)

    async def modify(
        self,
        original_order_no: str,
        symbol: str,
        qty: int,
        price: int,
        *,
        exchange: Exchange = Exchange.KRX,
        stop_price: int | None = None,
        deadline: float | None = None,
    ) -> OrderAck:
        """kt10002: amend price (and quantity; 0 = all remaining). The ack has a NEW order_no.
        Ends as the module docstring says; never sent after `deadline`, when given."""
        body = {
            "dmst_stex_tp": Exchange(exchange).value,
            "orig_ord_no": self._order_no(original_order_no),
            "stk_cd": _plain_symbol(symbol),
            "mdfy_qty": _non_negative("qty", qty),
            "mdfy_uv": _positive("price", price),
            "mdfy_cond_uv": "" if stop_price is None else _positive("stop_price", stop_price),
        }
        answer = await self.rest.call("kt10002", body, deadline=deadline)
        return self._ack("kt10002", answer.body, "mdfy_qty")

    async def cancel(
        self,
        original_order_no: str,
        symbol: str,
        qty: int = 0,
        *,
        exchange: Exchange = Exchange.KRX,
        deadline: float | None = None,
    ) -> OrderAck:
        """kt10003: cancel `qty` shares (0 = all remaining). The ack has a NEW order_no.
        Ends as the module docstring says; never sent after `deadline`, when given."""
        body = {
            "dmst_stex_tp": Exchange(exchange).value,
            "orig_ord_no": self._order_no(original_order_no),
            "stk_cd": _plain_symbol(symbol),
            "cncl_qty": _non_negative("qty", qty),
        }
        answer = await self.rest.call("kt10003", body, deadline=deadline)
        return self._ack("kt10003", answer.body, "cncl_qty")

    @staticmethod
    def _order_no(value: str) -> str:
        v = value.strip()
        if not v or not v.isdigit():
            raise ValidationError(f"order number must be digits, got {value!r}")
        return v

    @staticmethod
    def _ack(api_id: str, b: Mapping[str, Any], qty_key: str | None) -> OrderAck:
        """The ack of a taken order (return_code 0). Without a readable order number the
        order may be live under a number we do not know: outcome unknown, not an error that
        reads as "refused". Any other field that does not parse is left out (None)."""
        ord_no = _s(b, "ord_no").strip()
        if not (ord_no.isascii() and ord_no.isdigit()):
            # Debug only: the OMS logs the order's unknown outcome once, with its client id.
            log.debug("order_outcome_unknown", api_id=api_id, reason=UnknownOutcome.NO_ORDER_NO)
            raise OutcomeUnknownError(api_id, UnknownOutcome.NO_ORDER_NO)
        exch = _s(b, "dmst_stex_tp").strip()
        qty: int | None = None
        if qty_key and _s(b, qty_key):
            try:
                qty = numbers.unsigned(_s(b, qty_key))
            except ValueError:
                log.warning("order_ack_field_malformed", api_id=api_id, field=qty_key)
        return OrderAck(
            order_no=ord_no,
            exchange=Exchange(exch) if exch in Exchange.__members__ else None,
            original_order_no=_orig(_s(b, "base_orig_ord_no")),
            qty=qty,
            message=_s(b, "return_msg").strip(),
        )

    # --- account -----------------------------------------------------------------------

    async def account_number(self) -> str:
        """ka00001: the app key's account number (10 digits). Raises KiwoomError, and
        BrokerError for an answer without one."""
        body = (await self.rest.call("ka00001", {})).body
        number = _s(body, "acctNo").strip()
        if not number.isdigit():
            raise KiwoomError("ka00001: the answer has no account number")
        return number

    async def cash_balance(self, *, estimated: bool = False) -> CashBalance:
        """kt00001: deposit and orderable cash (`estimated` = 추정조회)."""
        a = "kt00001"
        b = (await self.rest.call(a, {"qry_tp": "3" if estimated else "2"})).body
        return CashBalance(
            deposit=_num(a, b, "entr", numbers.signed),
            orderable=_num(a, b, "ord_alow_amt", numbers.signed),
            withdrawable=_num(a, b, "pymn_alow_amt", numbers.signed),
            d1_deposit=_num(a, b, "d1_entra", numbers.signed),
            d2_deposit=_num(a, b, "d2_entra", numbers.signed),
        )

    async def account_balance(self, exchange: Exchange = Exchange.KRX) -> AccountBalance:
        """kt00018: totals and every holding (all pages). `exchange` is KRX or NXT."""
        if exchange is Exchange.SOR:
            raise ValidationError("account balance is per venue: KRX or NXT")
        a = "kt00018"
        pages = await self._complete(a, {"qry_tp": "1", "dmst_stex_tp": exchange.value})
        b = pages.pages[0].body
        holdings = tuple(
            Holding(
                symbol=_num(a, r, "stk_cd", numbers.code),
                name=_s(r, "stk_nm").strip(),
                qty=_num(a, r, "rmnd_qty", numbers.unsigned),  # a cash account holds >= 0
                sellable_qty=_num(a, r, "trde_able_qty", numbers.unsigned),
                avg_price=_num(a, r, "pur_pric", numbers.price),
                price=_num(a, r, "cur_prc", numbers.price),
                purchase_amount=_num(a, r, "pur_amt", numbers.signed),
                eval_amount=_num(a, r, "evlt_amt", numbers.signed),
                pnl=_num(a, r, "evltv_prft", numbers.signed),
                pnl_pct=_num(a, r, "prft_rt", numbers.rate),
            )
            for r in pages.rows
            if _s(r, "stk_cd").strip()
        )
        return AccountBalance(
            purchase_amount=_num(a, b, "tot_pur_amt", numbers.signed),
            eval_amount=_num(a, b, "tot_evlt_amt", numbers.signed),
            pnl=_num(a, b, "tot_evlt_pl", numbers.signed),
            pnl_pct=_num(a, b, "tot_prft_rt", numbers.rate),
            estimated_assets=_num(a, b, "prsm_dpst_aset_amt", numbers.signed),
            holdings=holdings,
        )

    async def _complete(self, api_id: str, body: Mapping[str, Any]) -> Pages:
        """Every page of an account view. A view cut short (max-page guard, a missing or
        repeated next-key) raises KiwoomError: a missing open order or holding would make
        the engine act on a wrong position."""
        pages = await self.rest.call_all(api_id, body)
        if pages.truncated:
            raise KiwoomError(
                f"{api_id}: incomplete answer, stopped after {len(pages.pages)} pages"
            )
        return pages

    async def _order_rows(self, api_id: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows = (await self._complete(api_id, body)).rows
        return [r for r in rows if _s(r, "ord_no").strip()]

    async def open_orders(
        self,
        symbol: str | None = None,
        side: Side | None = None,
        exchange: Exchange | None = None,
    ) -> list[OpenOrder]:
        """ka10075: orders with quantity still open (all pages)."""
        a = "ka10075"
        body = {
            "all_stk_tp": "0" if symbol is None else "1",
            "trde_tp": _SIDE_FILTER[side],
            "stk_cd": _symbol_filter(symbol),
            "stex_tp": _STEX_TP_ACCOUNT[exchange],
        }
        return [
            OpenOrder(
                **_order_row(
                    a,
                    r,
                    price="ord_pric",
                    fill_price="cntr_pric",
                    orig="orig_ord_no",
                    tm="tm",
                    exchange="stex_tp_txt",
                ),
                status=_s(r, "ord_stt").strip(),
                open_qty=_num(a, r, "oso_qty", numbers.unsigned),
                order_type=_s(r, "trde_tp").strip(),
            )
            for r in await self._order_rows(a, body)
        ]

    async def executions(
        self,
        symbol: str | None = None,
        side: Side | None = None,
        exchange: Exchange | None = None,
        before_order_no: str | None = None,
    ) -> list[Execution]:
        """ka10076: today's orders with fills (all pages); `before_order_no` returns older."""
        a = "ka10076"
        body = {
            "stk_cd": _symbol_filter(symbol),
            "qry_tp": "0" if symbol is None else "1",
            "sell_tp": _SIDE_FILTER[side],
            "ord_no": "" if before_order_no is None else self._order_no(before_order_no),
            "stex_tp": _STEX_TP_ACCOUNT[exchange],
        }
        return [
            Execution(
                **_order_row(
                    a,
                    r,
                    price="ord_pric",
                    fill_price="cntr_pric",
                    orig="orig_ord_no",
                    tm="ord_tm",
                    exchange="stex_tp_txt",
                ),
                open_qty=_num(a, r, "oso_qty", numbers.unsigned),
                fee=_num(a, r, "tdy_trde_cmsn", numbers.signed),
                tax=_num(a, r, "tdy_trde_tax", numbers.signed),
                status=_s(r, "ord_stt").strip(),
            )
            for r in await self._order_rows(a, body)
        ]

    async def order_history(
        self,
        order_date: date | None = None,
        symbol: str | None = None,
        side: Side | None = None,
        exchange: Exchange | None = None,
        *,
        from_order_no: str | None = None,
    ) -> list[OrderRecord]:
        """kt00007: the day's orders and fills in order-number order (all pages); with
        `from_order_no` (fr_ord_no), only those from that number on: orders before it are
        not listed."""
        a = "kt00007"
        body = {
            "ord_dt": "" if order_date is None else order_date.strftime("%Y%m%d"),
            "qry_tp": "1",
            "stk_bond_tp": "1",
            "sell_tp": _SIDE_FILTER[side],
            "stk_cd": _symbol_filter(symbol),
            "fr_ord_no": from_order_no or "",
            "dmst_stex_tp": "%" if exchange is None else Exchange(exchange).value,
        }
        return [
            OrderRecord(
                **_order_row(
                    a,
                    r,
                    price="ord_uv",
                    fill_price="cntr_uv",
                    orig="ori_ord",
                    tm="ord_tm",
                    exchange="dmst_stex_tp",
                ),
                confirmed_qty=_num(a, r, "cnfm_qty", numbers.unsigned),
                remaining_qty=_num(a, r, "ord_remnq", numbers.unsigned),
                amend_cancel=_s(r, "mdfy_cncl").strip(),
                order_date=order_date,
                action=_action(_s(r, "mdfy_cncl")),
            )
            for r in await self._order_rows(a, body)
        ]
