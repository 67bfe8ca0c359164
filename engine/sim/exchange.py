"""The simulator's exchange: orders, matching against the generated book, and the realtime 00
(주문체결) / 04 (잔고) entries Kiwoom pushes for them. The account (cash, holdings,
reservations, fees and tax, the tick and price-limit checks, each order's open/filled/fee/tax
life) is the exchange core's, engine/trading/account.py, the one the backtest's broker uses;
so are the order rules above it (acceptance, cancel/amend targets, IOC/FOK at arrival,
numbering: engine/trading/exchange_core.py). This module adds the generated book as the
core's `Liquidity` (`BookLiquidity`) and the wire face (codes, Korean reasons, 00/04 pushes).

Pure logic and synchronous: callers (REST handlers, the server's market loop) call in, entries go
out through `on_entry`. Money and quantities are int KRW / shares.

Behaviour, and where it models Kiwoom:
- Order numbers are 7-digit ("0000001", ...); a modify or cancel gets a NEW number whose
  `orig_ord_no` is the order it targets and whose `base_ord_no` is the root of the chain.
- Supported 매매구분: "0" 보통 (limit), "3" 시장가 (market), and their immediate kinds "10"
  보통(IOC), "13" 시장가(IOC), "20" 보통(FOK), "23" 시장가(FOK). Others are rejected. An IOC order
  fills what it can at once and the rest is cancelled; a FOK order fills whole at once or not
  at all (only the visible book inside its limit counts; a market order always fills). Either
  way it is pushed 접수, then 체결 per fill, then 취소 with 902 = 0 when anything went unfilled
  (Kiwoom's facts do not show the live sequence; this is the plain reading: the exchange
  cancels the remainder of the same order).
- Rejections (bad tick, outside the daily limit, not enough cash / shares, unsupported type):
  with ``reject_mode="error"`` (default, what Kiwoom's order gateway does for these pre-trade
  checks) they raise `OrderRejected` and no order number is used; with ``reject_mode="push"``
  the order is taken (number issued) and then pushed as 00 접수 followed by 00 거부 with the
  reason in FID 919, so clients can exercise the 거부 path.
- Push sequences: new order 접수, then 체결 per fill (each followed by a 04); modify: the new
  order 접수 and 확인, then the original 확인 with its reduced 902 (미체결수량); cancel: the cancel
  order 접수 and 확인, then the original 취소 with what stays open in 902. 910/911 and 914/915
  carry the single fill; 903 is the order's cumulative fill amount.
- A buy reserves price x qty (+ fee) of 주문가능금액; a market buy reserves at the upper limit.
  A sell reserves shares (no short selling). Fills settle into 예수금 at once (no T+2).
- Fees: `commission_bp` on every fill and `sell_tax_bp` on sells (or, with
  `sell_tax_table`, the published rate of the fill's day and the symbol's market,
  engine/trading/fees.py's SELL_TAX_TABLE), in basis points of the fill value, rounded as `[portfolio]` estimates them (engine/trading/fees.py: fee plus tax is one
  floor per fill). The class defaults both to 0 (cash moves by exactly price x qty); the
  simulator's config (`[sim]`) defaults to the portfolio's 1.5 bp and sell-tax table. FIDs
  938/939 and the account queries carry each order's cumulative fee and tax.
- Our resting orders are not shown in the generated book; they fill when the book reaches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from engine.clock import SYSTEM_CLOCK, Clock
from engine.events import Side as CoreSide
from engine.events import TimeInForce
from engine.sim.market import MarketGenerator
from engine.sim.schema import percent
from engine.trading import account as acct
from engine.trading import exchange_core as core
from engine.trading.account import Account, OrderLife
from engine.trading.fees import FeeRates, Market

log = structlog.get_logger(__name__)

Side = Literal["buy", "sell"]
Action = Literal["new", "modify", "cancel"]

NO_ORDER = "0000000"

TRADE_TYPE_NAMES: dict[str, str] = {
    "0": "보통",
    "3": "시장가",
    "10": "보통(IOC)",
    "13": "시장가(IOC)",
    "20": "보통(FOK)",
    "23": "시장가(FOK)",
}
"""Supported 매매구분 codes -> the FID 906 / ka10075 trde_tp names."""
MARKET_TYPES = frozenset({"3", "13", "23"})
"""Codes without a price: they match at any price and reserve at the upper limit."""
IOC_TYPES = frozenset({"10", "13"})
FOK_TYPES = frozenset({"20", "23"})
TIME_IN_FORCE: dict[str, TimeInForce] = {
    code: TimeInForce.IOC
    if code in IOC_TYPES
    else TimeInForce.FOK
    if code in FOK_TYPES
    else TimeInForce.DAY
    for code in TRADE_TYPE_NAMES
}
"""Each supported 매매구분's time in force at the exchange core."""

FIDS_00: tuple[str, ...] = tuple(
    str(f)
    for f in (
        *(9201, 9203, 9205, 9001, 912, 913, 302, 900, 901, 902, 903, 904, 905, 906, 907, 908),
        *(909, 910, 911, 10, 27, 28, 914, 915, 938, 939, 919, 920, 921, 922, 923, 10010),
        *(2134, 2135, 2136),
    )
)
FIDS_04: tuple[str, ...] = tuple(
    str(f)
    for f in (
        *(9201, 9001, 917, 916, 302, 10, 930, 931, 932, 933, 945, 946, 950, 951, 27, 28, 307),
        *(8019, 957, 958, 918, 990, 991, 992, 993, 959, 924),
    )
)

# Reject codes. Kiwoom documents no 4-digit codes for order checks, so these are the
# simulator's own (2xxx), except 1902 (종목 없음) and 1517 (입력값 형식 오류) which are documented.
E_BAD_INPUT = 1517
E_NO_SYMBOL = 1902
E_TICK = 2001
E_PRICE_LIMIT = 2002
E_CASH = 2003
E_SHARES = 2004
E_TRADE_TYPE = 2005
E_NOTHING_OPEN = 2006
E_QTY_EXCEEDS = 2007
E_NO_ORDER = 2008
E_SYMBOL_MISMATCH = 2009
E_VENUE = 2010
E_VENUE_CLOSED = 2011


TARGET_REJECTS: dict[str, tuple[int, str]] = {
    core.NO_ORDER: (E_NO_ORDER, "원주문번호가 존재하지 않습니다"),
    core.SYMBOL_MISMATCH: (E_SYMBOL_MISMATCH, "원주문의 종목코드와 일치하지 않습니다"),
    core.NOTHING_OPEN: (E_NOTHING_OPEN, "정정/취소할 수량이 없습니다"),
    core.QTY_EXCEEDS: (E_QTY_EXCEEDS, "정정/취소수량이 가능수량을 초과합니다"),
}
"""The exchange core's cancel/amend target refusals as the simulator answers them."""


class OrderRejected(Exception):
    """An order, modify or cancel failed a check; nothing was changed.

    `code` is a 4-digit code (see E_* above), `reason` a Korean text like Kiwoom's.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"[{code}:{reason}]")
        self.code = code
        self.reason = reason


@dataclass
class SimOrder(OrderLife):
    """One order as the exchange sees it. `open_qty` is what can still fill (0 when done);
    `open_qty`, `filled_qty`, `filled_value`, `fee` and `tax` are its `OrderLife`."""

    ord_no: str
    orig_ord_no: str
    base_ord_no: str
    symbol: str
    side: Side
    action: Action
    trde_tp: str
    price: int  # 0 for a market order
    qty: int
    time: str  # HHmmss
    status: str = "접수"
    reject_reason: str = ""
    confirm_time: str = ""
    last_fill_price: int = 0
    venue: str = "KRX"
    """dmst_stex_tp: KRX, NXT or SOR (SOR: routed; matched on the one book like the others)."""

    @property
    def kind_text(self) -> str:
        """FID 905 / io_tp_nm: "+매수", "-매도", "+매수정정", "-매도정정", "매수취소", "매도취소"."""
        word = "매수" if self.side == "buy" else "매도"
        if self.action == "cancel":
            return f"{word}취소"
        sign = "+" if self.side == "buy" else "-"
        return f"{sign}{word}정정" if self.action == "modify" else f"{sign}{word}"

    @property
    def trade_type_name(self) -> str:
        return TRADE_TYPE_NAMES.get(self.trde_tp, self.trde_tp)

    @property
    def is_open(self) -> bool:
        return self.open_qty > 0


@dataclass(frozen=True)
class SimFill:
    """One execution of one of our orders."""

    fill_no: int
    ord_no: str
    symbol: str
    side: Side
    price: int
    qty: int
    fee: int
    tax: int
    time: str


@dataclass
class DayStats:
    """What the 04 feed and kt00018 tell about a symbol's trading today, beyond the account."""

    today_buy_qty: int = 0
    today_sell_qty: int = 0
    realized_pnl: int = 0  # today, after fees and tax
    sold_cost: int = 0  # purchase cost of the shares sold today (for the realized rate)
    last_side: Side = "buy"


@dataclass
class Holding:
    """A position as the wire shows it: shares and cost from the account, the day's figures
    from `DayStats`. `cost` is the purchase amount of the shares held (fees excluded). A
    snapshot: the exchange builds a new one per query."""

    symbol: str
    qty: int = 0
    cost: int = 0
    today_buy_qty: int = 0
    today_sell_qty: int = 0
    realized_pnl: int = 0  # today, after fees and tax
    sold_cost: int = 0  # purchase cost of the shares sold today (for the realized rate)
    last_side: Side = "buy"

    @property
    def avg_price(self) -> int:
        return self.cost // self.qty if self.qty else 0


class BookLiquidity:
    """The generated book as the exchange core's `Liquidity`."""

    def __init__(self, market: MarketGenerator) -> None:
        self.market = market

    def fillable(self, symbol: str, side: CoreSide, qty: int, limit: int | None) -> int:
        return self.market.fillable(symbol, side is CoreSide.BUY, qty, limit)

    def take(
        self, symbol: str, side: CoreSide, qty: int, limit: int | None
    ) -> list[tuple[int, int]]:
        return self.market.take(symbol, side is CoreSide.BUY, qty, limit)


class SimExchange:
    """Account + order book of one simulated customer.

    Every public method is synchronous and returns after all resulting entries were passed to
    `on_entry` (the callback must not raise). Not thread-safe.
    """

    def __init__(
        self,
        market: MarketGenerator,
        cash: int,
        clock: Clock = SYSTEM_CLOCK,
        on_entry: Callable[[dict[str, Any]], None] | None = None,
        *,
        account_no: str = "5012345610",
        commission_bp: float = 0,
        sell_tax_bp: float = 0,
        sell_tax_table: bool = False,
        markets: Mapping[str, Market] | None = None,
        reject_mode: Literal["error", "push"] = "error",
    ) -> None:
        self.market = market
        self.liquidity: core.Liquidity = BookLiquidity(market)
        self.clock = clock
        self.on_entry: Callable[[dict[str, Any]], None] = on_entry or (lambda _e: None)
        self.account_no = account_no
        self.account = Account(
            cash, FeeRates(commission_bp, sell_tax_bp, sell_tax_table), markets=markets or {}
        )
        """The exchange core's account (engine/trading/account.py)."""
        self.reject_mode = reject_mode
        self._orders: dict[str, SimOrder] = {}
        self._numbers = core.OrderNumbers()
        self._day: dict[str, DayStats] = {}
        self._fills: list[SimFill] = []
        self._collected: list[dict[str, Any]] | None = None
        self.venue_open: Callable[[str], bool] = lambda _venue: True
        """Whether a venue (KRX, NXT) takes orders now: the Simulator's notional sessions."""

    # ---- queries ----------------------------------------------------------------------------

    @property
    def cash(self) -> int:
        """예수금: the account's cash."""
        return self.account.cash

    @property
    def rates(self) -> FeeRates:
        return self.account.rates

    def rates_for(self, symbol: str) -> FeeRates:
        """The rates a fill of `symbol` pays now (the sell-tax table's by the clock's day)."""
        self.account.day = self.clock.now().date()
        return self.account.rates_for(symbol)

    def order(self, ord_no: str) -> SimOrder | None:
        """The order with this number ("0000001"; shorter numbers are zero-filled), or None."""
        return self._orders.get(ord_no.zfill(7))

    def orders(self) -> list[SimOrder]:
        """Every order taken today (including modify/cancel orders and 거부), oldest first."""
        return list(self._orders.values())

    def open_orders(self) -> list[SimOrder]:
        """Orders that can still fill, oldest first."""
        return [o for o in self._orders.values() if o.open_qty > 0]

    def fills(self) -> list[SimFill]:
        """Every execution today, oldest first (fill_no 1, 2, ...)."""
        return list(self._fills)

    def holdings(self) -> list[Holding]:
        """Positions with shares, in the order first bought."""
        return [self.holding(s) for s, q in self.account.shares.items() if q > 0]

    def holding(self, symbol: str) -> Holding:
        """The position in `symbol` (an empty Holding if never traded; a snapshot)."""
        d = self._day.get(symbol) or DayStats()
        return Holding(
            symbol,
            self.account.shares.get(symbol, 0),
            self.account.cost.get(symbol, 0),
            d.today_buy_qty,
            d.today_sell_qty,
            d.realized_pnl,
            d.sold_cost,
            d.last_side,
        )

    def orderable_cash(self) -> int:
        """예수금 minus what open buy orders reserve (주문가능금액)."""
        return self.account.orderable_cash()

    def orderable_qty(self, symbol: str) -> int:
        """Shares held minus shares in open sell orders."""
        return self.account.sellable(symbol)

    @contextmanager
    def collecting(self) -> Iterator[list[dict[str, Any]]]:
        """Keep the entries made inside the block in the yielded list instead of passing them
        to `on_entry`: the REST side sends an order request's pushes before or after its
        answer (faults.order_push_first). The block is synchronous, so no entry of another
        request or of the market loop can land in the list."""
        outer, self._collected = self._collected, []
        try:
            yield self._collected
        finally:
            self._collected = outer

    def sender(self, entries: list[dict[str, Any]]) -> Callable[[], None]:
        """A function that passes `entries` (from `collecting`) to `on_entry`, in order."""

        def send() -> None:
            for entry in entries:
                self.on_entry(entry)

        return send

    def _emit(self, entry: dict[str, Any]) -> None:
        if self._collected is not None:
            self._collected.append(entry)
        else:
            self.on_entry(entry)

    # ---- order entry ------------------------------------------------------------------------

    def place(
        self,
        side: Side,
        symbol: str,
        qty: int,
        price: int,
        trde_tp: str = "0",
        *,
        venue: str = "KRX",
    ) -> SimOrder:
        """A new buy or sell order; matches at once against the book, the rest rests. Every
        venue (KRX, NXT, SOR) matches on the one book; `venue` is what the pushes say.

        `price` is ignored (use 0) for a market order. Returns the order (status 접수, or 거부
        in push mode). Raises OrderRejected (nothing changed) for a failed check.
        """
        self._check_symbol(symbol)
        if qty < 1:
            raise OrderRejected(E_BAD_INPUT, "주문수량을 확인하세요")
        try:
            self._check_new(side, symbol, qty, price, trde_tp)
        except OrderRejected as exc:
            if self.reject_mode == "error":
                log.info("sim_order_rejected", symbol=symbol, side=side, code=exc.code)
                raise
            order = self._new_order(side, symbol, qty, price, trde_tp, "new")
            order.venue = venue
            order.open_qty = 0
            self._push_order(order, "접수", remaining=qty)
            order.status = "거부"
            order.reject_reason = exc.reason
            self._push_order(order, "거부", remaining=0)
            return order
        order_price = 0 if trde_tp in MARKET_TYPES else price
        order = self._new_order(side, symbol, qty, order_price, trde_tp, "new")
        order.venue = venue
        reserve = self._reserve_price(symbol, trde_tp, price)
        core.take_order(self.account, order.ord_no, order, _side(side), symbol, qty, reserve)
        self._push_order(order, "접수")
        limit = None if trde_tp in MARKET_TYPES else price
        tif = TIME_IN_FORCE[trde_tp]
        for fill_price, fill_qty in core.arrival_fills(
            self.liquidity, symbol, _side(side), qty, limit, tif
        ):
            self._apply_fill(order, fill_price, fill_qty)
        if core.after_arrival(order.open_qty, tif) is core.AfterArrival.ENDS:
            core.expire(self.account, order.ord_no, order)
            order.status = "취소"
            self._push_order(order, "취소")
        return order

    def modify(self, orig_ord_no: str, symbol: str, qty: int, price: int) -> SimOrder:
        """Move `qty` (0 = all) of an open limit order to `price` under a new order number.

        Returns the new order. Raises OrderRejected (nothing changed) for an unknown or done
        original, a different symbol, too large a quantity, a bad price, or too little cash.
        """
        orig = self._target(orig_ord_no, symbol, qty)
        if orig.trde_tp != "0":
            raise OrderRejected(E_TRADE_TYPE, "시장가 주문은 정정할 수 없습니다")
        move = qty or orig.open_qty
        side = _side(orig.side)
        keep = orig.open_qty - move
        lower, upper = self.market.limits(symbol)
        why = core.amend_refusal(
            self.account, orig.ord_no, side, keep, orig.price, move, price, lower, upper
        )
        self._raise_refusal(why, price, lower, upper)
        new = self._new_order(orig.side, symbol, move, price, orig.trde_tp, "modify", orig.ord_no)
        new.venue = orig.venue
        orig.open_qty = keep
        new.open_qty = move
        core.amend(
            self.account, side, symbol, orig.ord_no, keep, orig.price, new.ord_no, move, price
        )
        self._push_order(new, "접수")
        new.status = "확인"
        new.confirm_time = new.time
        self._push_order(new, "확인")
        orig.status = "확인"
        orig.confirm_time = new.time
        self._push_order(orig, "확인")
        self._match(new)
        return new

    def cancel(self, orig_ord_no: str, symbol: str, qty: int) -> SimOrder:
        """Cancel `qty` (0 = all remaining) of an open order under a new order number.

        Returns the cancel order. Raises OrderRejected (nothing changed) for an unknown or done
        original, a different symbol, or too large a quantity.
        """
        orig = self._target(orig_ord_no, symbol, qty)
        amount = qty or orig.open_qty
        price = orig.price
        cxl = self._new_order(orig.side, symbol, amount, price, orig.trde_tp, "cancel", orig.ord_no)
        cxl.venue = orig.venue
        core.cancel(
            self.account,
            orig.ord_no,
            orig,
            _side(orig.side),
            symbol,
            amount,
            self._reserve_price(symbol, orig.trde_tp, orig.price),
        )
        self._push_order(cxl, "접수", remaining=amount)
        cxl.status = "확인"
        cxl.confirm_time = cxl.time
        self._push_order(cxl, "확인", remaining=0)
        orig.status = "취소"
        self._push_order(orig, "취소")
        return cxl

    def on_market_tick(self) -> None:
        """Fill resting orders the market has reached; call after generating market entries."""
        for order in self.open_orders():
            self._match(order)

    # ---- checks -----------------------------------------------------------------------------

    def _check_symbol(self, symbol: str) -> None:
        if not self.market.has(symbol):
            raise OrderRejected(E_NO_SYMBOL, "종목정보가 없습니다")

    @staticmethod
    def _raise_refusal(why: str | None, price: int, lower: int, upper: int) -> None:
        """Raise the exchange core's refusal `why` (of `price`) as the simulator answers it."""
        if why == acct.TICK:
            raise OrderRejected(E_TICK, "주문가격이 호가단위에 맞지 않습니다")
        if why == acct.PRICE_LIMIT and price > upper:
            raise OrderRejected(E_PRICE_LIMIT, f"주문가격이 상한가({upper})를 초과합니다")
        if why == acct.PRICE_LIMIT:
            raise OrderRejected(E_PRICE_LIMIT, f"주문가격이 하한가({lower}) 미만입니다")
        if why == acct.CASH:
            raise OrderRejected(E_CASH, "주문가능금액을 초과합니다")
        if why == acct.SHARES:
            raise OrderRejected(E_SHARES, "매도가능수량을 초과합니다")

    def _check_new(self, side: Side, symbol: str, qty: int, price: int, trde_tp: str) -> None:
        if trde_tp not in TRADE_TYPE_NAMES:
            raise OrderRejected(
                E_TRADE_TYPE,
                f"지원하지 않는 매매구분입니다({trde_tp}): 0, 3, 10, 13, 20, 23만 가능",
            )
        limit = None if trde_tp in MARKET_TYPES else price
        lower, upper = self.market.limits(symbol)
        why = core.order_refusal(self.account, _side(side), symbol, qty, limit, lower, upper)
        self._raise_refusal(why, price, lower, upper)

    def _target(self, orig_ord_no: str, symbol: str, qty: int) -> SimOrder:
        no = orig_ord_no.strip()
        orig = self.order(no) if no.isdigit() else None
        why = core.target_refusal(
            orig,
            orig is not None and orig.symbol == symbol,
            qty,
            cancelled=orig is not None and orig.action == "cancel",
        )
        if why is not None:
            raise OrderRejected(*TARGET_REJECTS[why])
        assert orig is not None
        return orig

    def _reserve_price(self, symbol: str, trde_tp: str, price: int) -> int:
        """What an order reserves at: its price, a market order the upper limit."""
        limit = None if trde_tp in MARKET_TYPES else price
        return core.reserve_price(limit, self.market.limits(symbol)[1])

    # ---- state changes ----------------------------------------------------------------------

    def _new_order(
        self,
        side: Side,
        symbol: str,
        qty: int,
        price: int,
        trde_tp: str,
        action: Action,
        orig_ord_no: str = NO_ORDER,
    ) -> SimOrder:
        ord_no = self._numbers.next()
        order = SimOrder(
            ord_no=ord_no,
            orig_ord_no=orig_ord_no,
            base_ord_no=self._orders[orig_ord_no].base_ord_no
            if orig_ord_no != NO_ORDER
            else ord_no,
            symbol=symbol,
            side=side,
            action=action,
            trde_tp=trde_tp,
            price=price,
            qty=qty,
            time=self._hms(),
        )
        self._orders[ord_no] = order
        log.debug("sim_order", ord_no=ord_no, action=action, side=side, symbol=symbol, qty=qty)
        return order

    def _match(self, order: SimOrder) -> None:
        if order.open_qty <= 0:
            return
        limit = None if order.trde_tp in MARKET_TYPES else order.price
        fills = self.liquidity.take(order.symbol, _side(order.side), order.open_qty, limit)
        for price, qty in fills:
            self._apply_fill(order, price, qty)

    def _apply_fill(self, order: SimOrder, price: int, qty: int) -> None:
        cost_before = self.account.cost.get(order.symbol, 0)
        self.account.day = self.clock.now().date()
        fee, tax = self.account.execute(
            order.ord_no,
            order,
            _side(order.side),
            order.symbol,
            qty,
            price,
            self._reserve_price(order.symbol, order.trde_tp, order.price),
        )
        d = self._day.setdefault(order.symbol, DayStats())
        if order.side == "buy":
            d.today_buy_qty += qty
        else:
            removed = cost_before - self.account.cost[order.symbol]
            d.today_sell_qty += qty
            d.sold_cost += removed
            d.realized_pnl += price * qty - removed - fee - tax
        d.last_side = order.side
        order.status = "체결"
        order.last_fill_price = price
        fill = SimFill(
            len(self._fills) + 1,
            order.ord_no,
            order.symbol,
            order.side,
            price,
            qty,
            fee,
            tax,
            self._hms(),
        )
        self._fills.append(fill)
        self._push_order(order, "체결", fill=fill)
        self._push_balance(self.holding(order.symbol))

    # ---- realtime entries ---------------------------------------------------------------------

    def _hms(self) -> str:
        return self.clock.now().strftime("%H%M%S")

    def _push_order(
        self,
        order: SimOrder,
        status: str,
        *,
        remaining: int | None = None,
        fill: SimFill | None = None,
    ) -> None:
        m = self.market
        bid, ask = m.best(order.symbol)
        v = dict.fromkeys(FIDS_00, "")
        v["9201"] = self.account_no
        v["9203"] = order.ord_no
        v["9001"] = f"A{order.symbol}"
        v["912"] = "JJ"
        v["913"] = status
        v["302"] = m.name(order.symbol)
        v["900"] = str(order.qty)
        v["901"] = str(order.price)
        v["902"] = str(order.open_qty if remaining is None else remaining)
        v["903"] = str(order.filled_value)
        v["904"] = order.orig_ord_no
        v["905"] = order.kind_text
        v["906"] = order.trade_type_name
        v["907"] = "2" if order.side == "buy" else "1"
        v["908"] = fill.time if fill else self._hms()
        v["10"] = m.signed(order.symbol, m.last_price(order.symbol))
        v["27"] = m.signed(order.symbol, ask)
        v["28"] = m.signed(order.symbol, bid)
        if fill is not None:
            v["909"] = str(fill.fill_no)
            v["910"] = v["914"] = str(fill.price)
            v["911"] = v["915"] = str(fill.qty)
        v["938"] = str(order.fee)
        v["939"] = str(order.tax)
        v["919"] = order.reject_reason if status == "거부" else ""
        v["922"] = "00"
        v["923"] = "00000000"
        # 2134 거래소구분 0 통합 / 1 KRX / 2 NXT; 2136 SOR여부.
        v["2134"] = {"NXT": "2", "SOR": "0"}.get(order.venue, "1")
        v["2135"] = order.venue
        v["2136"] = "Y" if order.venue == "SOR" else "N"
        self._emit({"type": "00", "name": "주문체결", "item": order.symbol, "values": v})

    def _push_balance(self, h: Holding) -> None:
        m = self.market
        bid, ask = m.best(h.symbol)
        v = dict.fromkeys(FIDS_04, "")
        v["9201"] = self.account_no
        v["9001"] = f"A{h.symbol}"
        v["917"] = "00"
        v["916"] = "00000000"
        v["302"] = m.name(h.symbol)
        v["10"] = m.signed(h.symbol, m.last_price(h.symbol))
        v["930"] = str(h.qty)
        v["931"] = str(h.avg_price)
        v["932"] = str(h.cost)
        v["933"] = str(self.orderable_qty(h.symbol))
        v["945"] = str(h.today_buy_qty - h.today_sell_qty)
        v["946"] = "2" if h.last_side == "buy" else "1"
        v["950"] = str(h.realized_pnl)
        v["27"] = m.signed(h.symbol, ask)
        v["28"] = m.signed(h.symbol, bid)
        v["307"] = str(m.prev_close(h.symbol))
        v["8019"] = percent(h.realized_pnl, h.sold_cost)
        v["957"] = v["958"] = v["959"] = "0"
        v["918"] = "00000000"
        v["990"] = str(h.realized_pnl)
        v["991"] = percent(h.realized_pnl, h.sold_cost)
        v["992"] = "0"
        v["993"] = "0.00"
        self._emit({"type": "04", "name": "현물잔고", "item": h.symbol, "values": v})


def _side(side: Side) -> CoreSide:
    return CoreSide.BUY if side == "buy" else CoreSide.SELL
