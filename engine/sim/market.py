"""Seeded market generator for the simulator: prices, 10-level books and REAL entries.

Each symbol walks on KRX ticks inside its daily limits; trades eat the book and move it. The
book here is the liquidity SimExchange trades against (`take`). Entries are Kiwoom wire format
(0B 주식체결, 0C 주식우선호가, 0D 주식호가잔량), every value a string, prices direction-signed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.clock import SYSTEM_CLOCK, Clock
from engine.sim.schema import direction_price, percent, pre_sig, signed
from engine.sim.universe import Universe
from engine.trading.krx import price_limits, tick_size

LEVELS = 10

_FIDS_0B_NUMS: tuple[int, ...] = (
    *(20, 10, 11, 12, 27, 28, 15, 13, 14, 16, 17, 18, 25, 26, 29, 30, 31, 32, 228, 311, 290),
    *(691, 567, 568, 851, 1890, 1891, 1892, 1030, 1031, 1032, 1071, 1072, 1313, 1315, 1316),
    *(1314, 1497, 1498, 620, 732, 852, 9081),
)
FIDS_0B: tuple[str, ...] = tuple(str(f) for f in _FIDS_0B_NUMS)
"""The 43 FIDs of 0B 주식체결, in the documented order."""

_FIDS_0D_NUMS: tuple[int, ...] = (
    21,
    *(f for i in range(LEVELS) for f in (41 + i, 61 + i, 81 + i, 51 + i, 71 + i, 91 + i)),
    *(121, 122, 125, 126, 23, 24, 128, 129, 138, 139, 200, 201, 238, 291, 292, 293, 294, 295),
    *(f for i in range(LEVELS) for f in (621 + i, 631 + i)),
    *(13, 299, 215, 216),
    *range(6044, 6088),
    *range(6100, 6116),
)
FIDS_0D: tuple[str, ...] = tuple(str(f) for f in _FIDS_0D_NUMS)
"""The 163 FIDs of 0D 주식호가잔량, in the documented order."""

_ASK_PRICE = tuple(str(41 + i) for i in range(LEVELS))
_BID_PRICE = tuple(str(51 + i) for i in range(LEVELS))
_ASK_QTY = tuple(str(61 + i) for i in range(LEVELS))
_BID_QTY = tuple(str(71 + i) for i in range(LEVELS))
_KRX_ASK_QTY = tuple(str(6044 + i) for i in range(LEVELS))
_KRX_BID_QTY = tuple(str(6054 + i) for i in range(LEVELS))

# Trade sizes (shares); skewed small like a real tape, with the odd block.
_TRADE_SIZES: tuple[int, ...] = (1, 1, 1, 2, 3, 5, 5, 10, 10, 15, 20, 30, 50, 80, 120, 300)
_LEVEL_QTY_MAX = 400

# Event mix per generated entry: trades, top-of-book, full book.
_P_TRADE = 0.5
_P_QUOTE = 0.65  # cumulative: 0.5-0.65 -> 0C, rest -> 0D


class Book(NamedTuple):
    """A 10-level book snapshot: (price, qty) pairs best first. Empty levels are left out."""

    asks: list[tuple[int, int]]
    bids: list[tuple[int, int]]


@dataclass
class _Sym:
    code: str
    name: str
    prev_close: int
    lower: int
    upper: int
    ladder: list[int]
    sp: list[str]  # direction-signed price string per ladder index
    chg: list[str]  # FID 11
    rate: list[str]  # FID 12
    sign: list[str]  # FID 25
    b: int
    """Ladder index of the best bid; the best ask is b + 1, so 0 <= b <= len(ladder) - 2."""
    ask_qty: list[int] = field(default_factory=list)
    """Size per ask level, best first; every level holds at least 1 share."""
    bid_qty: list[int] = field(default_factory=list)
    last_i: int = -1
    open_i: int = -1
    high_i: int = -1
    low_i: int = -1
    cum_vol: int = 0
    cum_value: int = 0
    buy_vol: int = 0
    sell_vol: int = 0


class MarketGenerator:
    """A reproducible market for a fixed set of symbols.

    Previous closes and names come from `universe` (default `Universe(seed)`); `prev_closes` /
    `names` override them per code (tests). The same seed, symbols and sequence of calls (and clock
    readings) produce the same entries. Not thread-safe; call from one task.
    """

    def __init__(
        self,
        symbols: Iterable[str],
        seed: int,
        clock: Clock = SYSTEM_CLOCK,
        *,
        universe: Universe | None = None,
        prev_closes: Mapping[str, int] | None = None,
        names: Mapping[str, str] | None = None,
        types: Sequence[str] = ("0B", "0C", "0D"),
    ) -> None:
        self._clock = clock
        self._rng = random.Random(seed)
        self._types = frozenset(types)
        unknown = self._types - {"0B", "0C", "0D"}
        if unknown:
            raise ValueError(f"unsupported realtime types: {sorted(unknown)}")
        self._syms: dict[str, _Sym] = {}
        uni = universe if universe is not None else Universe(seed)
        for code in symbols:
            prev = (prev_closes or {}).get(code) or uni.prev_close(code)
            name = (names or {}).get(code) or uni.name(code)
            self._syms[code] = self._new_symbol(code, name, prev)
        if not self._syms:
            raise ValueError("MarketGenerator needs at least one symbol")
        self._codes = list(self._syms)
        self._pending: list[dict[str, Any]] = []
        self._template_0b = dict.fromkeys(FIDS_0B, "")
        self._template_0d = dict.fromkeys(FIDS_0D, "")
        self.halted: set[str] = set()
        """Codes in a single-price auction (a VI): no trade, no generated event, no `take`."""

    def _new_symbol(self, code: str, name: str, prev: int) -> _Sym:
        lower, upper = price_limits(prev)
        ladder: list[int] = []
        p = lower
        while p <= upper:
            ladder.append(p)
            p += tick_size(p)
        if len(ladder) < 2:
            raise ValueError(f"{code}: previous close {prev} leaves no room for a book")
        sp = [direction_price(x, prev) for x in ladder]
        chg = [signed(x - prev) for x in ladder]
        rate = [percent(x - prev, prev, sign=True) for x in ladder]
        sign = [pre_sig(x, prev, (lower, upper)) for x in ladder]
        # Start with the best bid at the previous close (or just below when that is off-ladder).
        b = max(0, min(len(ladder) - 2, _index_at_or_below(ladder, prev)))
        rnd = self._rng.random
        s = _Sym(code, name, prev, lower, upper, ladder, sp, chg, rate, sign, b)
        s.ask_qty = [int(rnd() * _LEVEL_QTY_MAX) + 1 for _ in range(LEVELS)]
        s.bid_qty = [int(rnd() * _LEVEL_QTY_MAX) + 1 for _ in range(LEVELS)]
        return s

    # ---- reading state ------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """The generated codes, in configuration order."""
        return list(self._codes)

    def has(self, code: str) -> bool:
        return code in self._syms

    def name(self, code: str) -> str:
        return self._syms[code].name

    def prev_close(self, code: str) -> int:
        return self._syms[code].prev_close

    def limits(self, code: str) -> tuple[int, int]:
        """(lower, upper) daily limit prices."""
        s = self._syms[code]
        return s.lower, s.upper

    def best(self, code: str) -> tuple[int, int]:
        """(best bid, best ask)."""
        s = self._syms[code]
        return s.ladder[s.b], s.ladder[s.b + 1]

    def last_price(self, code: str) -> int:
        """The last trade price, or the previous close before the first trade."""
        s = self._syms[code]
        return s.ladder[s.last_i] if s.last_i >= 0 else s.prev_close

    def signed(self, code: str, price: int) -> str:
        """`price` direction-signed against this symbol's previous close."""
        return direction_price(price, self._syms[code].prev_close)

    def book(self, code: str) -> Book:
        """The current 10-level book (levels past the daily limits are absent)."""
        s = self._syms[code]
        n = len(s.ladder)
        asks = [(s.ladder[s.b + 1 + i], s.ask_qty[i]) for i in range(LEVELS) if s.b + 1 + i < n]
        bids = [(s.ladder[s.b - i], s.bid_qty[i]) for i in range(LEVELS) if s.b - i >= 0]
        return Book(asks, bids)

    # ---- the matcher's side ---------------------------------------------------------------

    def fillable(self, code: str, buy: bool, qty: int, limit: int | None) -> int:
        """How much of `qty` `take` would fill now, up to `qty`; changes nothing.

        Without a limit all of it (the book refills as it moves). With one, only the visible
        levels inside the limit count: past them the book is not made yet, so a fill-or-kill
        order deeper than the visible book is killed even where `take` could have found more.
        """
        if limit is None:
            return qty
        book = self.book(code)
        levels = book.asks if buy else book.bids
        inside = sum(q for p, q in levels if (p <= limit if buy else p >= limit))
        return min(qty, inside)

    def take(self, code: str, buy: bool, qty: int, limit: int | None) -> list[tuple[int, int]]:
        """Trade up to `qty` against the book as an aggressor, never past `limit`.

        Buys lift asks priced <= limit (None = any price inside the book); sells hit bids
        priced >= limit. Returns the (price, qty) fills best first; the consumed liquidity is
        gone and the book moves when a best level empties. Each fill is also queued as a 0B
        entry for the next `next_entries` call.
        """
        s = self._syms[code]
        fills: list[tuple[int, int]] = []
        if code in self.halted:
            return fills  # the auction takes the order; it is matched when the auction ends
        remaining = qty
        hms = self._now_hms()
        while remaining > 0:
            price = s.ladder[s.b + 1 if buy else s.b]
            if limit is not None and (price > limit if buy else price < limit):
                break
            q = min(s.ask_qty[0] if buy else s.bid_qty[0], remaining)
            fills.append((price, q))
            remaining -= q
            entry = self._cross(s, buy, q, hms)
            if "0B" in self._types:
                self._pending.append(entry)
        return fills

    # ---- generation -----------------------------------------------------------------------

    def next_entries(self, n: int) -> list[dict[str, Any]]:
        """The next `n` REAL data entries (0B/0C/0D dicts as in a REAL frame's `data` list).

        Fills made by `take` since the last call come first (as 0B), then generated events.
        Pure computation; does not block.
        """
        out: list[dict[str, Any]] = []
        if self._pending:
            out.extend(self._pending[:n])
            del self._pending[:n]
        hms = self._now_hms()
        rnd = self._rng.random
        codes = self._codes
        ncodes = len(codes)
        types = self._types
        halted = self.halted
        while len(out) < n:
            s = self._syms[codes[int(rnd() * ncodes)]]
            if halted and s.code in halted:
                if len(halted) >= ncodes:
                    break  # every symbol is in an auction: nothing trades
                continue
            r = rnd()
            if r < _P_TRADE:
                if "0B" in types:
                    out.append(self._generated_trade(s, hms))
            elif r < _P_QUOTE:
                if "0C" in types:
                    out.append(self._entry_0c(s))
            else:
                # Book churn: one level is replenished or partly pulled, then the book is sent.
                lvl = int(rnd() * LEVELS)
                side = s.ask_qty if rnd() < 0.5 else s.bid_qty
                side[lvl] = int(rnd() * _LEVEL_QTY_MAX) + 1
                if "0D" in types:
                    out.append(self._entry_0d(s, hms))
        return out

    def _now_hms(self) -> str:
        return self._clock.now().strftime("%H%M%S")

    def _generated_trade(self, s: _Sym, hms: str) -> dict[str, Any]:
        rnd = self._rng.random
        buy = rnd() < 0.5
        size = _TRADE_SIZES[int(rnd() * len(_TRADE_SIZES))]
        return self._cross(s, buy, min(size, s.ask_qty[0] if buy else s.bid_qty[0]), hms)

    def _cross(self, s: _Sym, buy: bool, q: int, hms: str) -> dict[str, Any]:
        """Trade `q` (at most the best level's size) at the best ask (buy) or bid (sell).

        Returns the trade's 0B entry. A level emptied by the trade moves the book one tick; at
        a daily limit, where it cannot move, fresh orders refill the level instead. The entry's
        best ask and bid (27/28) are the book's after the trade, as an exchange's print
        carries them: an order sent on the print meets that book.
        """
        self._trade(s, s.b + 1 if buy else s.b, q, buy)
        level = s.ask_qty if buy else s.bid_qty
        level[0] -= q
        if level[0] == 0 and not self._move(s, up=buy):
            level[0] = self._fresh_qty()
        return self._entry_0b(s, q, buy, hms)

    def _fresh_qty(self) -> int:
        return int(self._rng.random() * _LEVEL_QTY_MAX) + 1

    @staticmethod
    def _trade(s: _Sym, price_i: int, q: int, buy: bool) -> None:
        s.last_i = price_i
        if s.open_i < 0:
            s.open_i = s.high_i = s.low_i = price_i
        elif price_i > s.high_i:
            s.high_i = price_i
        elif price_i < s.low_i:
            s.low_i = price_i
        s.cum_vol += q
        s.cum_value += s.ladder[price_i] * q
        if buy:
            s.buy_vol += q
        else:
            s.sell_vol += q

    def _move(self, s: _Sym, up: bool) -> bool:
        """Shift the book one tick after its best level on one side emptied.

        Returns False at a daily limit, where the book cannot move further.
        """
        rnd = self._rng.random
        if up:
            if s.b + 2 >= len(s.ladder):
                return False
            s.b += 1
            # The emptied best ask becomes the new best bid, fed by fresh buyers.
            s.bid_qty = [int(rnd() * _LEVEL_QTY_MAX) + 1, *s.bid_qty[:-1]]
            s.ask_qty = [*s.ask_qty[1:], int(rnd() * _LEVEL_QTY_MAX) + 1]
        else:
            if s.b - 1 < 0:
                return False
            s.b -= 1
            s.ask_qty = [int(rnd() * _LEVEL_QTY_MAX) + 1, *s.ask_qty[:-1]]
            s.bid_qty = [*s.bid_qty[1:], int(rnd() * _LEVEL_QTY_MAX) + 1]
        return True

    def _entry_0b(self, s: _Sym, q: int, buy: bool, hms: str) -> dict[str, Any]:
        i = s.last_i
        v = self._template_0b.copy()
        v["20"] = hms
        v["10"] = s.sp[i]
        v["11"] = s.chg[i]
        v["12"] = s.rate[i]
        v["27"] = s.sp[s.b + 1]
        v["28"] = s.sp[s.b]
        v["15"] = f"+{q}" if buy else f"-{q}"
        v["13"] = str(s.cum_vol)
        v["14"] = str(s.cum_value // 1_000_000)
        v["16"] = s.sp[s.open_i]
        v["17"] = s.sp[s.high_i]
        v["18"] = s.sp[s.low_i]
        v["25"] = s.sign[i]
        v["228"] = percent(s.buy_vol, s.sell_vol)
        v["290"] = "2"
        v["9081"] = "1"
        return {"type": "0B", "name": "주식체결", "item": s.code, "values": v}

    @staticmethod
    def _entry_0c(s: _Sym) -> dict[str, Any]:
        return {
            "type": "0C",
            "name": "주식우선호가",
            "item": s.code,
            "values": {"27": s.sp[s.b + 1], "28": s.sp[s.b]},
        }

    def _entry_0d(self, s: _Sym, hms: str) -> dict[str, Any]:
        v = self._template_0d.copy()
        v["21"] = hms
        n = len(s.ladder)
        b = s.b
        sp = s.sp
        ask_tot = bid_tot = 0
        for i in range(LEVELS):
            ai = b + 1 + i
            if ai < n:
                q = s.ask_qty[i]
                ask_tot += q
                qs = str(q)
                v[_ASK_PRICE[i]] = sp[ai]
                v[_ASK_QTY[i]] = qs
                v[_KRX_ASK_QTY[i]] = qs
            bi = b - i
            if bi >= 0:
                q = s.bid_qty[i]
                bid_tot += q
                qs = str(q)
                v[_BID_PRICE[i]] = sp[bi]
                v[_BID_QTY[i]] = qs
                v[_KRX_BID_QTY[i]] = qs
        v["121"] = v["6064"] = str(ask_tot)
        v["125"] = v["6065"] = str(bid_tot)
        net = bid_tot - ask_tot
        tot = bid_tot + ask_tot
        v["128"] = f"+{net}" if net > 0 else str(net)
        v["138"] = f"+{-net}" if net < 0 else str(-net)
        v["129"] = percent(bid_tot, tot)
        v["139"] = percent(ask_tot, tot)
        v["13"] = str(s.cum_vol)
        return {"type": "0D", "name": "주식호가잔량", "item": s.code, "values": v}


def _index_at_or_below(ladder: list[int], price: int) -> int:
    lo, hi = 0, len(ladder) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ladder[mid] <= price:
            lo = mid
        else:
            hi = mid - 1
    return lo
