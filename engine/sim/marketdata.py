"""Deterministic market data for the simulator's quote and chart TRs.

ka10001 (stock info), ka10004 (10-level book), ka10079 (tick), ka10080 (minute), ka10081
(daily), ka10082/83/94 (week/month/year). Every price comes from a smooth, seeded function of
(code, day, minute), so pages never disagree with each other and any date can be asked about;
the last trading day before the clock's today closes exactly at the Universe's previous close.
Prices sit on KRX ticks; amounts are ints until they are formatted for the wire.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from engine.clock import SYSTEM_CLOCK, Clock
from engine.sim.reply import RestHandler, SimReply, input_error
from engine.sim.schema import decimal, direction_price, padded, percent, pre_sig, signed
from engine.sim.universe import Listing, Universe, split_exchange
from engine.trading.krx import price_limits, round_to_tick, tick_size

SESSION_MINUTES = 390
"""09:00 to 15:30."""
MINUTE_SCOPES = frozenset({1, 3, 5, 10, 15, 30, 45, 60})
TICK_SCOPES = frozenset({1, 3, 5, 10, 30})
TICK_SPACING_S = 6
"""Seconds between two simulated trades in the tick chart."""
_DATE = re.compile(r"^\d{8}$")

BookLevels = tuple[Sequence[tuple[int, int]], Sequence[tuple[int, int]]]
"""(asks, bids): (price, qty) levels, best first."""


@dataclass(frozen=True)
class Bar:
    """One chart row. `label` is YYYYMMDD (day and longer) or yyyyMMddHHmmss (intraday)."""

    label: str
    open: int
    high: int
    low: int
    close: int
    qty: int
    prev_close: int
    """Close of the trading day before this bar's day (the direction-sign reference)."""


def is_trading_day(d: date) -> bool:
    return d.weekday() < 5


def prev_trading_day(d: date) -> date:
    d -= timedelta(days=1)
    while not is_trading_day(d):
        d -= timedelta(days=1)
    return d


class Marketdata:
    """Quote and chart handlers over one Universe and Clock.

    `price_of(code)` may supply the live price (e.g. the exchange simulator's last trade); then
    ka10001 / ka10004 and today's chart rows follow it. `book_of(code)` may supply the live
    book (e.g. `MarketGenerator.book`, the liquidity orders fill against); then ka10004 shows
    it instead of a seeded book around the current price. Paged TRs answer `page_rows` rows per
    page; the daily chart reaches back `history_days` trading days, intraday charts
    `intraday_days` trading days.
    """

    def __init__(
        self,
        universe: Universe,
        clock: Clock = SYSTEM_CLOCK,
        *,
        page_rows: int = 100,
        history_days: int = 450,
        intraday_days: int = 5,
        price_of: Callable[[str], int | None] | None = None,
        book_of: Callable[[str], BookLevels | None] | None = None,
    ) -> None:
        self.universe = universe
        self.clock = clock
        self.page_rows = page_rows
        self.history_days = history_days
        self.intraday_days = intraday_days
        self.price_of = price_of
        self.book_of = book_of
        self._close_cache: dict[tuple[str, date, date], int] = {}
        self._path_cache: dict[tuple[str, date, date], list[int]] = {}
        self._history_cache: dict[tuple[str, date, int, date], tuple[Bar, ...]] = {}

    def handlers(self) -> dict[str, RestHandler]:
        return {
            "ka10001": self.ka10001,
            "ka10004": self.ka10004,
            "ka10079": self.ka10079,
            "ka10080": self.ka10080,
            "ka10081": self.ka10081,
            "ka10082": self.ka10082,
            "ka10083": self.ka10083,
            "ka10094": self.ka10094,
            "ka10099": self.ka10099,
            "ka10100": self.ka10100,
        }

    # --- price model ----------------------------------------------------------------------

    def _unit(self, code: str, tag: str, n: int) -> float:
        """A deterministic number in [-1, 1) for (seed, code, tag, n)."""
        raw = hashlib.blake2b(
            f"{self.universe.seed}:{code}:{tag}:{n}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(raw, "big") / 2**63 - 1.0

    def _drift(self, code: str, d: date) -> float:
        n = d.toordinal()
        phase = self._unit(code, "phase", 0) * math.pi
        return (
            0.12 * math.sin(n / 29.0 + phase)
            + 0.05 * math.sin(n / 7.3 + 2 * phase)
            + 0.012 * self._unit(code, "noise", n)
        )

    def today(self) -> date:
        return self.clock.now().date()

    def close(self, code: str, d: date) -> int:
        """The close of trading day `d` (for today: the close the day will end at)."""
        anchor = prev_trading_day(self.today())
        key = (code, d, anchor)
        hit = self._close_cache.get(key)
        if hit is not None:
            return hit
        ref = self.universe.prev_close(code)
        if d == anchor:
            value = ref
        else:
            factor = math.exp(self._drift(code, d) - self._drift(code, anchor))
            value = round_to_tick(max(1, int(ref * factor)), "down")
        if len(self._close_cache) > 100_000:
            self._close_cache.clear()
        self._close_cache[key] = value
        return value

    def open(self, code: str, d: date) -> int:
        pc = self.close(code, prev_trading_day(d))
        drift = int(pc * 0.01 * self._unit(code, "open", d.toordinal()))
        return round_to_tick(max(1, pc + drift), "down")

    def path(self, code: str, d: date) -> list[int]:
        """Prices at each minute 0..390 of day `d`, from its open to its close, on ticks.

        A seeded Brownian bridge between the day's open and close, so the close is exact.
        """
        key = (code, d, prev_trading_day(self.today()))
        hit = self._path_cache.get(key)
        if hit is not None:
            return hit
        o, c = self.open(code, d), self.close(code, d)
        digest = hashlib.blake2b(f"{self.universe.seed}:{code}:path:{d}".encode(), digest_size=8)
        rng = random.Random(int.from_bytes(digest.digest(), "big"))
        walk = [0.0]
        for _ in range(SESSION_MINUTES):
            walk.append(walk[-1] + rng.gauss(0.0, 0.0009))
        end = walk[-1]
        out = []
        for k in range(SESSION_MINUTES + 1):
            x = k / SESSION_MINUTES
            bridge = walk[k] - x * end
            out.append(round_to_tick(max(1, int((o + (c - o) * x) * (1.0 + bridge))), "down"))
        out[0], out[-1] = o, c
        if len(self._path_cache) > 2_000:
            self._path_cache.clear()
        self._path_cache[key] = out
        return out

    def _now_minute(self, d: date) -> int | None:
        """Minutes into the session on day `d` given the clock: None before 09:00 today."""
        now = self.clock.now()
        if d < now.date():
            return SESSION_MINUTES
        minutes = (now.hour - 9) * 60 + now.minute
        if minutes < 0:
            return None
        return min(minutes, SESSION_MINUTES)

    def last_day(self) -> date:
        """The newest trading day with data: today once the session opened, else the day before."""
        today = self.today()
        if is_trading_day(today) and self._now_minute(today) is not None:
            return today
        return prev_trading_day(today)

    def current_price(self, code: str) -> int:
        if self.price_of is not None:
            live = self.price_of(code)
            if live is not None:
                return live
        d = self.last_day()
        m = self._now_minute(d)
        return self.path(code, d)[m if m is not None else SESSION_MINUTES]

    def daily_bar(self, code: str, d: date) -> Bar:
        pc = self.close(code, prev_trading_day(d))
        n = d.toordinal()
        vol = 50_000 + int((self._unit(code, "vol", n) + 1) * 2_000_000)
        if d == self.last_day() and d == self.today():
            m = self._now_minute(d) or 0
            seen = self.path(code, d)[: m + 1]
            cur = self.current_price(code)
            return Bar(
                d.strftime("%Y%m%d"),
                seen[0],
                max(*seen, cur),
                min(*seen, cur),
                cur,
                vol * max(m, 1) // SESSION_MINUTES,
                pc,
            )
        o, c = self.open(code, d), self.close(code, d)
        hi = max(o, c) + tick_size(max(o, c)) * int((self._unit(code, "hi", n) + 1) * 4)
        lo_base = min(o, c)
        lo = max(
            tick_size(lo_base),
            lo_base - tick_size(lo_base) * int((self._unit(code, "lo", n) + 1) * 4),
        )
        return Bar(d.strftime("%Y%m%d"), o, hi, lo, c, vol, pc)

    def daily_bars(self, code: str) -> list[Bar]:
        """Every daily bar of the history, newest first (a new list; callers may keep it)."""
        last = self.last_day()
        if last != self.today():
            return list(self._finished_days(code, last, self.history_days))
        today = self.daily_bar(code, last)
        return [today, *self._finished_days(code, prev_trading_day(last), self.history_days - 1)]

    def _finished_days(self, code: str, newest: date, count: int) -> tuple[Bar, ...]:
        # Days before today never change for a given anchor, so build them once.
        key = (code, newest, count, prev_trading_day(self.today()))
        hit = self._history_cache.get(key)
        if hit is None:
            bars = []
            d = newest
            for _ in range(count):
                bars.append(self.daily_bar(code, d))
                d = prev_trading_day(d)
            if len(self._history_cache) > 256:
                self._history_cache.clear()
            hit = self._history_cache[key] = tuple(bars)
        return hit

    def minute_bars(self, code: str, scope: int, *, ticks: bool = False) -> list[Bar]:
        """Intraday bars newest first over `intraday_days` days (ticks: the last day only)."""
        out: list[Bar] = []
        d = self.last_day()
        days = 1 if ticks else self.intraday_days
        for _ in range(days):
            pc = self.close(code, prev_trading_day(d))
            prices = self.path(code, d)
            until = self._now_minute(d) or 0
            day_bars = (
                self._tick_bars(code, d, prices, until, scope, pc)
                if ticks
                else self._min_bars(code, d, prices, until, scope, pc)
            )
            out.extend(reversed(day_bars))
            d = prev_trading_day(d)
        return out

    def _min_bars(
        self, code: str, d: date, prices: list[int], until: int, scope: int, pc: int
    ) -> list[Bar]:
        bars = []
        ymd = d.strftime("%Y%m%d")
        for start in range(0, max(until, 1), scope):
            end = min(start + scope, SESSION_MINUTES, max(until, 1))
            seg = prices[start : end + 1]
            label_min = 9 * 60 + min(start + scope, SESSION_MINUTES)
            qty = 1_000 + int((self._unit(code, f"mq{ymd}", start) + 1) * 20_000) * scope
            bars.append(
                Bar(
                    f"{ymd}{label_min // 60:02d}{label_min % 60:02d}00",
                    seg[0],
                    max(seg),
                    min(seg),
                    seg[-1],
                    qty,
                    pc,
                )
            )
        return bars

    def _tick_bars(
        self, code: str, d: date, prices: list[int], until: int, scope: int, pc: int
    ) -> list[Bar]:
        bars = []
        ymd = d.strftime("%Y%m%d")
        span = TICK_SPACING_S * scope
        limit = max(until, 1) * 60
        start = max(0, limit - self.page_rows * 9 * span)  # the day's last ~900 bars at most
        start -= start % span
        for s in range(start, limit, span):
            minute = min(s // 60, SESSION_MINUTES)
            base = prices[minute]
            jitter = tick_size(base) * int(self._unit(code, f"tk{ymd}", s) * 3)
            price = round_to_tick(max(1, base + jitter), "down")
            t = 9 * 3600 + s + span
            qty = 1 + int((self._unit(code, f"tq{ymd}", s) + 1) * 200) * scope
            bars.append(
                Bar(
                    f"{ymd}{t // 3600:02d}{t % 3600 // 60:02d}{t % 60:02d}",
                    price,
                    price,
                    price,
                    price,
                    qty,
                    pc,
                )
            )
        return bars

    def period_bars(self, code: str, period: str) -> list[Bar]:
        """Weekly ("W"), monthly ("M") or yearly ("Y") bars from the daily history, newest first."""
        groups: dict[tuple[int, int], list[Bar]] = {}
        for bar in reversed(self.daily_bars(code)):
            d = datetime.strptime(bar.label, "%Y%m%d").date()
            if period == "W":
                iso = d.isocalendar()
                key = (iso.year, iso.week)
            elif period == "M":
                key = (d.year, d.month)
            else:
                key = (d.year, 0)
            groups.setdefault(key, []).append(bar)
        out = []
        for bars in groups.values():
            out.append(
                Bar(
                    bars[0].label,
                    bars[0].open,
                    max(b.high for b in bars),
                    min(b.low for b in bars),
                    bars[-1].close,
                    sum(b.qty for b in bars),
                    bars[0].prev_close,
                )
            )
        out.reverse()
        return out

    # --- handlers -------------------------------------------------------------------------

    def _code(self, body: dict[str, Any]) -> str:
        stk_cd = str(body.get("stk_cd", "")).strip()
        code, _ = split_exchange(stk_cd)
        try:
            self.universe.listing(code)
        except ValueError:
            raise input_error(
                1902,
                f"종목 정보가 없습니다. 입력한 종목코드 값을 확인바랍니다. 종목코드={stk_cd}",
            ) from None
        return code

    def _page(
        self, rows: list[dict[str, str]], key_field: str, next_key: str
    ) -> tuple[list[dict[str, str]], str]:
        start = 0
        if next_key:
            for i, row in enumerate(rows):
                if row[key_field] == next_key:
                    start = i
                    break
            else:
                raise input_error(
                    1517,
                    f"입력 값 형식이 올바르지 않습니다. 파라미터=next-key 실패사유= {next_key}",
                )
        page = rows[start : start + self.page_rows]
        more = start + self.page_rows < len(rows)
        return page, rows[start + self.page_rows][key_field] if more else ""

    def _cut_at_base(self, bars: list[Bar], body: dict[str, Any]) -> list[Bar]:
        base = str(body.get("base_dt", "")).strip()
        if not base:
            return bars
        if not _DATE.match(base):
            raise input_error(
                1517, f"입력 값 형식이 올바르지 않습니다. 파라미터=base_dt 실패사유= {base}"
            )
        return [b for b in bars if b.label[:8] <= base]

    async def ka10001(self, body: dict[str, Any], next_key: str) -> SimReply:
        code = self._code(body)
        listing = self.universe.listing(code)
        ref = listing.prev_close
        bars = self.daily_bars(code)
        today = bars[0]
        cur = today.close if today.label == self.today().strftime("%Y%m%d") else ref
        last250 = bars[:250]
        hi250 = max(last250, key=lambda b: b.high)
        lo250 = min(last250, key=lambda b: b.low)
        year = [b for b in bars if b.label[:4] == bars[0].label[:4]] or bars[:1]
        lower, upper = price_limits(ref)
        in_session = today.label == self.today().strftime("%Y%m%d")
        cap = listing.shares * 100 // 100_000_000
        dstr = listing.shares * 3 // 4
        u = self._unit(code, "info", 0)

        out = {
            "stk_cd": str(body.get("stk_cd", code)),
            "stk_nm": listing.name,
            "setl_mm": "12",
            "fav": "100" if code == "005930" else "5000",
            "cap": str(cap),
            "flo_stk": str(listing.shares // 1000),
            "crd_rt": decimal(int(abs(u) * 300), 2, sign=True),
            "oyr_hgst": direction_price(max(b.high for b in year), cur),
            "oyr_lwst": direction_price(min(b.low for b in year), cur),
            "mac": str(cur * listing.shares // 100_000_000),
            "mac_wght": "",
            "for_exh_rt": decimal(1_000 + int(abs(u) * 5_000), 2, sign=True),
            "repl_pric": str(round_to_tick(max(1, ref * 8 // 10), "down")),
            "per": decimal(800 + int(abs(u) * 2_000), 2),
            "eps": str(max(1, cur * 10 // (80 + int(abs(u) * 200)))),
            "roe": decimal(300 + int(abs(u) * 1_500), 2),
            "pbr": decimal(50 + int(abs(u) * 250), 2),
            "ev": decimal(300 + int(abs(u) * 1_000), 2),
            "bps": str(cur * 100 // (50 + int(abs(u) * 250))),
            "sale_amt": str(cap * 40),
            "bus_pro": str(cap * 4),
            "cup_nga": str(cap * 3),
            "250hgst": direction_price(hi250.high, cur),
            "250lwst": direction_price(lo250.low, cur),
            "high_pric": direction_price(today.high, ref) if in_session else "0",
            "open_pric": direction_price(today.open, ref) if in_session else "0",
            "low_pric": direction_price(today.low, ref) if in_session else "0",
            "upl_pric": direction_price(upper, ref),
            "lst_pric": direction_price(lower, ref),
            "base_pric": str(ref),
            "exp_cntr_pric": "0",
            "exp_cntr_qty": "0",
            "250hgst_pric_dt": hi250.label,
            "250hgst_pric_pre_rt": percent(cur - hi250.high, hi250.high, sign=True),
            "250lwst_pric_dt": lo250.label,
            "250lwst_pric_pre_rt": percent(cur - lo250.low, lo250.low, sign=True),
            "cur_prc": direction_price(cur, ref),
            "pre_sig": pre_sig(cur, ref, (lower, upper)),
            "pred_pre": signed(cur - ref),
            "flu_rt": percent(cur - ref, ref, sign=True),
            "trde_qty": str(today.qty if in_session else 0),
            "trde_pre": decimal(int(u * 5_000), 2, sign=True),
            "fav_unit": "원",
            "dstr_stk": str(dstr),
            "dstr_rt": decimal(dstr * 10_000 // listing.shares, 2, sign=True),
        }
        return SimReply(out)

    async def ka10004(self, body: dict[str, Any], next_key: str) -> SimReply:
        code = self._code(body)
        ref = self.universe.prev_close(code)
        now = self.clock.now()
        salt = now.hour * 60 + now.minute
        live = self.book_of(code) if self.book_of is not None else None
        asks, bids = live if live is not None else self._synthetic_book(code, ref, salt)

        def change(side: str, level: int) -> str:
            return signed(int(self._unit(code, f"chg{side}{salt}", level) * 500))

        out: dict[str, str] = {"bid_req_base_tm": now.strftime("%H%M%S")}
        for side, levels in (("sel", asks), ("buy", bids)):
            for lvl in range(1, 11):
                # Levels past a daily limit do not exist; they answer 0.
                price, qty = levels[lvl - 1] if lvl <= len(levels) else (0, 0)
                stem = "fpr" if lvl == 1 else f"{lvl}th_pre"
                out[f"{side}_{stem}_bid"] = direction_price(price, ref) if price else "0"
                out[f"{side}_{stem}_req"] = str(qty)
                out[f"{side}_{lvl}th_pre_req_pre"] = change(side, lvl)
            out[f"tot_{side}_req"] = str(sum(q for _, q in levels[:10]))
            out[f"tot_{side}_req_jub_pre"] = change(side, 0)
        out["ovt_sel_req"] = "0"
        out["ovt_buy_req"] = "0"
        out["ovt_sel_req_pre"] = "0"
        out["ovt_buy_req_pre"] = "0"
        return SimReply(out)

    def _synthetic_book(self, code: str, ref: int, salt: int) -> BookLevels:
        """10 seeded levels a tick apart around the current price, inside the daily limits."""
        lower, upper = price_limits(ref)
        cur = self.current_price(code)
        asks: list[int] = []
        bids: list[int] = []
        p = cur
        while len(asks) < 10 and p < upper:
            p = round_to_tick(p + 1, "up")
            asks.append(p)
        p = cur
        while len(bids) < 10 and p >= lower:
            bids.append(p)
            p = round_to_tick(p - 1, "down") if p > 1 else 0

        def qty(side: str, level: int) -> int:
            return 100 + int((self._unit(code, f"book{side}{salt}", level) + 1) * 20_000)

        return (
            [(a, qty("sel", i + 1)) for i, a in enumerate(asks)],
            [(b, qty("buy", i + 1)) for i, b in enumerate(bids)],
        )

    async def ka10079(self, body: dict[str, Any], next_key: str) -> SimReply:
        code = self._code(body)
        scope = _scope(body, TICK_SCOPES)
        bars = self.minute_bars(code, scope, ticks=True)
        rows = [_intraday_row(b, signed_prices=False) for b in bars]
        page, key = self._page(rows, "cntr_tm", next_key)
        return SimReply(
            {"stk_cd": str(body["stk_cd"]), "last_tic_cnt": str(scope), "stk_tic_chart_qry": page},
            next_key=key,
        )

    async def ka10080(self, body: dict[str, Any], next_key: str) -> SimReply:
        code = self._code(body)
        scope = _scope(body, MINUTE_SCOPES)
        bars = self._cut_at_base(self.minute_bars(code, scope), body)
        rows = [_intraday_row(b, signed_prices=True) for b in bars]
        page, key = self._page(rows, "cntr_tm", next_key)
        return SimReply(
            {"stk_cd": str(body["stk_cd"]), "stk_min_pole_chart_qry": page}, next_key=key
        )

    async def ka10081(self, body: dict[str, Any], next_key: str) -> SimReply:
        return self._dated(body, next_key, "stk_dt_pole_chart_qry", self.daily_bars, daily=True)

    async def ka10082(self, body: dict[str, Any], next_key: str) -> SimReply:
        return self._dated(
            body, next_key, "stk_stk_pole_chart_qry", lambda c: self.period_bars(c, "W")
        )

    async def ka10083(self, body: dict[str, Any], next_key: str) -> SimReply:
        return self._dated(
            body, next_key, "stk_mth_pole_chart_qry", lambda c: self.period_bars(c, "M")
        )

    async def ka10094(self, body: dict[str, Any], next_key: str) -> SimReply:
        return self._dated(
            body, next_key, "stk_yr_pole_chart_qry", lambda c: self.period_bars(c, "Y"), full=False
        )

    async def ka10099(self, body: dict[str, Any], next_key: str) -> SimReply:
        market = str(body.get("mrkt_tp", "")).strip()
        rows = [
            _reference_row(item, self._unit(item.code, "ref", 0))
            for item in self.universe.listed()
            if _MARKETS[item.market][0] == market
        ]
        return SimReply({"list": rows})

    async def ka10100(self, body: dict[str, Any], next_key: str) -> SimReply:
        code = self._code(body)
        return SimReply(_reference_row(self.universe.listing(code), self._unit(code, "ref", 0)))

    def _dated(
        self,
        body: dict[str, Any],
        next_key: str,
        list_field: str,
        bars_of: Callable[[str], list[Bar]],
        *,
        full: bool = True,
        daily: bool = False,
    ) -> SimReply:
        code = self._code(body)
        shares = self.universe.listing(code).shares
        bars = self._cut_at_base(bars_of(code), body)
        rows = [_dated_row(b, shares, full=full, millions=daily) for b in bars]
        page, key = self._page(rows, "dt", next_key)
        return SimReply({"stk_cd": str(body["stk_cd"]), list_field: page}, next_key=key)


_MARKETS = {"KOSPI": ("0", "거래소"), "KOSDAQ": ("10", "코스닥")}
_SECTORS = ("전기전자", "화학", "서비스업", "의약품", "운수장비", "유통업", "금융업")


def _reference_row(listing: Listing, seed_unit: float) -> dict[str, str]:
    market_code, market_name = _MARKETS[listing.market]
    year = 1975 + int((seed_unit + 1) * 24)
    return {
        "code": listing.code,
        "name": listing.name,
        "listCount": padded(listing.shares, 16),
        "auditInfo": "정상",
        "regDay": f"{year}0{1 + int((seed_unit + 1) * 4)}15",
        "lastPrice": padded(listing.prev_close, 8),
        "state": "증거금20%|담보대출|신용가능",
        "marketCode": market_code,
        "marketName": market_name,
        "upName": _SECTORS[int((seed_unit + 1) * 3.5) % len(_SECTORS)],
        "upSizeName": "대형주" if listing.shares > 100_000_000 else "중형주",
        "companyClassName": "우량기업부" if listing.market == "KOSDAQ" else "",
        "orderWarning": "0",
        "nxtEnable": "Y",
    }


def _scope(body: dict[str, Any], allowed: frozenset[int]) -> int:
    raw = str(body.get("tic_scope", "")).strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) not in allowed:
        raise input_error(
            1517, f"입력 값 형식이 올바르지 않습니다. 파라미터=tic_scope 실패사유= {raw}"
        )
    return int(raw)


def _intraday_row(b: Bar, *, signed_prices: bool) -> dict[str, str]:
    def p(v: int) -> str:
        return direction_price(v, b.prev_close) if signed_prices else str(v)

    return {
        "cur_prc": p(b.close),
        "trde_qty": str(b.qty),
        "cntr_tm": b.label,
        "open_pric": p(b.open),
        "high_pric": p(b.high),
        "low_pric": p(b.low),
        "pred_pre": signed(b.close - b.prev_close),
        "pred_pre_sig": pre_sig(b.close, b.prev_close),
    }


def _dated_row(b: Bar, shares: int, *, full: bool, millions: bool) -> dict[str, str]:
    # The daily chart documents 거래대금 in 백만원, the longer periods in 원.
    amount = b.qty * b.close
    row = {
        "cur_prc": str(b.close),
        "trde_qty": str(b.qty),
        "trde_prica": str(amount // 1_000_000 if millions else amount),
        "dt": b.label,
        "open_pric": str(b.open),
        "high_pric": str(b.high),
        "low_pric": str(b.low),
    }
    if full:
        row["pred_pre"] = signed(b.close - b.prev_close)
        row["pred_pre_sig"] = pre_sig(b.close, b.prev_close)
        row["trde_tern_rt"] = decimal(b.qty * 10_000 // shares, 2, sign=True)
    return row
