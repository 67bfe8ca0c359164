"""Volatility interruptions (VI) like KRX's, for the simulator: when a symbol's trade moves too
far, continuous matching stops for a single-price auction, then resumes.

Static VI: a trade `static_pct` % or more from the static reference (the base price, then the
price of the last auction). Dynamic VI: a trade `dynamic_pct` % or more from the price
`window_s` ago (the reference is re-read every window). Either halts the symbol for
`auction_s`; orders are taken meanwhile and matched when it ends (the caller matches them).
Pure logic on times the caller passes; the 1h entries are Kiwoom's wire shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

VI_TYPE: Final = "1h"
VI_NAME: Final = "VI발동/해제"
TRIGGER: Final = "1"  # 9068 as the engine's codec reads it (engine/kiwoom/fids.py)
RELEASE: Final = "2"
KIND_TEXT: Final = {"static": "정적", "dynamic": "동적"}


@dataclass
class _State:
    static_ref: int
    dynamic_ref: int
    window_start: float
    count: int = 0
    kind: str = ""
    trigger_price: int = 0
    trigger_hms: str = ""
    release_at: float | None = None


class ViMonitor:
    def __init__(
        self, static_pct: float, dynamic_pct: float, window_s: float, auction_s: float
    ) -> None:
        self.static_bp = round(static_pct * 100)
        self.dynamic_bp = round(dynamic_pct * 100)
        self.window_s = window_s
        self.auction_s = auction_s
        self._syms: dict[str, _State] = {}
        self.triggered = 0

    def halted(self, code: str) -> bool:
        st = self._syms.get(code)
        return st is not None and st.release_at is not None

    def halted_codes(self) -> set[str]:
        return {c for c, st in self._syms.items() if st.release_at is not None}

    def _state(self, code: str, base: int, now: float) -> _State:
        st = self._syms.get(code)
        if st is None:
            st = self._syms[code] = _State(base, base, now)
        return st

    def on_trade(
        self, code: str, price: int, base: int, now: float, hms: str
    ) -> dict[str, Any] | None:
        """A trade at `price`: the 1h trigger entry when it sets a VI off, else None."""
        st = self._state(code, base, now)
        if st.release_at is not None:
            return None
        if now - st.window_start >= self.window_s:
            st.dynamic_ref, st.window_start = price, now
        kind = ""
        if _moved_bp(price, st.static_ref) >= self.static_bp:
            kind = "static"
        elif _moved_bp(price, st.dynamic_ref) >= self.dynamic_bp:
            kind = "dynamic"
        if not kind:
            return None
        return self.trigger(code, kind, price, base, now, hms)

    def trigger(
        self, code: str, kind: str, price: int, base: int, now: float, hms: str
    ) -> dict[str, Any]:
        """Start a VI of `kind` ("static"/"dynamic") now; its 1h trigger entry."""
        st = self._state(code, base, now)
        st.count += 1
        st.kind = kind
        st.trigger_price = price
        st.trigger_hms = hms
        st.release_at = now + self.auction_s
        self.triggered += 1
        return self._entry(code, st, TRIGGER, "")

    def due(self, now: float) -> list[str]:
        """Codes whose auction has ended by `now`."""
        return [
            c for c, st in self._syms.items() if st.release_at is not None and now >= st.release_at
        ]

    def release(self, code: str, price: int, now: float, hms: str) -> dict[str, Any]:
        """End `code`'s auction at `price` (its uncross): both references move there."""
        st = self._syms[code]
        st.release_at = None
        st.static_ref = st.dynamic_ref = price
        st.window_start = now
        return self._entry(code, st, RELEASE, hms)

    def _entry(self, code: str, st: _State, action: str, release_hms: str) -> dict[str, Any]:
        values = {
            "9001": code,
            "9068": action,
            "1221": str(st.trigger_price),
            "1223": st.trigger_hms,
            "1224": release_hms,
            "1225": KIND_TEXT[st.kind],
            "1236": str(st.static_ref),
            "1237": str(st.dynamic_ref),
            "1490": str(st.count),
        }
        return {"type": VI_TYPE, "name": VI_NAME, "item": code, "values": values}


def _moved_bp(price: int, ref: int) -> int:
    """How far `price` is from `ref`, in basis points (truncated)."""
    return abs(price - ref) * 10_000 // ref if ref > 0 else 0
