"""Pre-trade risk: the checks every new order passes before it is sent, and the trading state.

Owns the trading state (ACTIVE / REDUCING / HALTED), the order-rate windows, the duplicate
guard and the day's counters (orders sent, realised PnL), which the journal persists through
`counters` / `restore`. Pure logic on an injected clock: the account's numbers come from an
`AccountView` (the portfolio and the OMS). Cancels never come here; they always pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

import structlog

from engine.clock import KST, Clock
from engine.config import RiskConfig
from engine.events import Exchange, Side, TradingState, TradingStateChanged
from engine.trading import krx
from engine.trading.calendar import KrxCalendar
from engine.trading.market import NO_ORDERS, MarketState, calendar_session
from engine.trading.orders import Order, OrderRequest

log = structlog.get_logger(__name__)


class Reason(StrEnum):
    """Why an order was refused: a code a machine can read (the value is the name)."""

    HALTED = "HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    RECONCILING = "RECONCILING"
    FEED_DOWN = "FEED_DOWN"
    UNKNOWN_PENDING = "UNKNOWN_PENDING"
    MAX_ORDER_QTY = "MAX_ORDER_QTY"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    ORDER_RATE = "ORDER_RATE"
    DAILY_LOSS = "DAILY_LOSS"
    TICK_SIZE = "TICK_SIZE"
    PRICE_BAND = "PRICE_BAND"
    FAT_FINGER = "FAT_FINGER"
    NO_PRICE = "NO_PRICE"
    SESSION_CLOSED = "SESSION_CLOSED"
    VI_ACTIVE = "VI_ACTIVE"
    VENUE = "VENUE"
    BUYING_POWER = "BUYING_POWER"
    SHORT_SALE = "SHORT_SALE"
    NOT_OWN_POSITION = "NOT_OWN_POSITION"
    DUPLICATE = "DUPLICATE"
    STALE = "STALE"


class HaltReason(StrEnum):
    """Why trading is halted; several may hold at once (`RiskEngine.halts`)."""

    OPERATOR = "OPERATOR"
    """The kill switch (admin, CLI, MQTT)."""
    DIVERGENCE = "DIVERGENCE"
    """Our positions differ from the broker's (`portfolio.halt_on_divergence`)."""
    DAILY_LOSS = "DAILY_LOSS"
    """The day's realised loss reached `daily_loss_limit`."""
    JOURNAL = "JOURNAL"
    """The journal cannot write: lifts itself once it writes again."""
    JOURNAL_BACKLOG = "JOURNAL_BACKLOG"
    """The journal's queue reached its bound: lifts itself once it has caught up."""


RESUMABLE = frozenset({HaltReason.OPERATOR, HaltReason.DIVERGENCE, HaltReason.DAILY_LOSS})
"""Halts that are journaled, outlive a restart, and hold until a person resumes."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused order: the code, and the numbers that tripped it (`value` went past `limit`;
    both 0 when the check has no numbers). Units are the check's: KRW, shares, basis points,
    milliseconds, or a count; SESSION_CLOSED's `value` is the KST time as HHMMSS."""

    reason: Reason
    limit: int = 0
    value: int = 0
    detail: str = ""


class AccountView(Protocol):
    """What risk reads about the account; the portfolio and the OMS implement it.

    Orders in state UNKNOWN count as open everywhere here: until reconciliation settles them,
    they may be live at the broker.
    """

    def position_qty(self, symbol: str) -> int:
        """Shares held (long only)."""
        ...

    def open_qty(self, symbol: str, side: Side) -> int:
        """Unfilled quantity of the live orders on `symbol` and `side`."""
        ...

    def open_orders_count(self) -> int: ...

    def open_buy_notional(self) -> int:
        """KRW the open buy orders reserve (their unfilled qty x price)."""
        ...

    def gross_exposure(self) -> int:
        """Sum over symbols of |position| x last price, KRW."""
        ...

    def buying_power(self) -> int:
        """Orderable cash in KRW, before the open buy orders' reservations (risk adds
        `open_buy_notional` itself)."""
        ...

    def last_price(self, symbol: str) -> int | None:
        """The last trade price from the live feed; never a cached REST answer."""
        ...

    def base_price(self, symbol: str) -> int | None:
        """The day's base price (previous close), from the feed or ka10001 at start."""
        ...

    def has_unknown_order(self, symbol: str) -> bool:
        """An order on `symbol` whose outcome is unknown (UNKNOWN) awaits reconciliation."""
        ...

    def strategy_qty(self, strategy: str, symbol: str) -> int:
        """Shares of `symbol` that `strategy`'s own fills bought and still hold."""
        ...

    def strategy_open_qty(self, strategy: str, symbol: str, side: Side) -> int:
        """Unfilled quantity of `strategy`'s live orders on `symbol` and `side`."""
        ...

    def external_qty(self, symbol: str) -> int:
        """Shares of `symbol` the account holds that no strategy bought (bought by hand or
        before the engine)."""
        ...


_PER_S = 1.0
_PER_MIN = 60.0
_BP = 10_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


_FLOW = frozenset({Reason.ORDER_RATE, Reason.DUPLICATE})


class _Replacing:
    """`view` without the order an amend replaces (see `RiskEngine.check_amend`)."""

    def __init__(self, view: AccountView, order: Order) -> None:
        self.view = view
        self.order = order

    def _own_open(self, symbol: str, side: Side) -> int:
        o = self.order
        return o.open_qty if o.is_open and o.symbol == symbol and o.side is side else 0

    def position_qty(self, symbol: str) -> int:
        return self.view.position_qty(symbol)

    def open_qty(self, symbol: str, side: Side) -> int:
        return self.view.open_qty(symbol, side) - self._own_open(symbol, side)

    def open_orders_count(self) -> int:
        return self.view.open_orders_count() - (1 if self.order.is_open else 0)

    def open_buy_notional(self) -> int:
        o = self.order
        own = self._own_open(o.symbol, Side.BUY)
        unit = o.price or self.view.last_price(o.symbol) or 0
        return self.view.open_buy_notional() - own * unit

    def gross_exposure(self) -> int:
        return self.view.gross_exposure()

    def buying_power(self) -> int:
        return self.view.buying_power()

    def last_price(self, symbol: str) -> int | None:
        return self.view.last_price(symbol)

    def base_price(self, symbol: str) -> int | None:
        return self.view.base_price(symbol)

    def has_unknown_order(self, symbol: str) -> bool:
        return self.view.has_unknown_order(symbol)

    def strategy_qty(self, strategy: str, symbol: str) -> int:
        return self.view.strategy_qty(strategy, symbol)

    def strategy_open_qty(self, strategy: str, symbol: str, side: Side) -> int:
        mine = self.order.strategy == strategy
        own = self._own_open(symbol, side) if mine else 0
        return self.view.strategy_open_qty(strategy, symbol, side) - own

    def external_qty(self, symbol: str) -> int:
        return self.view.external_qty(symbol)


class RiskEngine:
    """Decides, for each new order, whether it may go to the broker.

    `check` runs these in order and returns the first that refuses:

    1. trading state: HALTED; REDUCING_ONLY (state REDUCING and the order adds exposure);
       DAILY_LOSS (the day's realised loss is at the limit, even after a manual resume);
       RECONCILING, FEED_DOWN, UNKNOWN_PENDING (an order of unknown outcome on the symbol).
       All but HALTED let a reducing sell through;
    2. the market: VENUE (a venue the account cannot trade on, `refused_venues`);
       SESSION_CLOSED (the venue's session: today's session notice from the feed when there
       is one and `feed_sessions`, else the KRX calendar; the calendar is off with
       `check_session_hours`); VI_ACTIVE (a market order on a symbol under a volatility
       interruption on that venue, with `refuse_market_under_vi`: limit orders pass, to the
       auction);
    3. the order itself against reference prices: MAX_ORDER_QTY, TICK_SIZE, NO_PRICE,
       PRICE_BAND (+-30 % of the base price), FAT_FINGER (distance from the last trade, or
       the base price before the first trade), MAX_NOTIONAL;
    4. the account: SHORT_SALE (more than the account holds), NOT_OWN_POSITION (a strategy
       sells at most its own shares, and the external ones when it is in
       `may_sell_external`; never another strategy's), MAX_OPEN_ORDERS, then for buys
       MAX_POSITION, MAX_GROSS_EXPOSURE and BUYING_POWER;
    5. the flow of orders: ORDER_RATE (per second, then per minute), DUPLICATE.

    A reducing order is a sell of at most what is held less what open sells already cover:
    it cannot grow exposure, so it skips the exposure checks of step 4 and passes the state
    checks of step 1 except HALTED. Market orders (price None) are valued at the upper daily
    limit for buys (what KRX reserves) or the last price, and skip the price checks.

    The engine sets `reconciling` and `feed_live`. The state is HALTED while any of `halts`
    holds (`halt`, `resume`, `set_journal_fault`), else the mode `set_state` chose.
    """

    def __init__(
        self,
        cfg: RiskConfig,
        clock: Clock,
        *,
        check_session_hours: bool,
        calendar: KrxCalendar | None = None,
        feed_sessions: bool = False,
    ) -> None:
        self.cfg = cfg
        self._clock = clock
        self._calendar = calendar if calendar is not None else KrxCalendar(cfg.extra_holidays)
        self.market = MarketState(clock, None)
        """VI and the feed's sessions (the trader feeds it); strategies read it too."""
        self.check_session_hours = check_session_hours
        self.feed_sessions = feed_sessions
        """Judge session hours by the feed's session notices (SessionChanged) when today has one, also
        when the calendar is off (mode sim, whose notional session the notices tell)."""
        self.refused_venues: dict[Exchange, str] = {}
        """Venues orders may not go to, with the reason (mode mock: KRX only)."""
        self._mode = TradingState.ACTIVE
        self._mode_reason = ""
        self.halts: dict[HaltReason, str] = {}
        """The halts in force, kind -> detail, in the order they came: HALTED while any."""
        self.reconciling = False
        self.feed_live = True
        self.may_sell_external: frozenset[str] = frozenset()
        """Strategies that may sell the account's external shares (`may_sell_external`)."""
        self._sent_times: deque[float] = deque()
        self._recent: dict[tuple[str | None, str, Side, int, int | None, Exchange], float] = {}
        self._today_of: datetime | None = None
        self._today_is = date.min
        self._day = self._today()
        self.on_new_day: list[Callable[[], None]] = []
        """Called when a call on the first moment of a new KST day rolls the counters (the OMS
        then forgets the order numbers of the days before, which Kiwoom gives out again)."""
        self._orders_sent = 0
        self._realized_pnl = 0
        self._rejected = 0

    @property
    def check_session_hours(self) -> bool:
        """Check session hours by the calendar (with no notice from the feed)."""
        return self.market.calendar is not None

    @check_session_hours.setter
    def check_session_hours(self, on: bool) -> None:
        self.market.calendar = self._calendar if on else None

    @property
    def calendar(self) -> KrxCalendar:
        return self._calendar

    @calendar.setter
    def calendar(self, calendar: KrxCalendar) -> None:
        self._calendar = calendar
        if self.market.calendar is not None:
            self.market.calendar = calendar

    # --- the check ---------------------------------------------------------------------------

    def check(
        self,
        req: OrderRequest,
        strategy: str | None,
        view: AccountView,
        *,
        exchange: Exchange = Exchange.KRX,
    ) -> Rejection | None:
        """None when `req` may be sent, else the first rejection (see the class docstring).

        `exchange` is where the order routes (for session hours). Does not record anything
        but the rejection count: call `record_sent` once the order really goes out. Raises
        ValueError for a quantity below 1, which is a programming error, not a risk decision.
        """
        if req.qty < 1:
            raise ValueError(f"qty must be >= 1, got {req.qty}")
        self.roll_day()
        rejection = self._check(req, strategy, view, exchange)
        if rejection is not None:
            self._rejected += 1
        return rejection

    def _check(
        self, req: OrderRequest, strategy: str | None, view: AccountView, exchange: Exchange
    ) -> Rejection | None:
        cfg = self.cfg
        symbol, qty, price = req.symbol, req.qty, req.price
        is_buy = req.side is Side.BUY
        sellable = 0 if is_buy else view.position_qty(symbol) - view.open_qty(symbol, Side.SELL)
        reducing = not is_buy and qty <= sellable

        # 1. trading state
        if self.state is TradingState.HALTED:
            return Rejection(Reason.HALTED, detail=self.state_reason)
        if not reducing:
            if self.state is TradingState.REDUCING:
                return Rejection(Reason.REDUCING_ONLY, max(sellable, 0), qty)
            if -self._realized_pnl >= cfg.daily_loss_limit:
                return Rejection(Reason.DAILY_LOSS, cfg.daily_loss_limit, -self._realized_pnl)
            if self.reconciling:
                return Rejection(Reason.RECONCILING)
            if not self.feed_live:
                return Rejection(Reason.FEED_DOWN)
            if view.has_unknown_order(symbol):
                return Rejection(Reason.UNKNOWN_PENDING, detail=symbol)

        # 2. the market: venue, session, VI
        if exchange in self.refused_venues:
            return Rejection(Reason.VENUE, detail=self.refused_venues[exchange])
        market = self.market
        by_feed = self.feed_sessions and market.from_feed(exchange)
        if by_feed or self.check_session_hours:
            now = self._clock.now().astimezone(KST)
            if self.feed_sessions:
                session = market.session(exchange)
            else:
                session = calendar_session(self._calendar, now, exchange)
            if session in NO_ORDERS:
                closed = None if by_feed else self._calendar.closed_reason(now.date())
                hhmmss = now.hour * 10_000 + now.minute * 100 + now.second
                detail = f"{exchange.value} {now:%Y-%m-%d %H:%M:%S}" + (
                    f" ({closed})" if closed else ""
                )
                if by_feed:
                    detail += " (the feed's session notice)"
                return Rejection(Reason.SESSION_CLOSED, value=hhmmss, detail=detail)
        if price is None and cfg.refuse_market_under_vi and market.vi_active(symbol, exchange):
            return Rejection(Reason.VI_ACTIVE, detail=f"{symbol} {exchange.value}")

        # 3. the order itself
        if qty > cfg.max_order_qty:
            return Rejection(Reason.MAX_ORDER_QTY, cfg.max_order_qty, qty)
        last = view.last_price(symbol)
        base = view.base_price(symbol)
        if price is None:
            if is_buy and base is not None:
                unit = krx.price_limits(base)[1]
            elif last is not None:
                unit = last
            elif base is not None:
                unit = base
            else:
                return Rejection(Reason.NO_PRICE, detail="market order: no last or base price")
        else:
            if not krx.is_on_tick(price):
                tick = krx.tick_size(price) if price >= 1 else 1
                return Rejection(Reason.TICK_SIZE, tick, price)
            if base is None:
                return Rejection(Reason.NO_PRICE, detail="no base price for the daily band")
            lower, upper = krx.price_limits(base)
            if not lower <= price <= upper:
                bound = upper if price > upper else lower
                return Rejection(Reason.PRICE_BAND, bound, price, f"band {lower}..{upper}")
            ref, ref_name = (last, "last") if last is not None else (base, "base")
            distance = abs(price - ref) * _BP
            if distance > cfg.fat_finger_bp * ref:
                bp = _ceil_div(distance, ref)
                return Rejection(Reason.FAT_FINGER, cfg.fat_finger_bp, bp, f"{ref_name} {ref}")
            unit = price
        notional = qty * unit
        if notional > cfg.max_order_notional:
            return Rejection(Reason.MAX_NOTIONAL, cfg.max_order_notional, notional)

        # 4. the account
        if not is_buy and not reducing:
            return Rejection(Reason.SHORT_SALE, max(sellable, 0), qty)
        if not is_buy and strategy is not None:
            own = view.strategy_qty(strategy, symbol)
            if strategy in self.may_sell_external:
                own += view.external_qty(symbol)
            mine = own - view.strategy_open_qty(strategy, symbol, Side.SELL)
            if qty > mine:
                return Rejection(Reason.NOT_OWN_POSITION, max(mine, 0), qty, symbol)
        open_orders = view.open_orders_count() + 1
        if open_orders > cfg.max_open_orders:
            return Rejection(Reason.MAX_OPEN_ORDERS, cfg.max_open_orders, open_orders)
        if is_buy:
            position = view.position_qty(symbol) + view.open_qty(symbol, Side.BUY) + qty
            if position > cfg.max_position_qty:
                return Rejection(Reason.MAX_POSITION, cfg.max_position_qty, position)
            open_buys = view.open_buy_notional()
            exposure = view.gross_exposure() + open_buys + notional
            if exposure > cfg.max_gross_exposure:
                return Rejection(Reason.MAX_GROSS_EXPOSURE, cfg.max_gross_exposure, exposure)
            power = view.buying_power()
            if open_buys + notional > power:
                return Rejection(Reason.BUYING_POWER, power, open_buys + notional)

        # 5. the flow of orders
        now_m = self._clock.monotonic()
        self._expire(now_m)
        per_min = len(self._sent_times) + 1
        per_s = per_min - self._count_before(now_m - _PER_S)
        if per_s > cfg.max_orders_per_s:
            return Rejection(Reason.ORDER_RATE, cfg.max_orders_per_s, per_s, "per second")
        if per_min > cfg.max_orders_per_min:
            return Rejection(Reason.ORDER_RATE, cfg.max_orders_per_min, per_min, "per minute")
        sent_at = self._recent.get((strategy, symbol, req.side, qty, price, req.venue))
        if sent_at is not None and now_m - sent_at < cfg.duplicate_window_s:
            window_ms = round(cfg.duplicate_window_s * 1000)
            return Rejection(Reason.DUPLICATE, window_ms, round((now_m - sent_at) * 1000))
        return None

    def check_amend(
        self,
        req: OrderRequest,
        strategy: str | None,
        view: AccountView,
        *,
        replacing: Order,
        exchange: Exchange = Exchange.KRX,
    ) -> Rejection | None:
        """None when `replacing` may be amended to `req` (its open quantity at a new price),
        else the first rejection. The amend passes every check a new order `req` would
        (steps 1 to 4 of the class docstring), judged as if `replacing` were gone: its open
        quantity, its reservation and its open-order slot are taken off first, so a valid
        amend never counts against itself. The flow checks (step 5) are for new orders."""
        self.roll_day()
        rejection = self._check(req, strategy, _Replacing(view, replacing), exchange)
        if rejection is None or rejection.reason in _FLOW:
            return None
        self._rejected += 1
        return rejection

    def check_stale(self, decided_at: float) -> Rejection | None:
        """STALE when more than `max_order_delay_ms` passed since `decided_at` (the clock's
        `monotonic()` when the strategy asked): an order held back by the broker's rate limit
        is dropped rather than sent late. None while it is still fresh."""
        elapsed_ms = round((self._clock.monotonic() - decided_at) * 1000)
        if elapsed_ms > self.cfg.max_order_delay_ms:
            return Rejection(Reason.STALE, self.cfg.max_order_delay_ms, elapsed_ms)
        return None

    def record_sent(self, req: OrderRequest, strategy: str | None) -> None:
        """Count an order that is going out: rate windows, duplicate guard, daily counter."""
        self.roll_day()
        now_m = self._clock.monotonic()
        self._expire(now_m)
        self._sent_times.append(now_m)
        self._recent[(strategy, req.symbol, req.side, req.qty, req.price, req.venue)] = now_m
        self._orders_sent += 1

    def _expire(self, now_m: float) -> None:
        # Only the last minute matters to the rate windows, and only the duplicate window to
        # the guard: both stay as small as the limits that bound them.
        times = self._sent_times
        while times and times[0] <= now_m - _PER_MIN:
            times.popleft()
        window = self.cfg.duplicate_window_s
        if len(self._recent) > 64:
            self._recent = {k: t for k, t in self._recent.items() if now_m - t < window}

    def _count_before(self, cutoff: float) -> int:
        """How many recorded sends are at or before `cutoff` (the deque is in time order)."""
        n = 0
        for t in self._sent_times:
            if t > cutoff:
                break
            n += 1
        return n

    # --- trading state -----------------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """HALTED while any halt reason is in force, else the mode (ACTIVE or REDUCING)."""
        return TradingState.HALTED if self.halts else self._mode

    @property
    def state_reason(self) -> str:
        """Every halt in force, "; "-joined in the order they came; else the mode's reason."""
        if self.halts:
            return "; ".join(self.halts.values())
        return self._mode_reason

    def set_state(self, state: TradingState, reason: str) -> TradingStateChanged | None:
        """Move to `state`; returns the change to publish, or None when already there.
        HALTED is an OPERATOR halt (see `halt`); ACTIVE or REDUCING sets the mode, which
        shows once no halt is in force."""
        if state is TradingState.HALTED:
            return self.halt(HaltReason.OPERATOR, reason)
        before = self._snapshot()
        self._mode = state
        self._mode_reason = reason
        return self._changed(before, reason)

    def halt(
        self, reason: HaltReason | str, detail: str = "", *, by: str = ""
    ) -> TradingStateChanged | None:
        """The kill switch: HALTED refuses every new order (cancels still pass). `reason` is
        the halt's kind; a plain text is an OPERATOR halt with that text as its detail. A
        kind already in force keeps its first detail (None: nothing changed). Returns the
        change to publish. `by` names who asked (admin, mqtt, oms...), for the log."""
        if not isinstance(reason, HaltReason):
            reason, detail = HaltReason.OPERATOR, detail or reason
        if by:
            log.info("trading_halt_asked", reason=reason.value, detail=detail, by=by)
        if reason in self.halts:
            return None
        before = self._snapshot()
        self.halts[reason] = detail or reason.value
        return self._changed(before, self.halts[reason])

    def resume(
        self, reason: str, which: HaltReason | None = None, *, by: str = ""
    ) -> TradingStateChanged | None:
        """Lift the halts a person must lift (`which`, or every one of RESUMABLE); without
        `which` the mode goes back to ACTIVE too. A JOURNAL halt stays: it lifts itself (see
        `set_journal_fault`). A breached daily loss limit still refuses new exposure that
        day (DAILY_LOSS in `check`). `by` names who asked, for the log."""
        if by:
            log.info("trading_resume_asked", reason=reason, which=which, by=by)
        before = self._snapshot()
        for kind in [which] if which is not None else list(self.halts):
            if kind in RESUMABLE:
                self.halts.pop(kind, None)
        if which is None:
            self._mode = TradingState.ACTIVE
            self._mode_reason = reason
        return self._changed(before, reason)

    def set_journal_fault(self, faulty: bool, detail: str = "") -> TradingStateChanged | None:
        """Halt (reason JOURNAL) while the journal cannot write, and lift that halt once it
        writes again: an order whose intent cannot be stored must not be sent, and neither
        may the next one. Returns the change to publish, or None."""
        if faulty:
            return self.halt(HaltReason.JOURNAL, f"JOURNAL: {detail}" if detail else "")
        return self.lift(HaltReason.JOURNAL, "JOURNAL: writes again")

    def lift(self, kind: HaltReason, reason: str) -> TradingStateChanged | None:
        """Lift one halt that lifts itself (JOURNAL, JOURNAL_BACKLOG) once its cause is gone;
        every other halt stays. Returns the change to publish, or None."""
        if kind in RESUMABLE:
            raise ValueError(f"a {kind.value} halt is lifted by a person (resume), not by itself")
        if kind not in self.halts:
            return None
        before = self._snapshot()
        del self.halts[kind]
        return self._changed(before, reason)

    def journaled_halts(self) -> dict[str, str]:
        """The halts to journal (kind -> detail): all but JOURNAL's, which cannot be."""
        return {k.value: v for k, v in self.halts.items() if k in RESUMABLE}

    def restore_halts(self, halts: Mapping[str, str]) -> TradingStateChanged | None:
        """Take back journaled halts (`journaled_halts` as saved); unknown kinds (a newer
        engine's) are kept as OPERATOR halts rather than dropped. Returns the change."""
        before = self._snapshot()
        for kind, detail in halts.items():
            code = HaltReason(kind) if kind in HaltReason.__members__ else HaltReason.OPERATOR
            if code in RESUMABLE:
                self.halts.setdefault(code, detail)
        return self._changed(before, self.state_reason)

    def _snapshot(self) -> tuple[TradingState, tuple[HaltReason, ...]]:
        return self.state, tuple(self.halts)

    def _changed(
        self, before: tuple[TradingState, tuple[HaltReason, ...]], reason: str
    ) -> TradingStateChanged | None:
        prev, prev_reasons = before
        reasons = tuple(self.halts)
        if self.state is prev and reasons == prev_reasons:
            return None
        return TradingStateChanged(
            state=self.state,
            prev_state=prev,
            reason=reason,
            reasons=tuple(r.value for r in reasons),
        )

    def reconfigure(self, cfg: RiskConfig) -> TradingStateChanged | None:
        """Take new limits (SIGHUP) from the next check on; counters and state stay. Returns
        the move to HALTED when today's loss already reaches a lowered `daily_loss_limit`."""
        if cfg.extra_holidays != self.cfg.extra_holidays:
            self.calendar = KrxCalendar(cfg.extra_holidays)
        self.cfg = cfg
        return self._halt_on_loss()

    def add_realized_pnl(self, pnl: int) -> TradingStateChanged | None:
        """Add realised PnL (KRW, after fees and tax; a loss is negative). Returns the move to
        HALTED when the day's loss reaches `daily_loss_limit`, else None."""
        self.roll_day()
        self._realized_pnl += pnl
        return self._halt_on_loss()

    def _halt_on_loss(self) -> TradingStateChanged | None:
        loss = -self._realized_pnl
        if loss < self.cfg.daily_loss_limit:
            return None
        detail = f"{Reason.DAILY_LOSS.value}: lost {loss} of {self.cfg.daily_loss_limit}"
        return self.halt(HaltReason.DAILY_LOSS, detail)

    # --- daily counters ----------------------------------------------------------------------

    def _today(self) -> date:
        now = self._clock.now()
        if now is self._today_of:  # a simulated clock hands out one object per instant
            return self._today_is
        self._today_of = now
        self._today_is = now.astimezone(KST).date()
        return self._today_is

    def trading_day(self) -> str:
        """The KST date, "YYYYMMDD", that the counters belong to."""
        self.roll_day()
        return self._day.strftime("%Y%m%d")

    def roll_day(self) -> None:
        """Start a new day's counters if the KST date changed since the last call, and tell
        `on_new_day`. Counters belong to one KST calendar day and start again at midnight. A
        HALT is not lifted by the new day: a person resumes after a daily-loss halt."""
        today = self._today()
        if today == self._day:
            return
        log.info(
            "risk_day_rolled",
            prev_day=self._day.strftime("%Y%m%d"),
            day=today.strftime("%Y%m%d"),
            orders_sent=self._orders_sent,
            realized_pnl=self._realized_pnl,
        )
        self._day = today
        self._orders_sent = 0
        self._realized_pnl = 0
        self._rejected = 0
        for new_day in self.on_new_day:
            new_day()

    def counters(self) -> dict[str, int]:
        """The day's counters, to persist with `trading_day()`."""
        self.roll_day()
        return {
            "orders_sent": self._orders_sent,
            "realized_pnl": self._realized_pnl,
            "rejected": self._rejected,
        }

    def restore(
        self, trading_day: str, counters: Mapping[str, int], *, halt_on_loss: bool = True
    ) -> TradingStateChanged | None:
        """Take back persisted counters. Counters of another day than today are ignored (the
        day rolled while the engine was down). With `halt_on_loss`, a restored loss at the
        limit HALTs again (for a journal that holds no halts: with journaled halts, a resume
        after the breach must hold); the change is returned for publishing."""
        today = self.trading_day()
        if trading_day != today:
            log.info("risk_counters_expired", day=trading_day, today=today)
            return None
        self._orders_sent = int(counters.get("orders_sent", 0))
        self._realized_pnl = int(counters.get("realized_pnl", 0))
        self._rejected = int(counters.get("rejected", 0))
        log.info("risk_counters_restored", day=today, **self.counters())
        return self._halt_on_loss() if halt_on_loss else None
