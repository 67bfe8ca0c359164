"""The simulator's listed stocks: a deterministic name, previous close and share count per code.

Five well-known codes have fixed names and closes; every other 6-character code gets values
derived from a hash of (seed, code), so any symbol can be asked about and the answer never
changes between runs. Previous closes sit on valid KRX ticks (engine.trading.krx).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from engine.trading.krx import round_to_tick

# (name, previous close in KRW, listed shares)
_KNOWN: dict[str, tuple[str, int, int]] = {
    "005930": ("삼성전자", 70_000, 5_969_782_550),
    "000660": ("SK하이닉스", 180_000, 728_002_365),
    "035420": ("NAVER", 190_000, 158_437_008),
    "035720": ("카카오", 42_000, 442_740_136),
    "051910": ("LG화학", 320_000, 70_592_343),
}

_NAME_HEADS = ("한빛", "대성", "동양", "서진", "미래", "태평", "신화", "에이스", "청우", "누리")
_NAME_TAILS = ("전자", "화학", "바이오", "중공업", "제약", "건설", "식품", "소재", "통신", "금융")


def is_valid_code(code: str) -> bool:
    """True for a 6-character KRX short code (digits, or the newer alphanumeric ones)."""
    return len(code) == 6 and code.isascii() and code.isalnum() and code[0].isdigit()


def split_exchange(stk_cd: str) -> tuple[str, str]:
    """Split a request code into (6-char code, exchange suffix ``""``/``"NX"``/``"AL"``)."""
    if len(stk_cd) == 9 and stk_cd[6] == "_" and stk_cd[7:] in ("NX", "AL"):
        return stk_cd[:6], stk_cd[7:]
    return stk_cd, ""


@dataclass(frozen=True)
class Listing:
    code: str
    name: str
    prev_close: int
    shares: int
    market: str
    """"KOSPI" or "KOSDAQ"."""


class Universe:
    """Deterministic reference data per code; the same seed always gives the same answers."""

    def __init__(self, seed: int, symbols: tuple[str, ...] = tuple(_KNOWN)) -> None:
        self.seed = seed
        self.symbols = symbols
        """The codes the simulator trades and lists first (from SimConfig.symbols)."""
        self._cache: dict[str, Listing] = {}

    def listing(self, code: str) -> Listing:
        """Reference data for a 6-character code. Raises ValueError for a malformed code."""
        hit = self._cache.get(code)
        if hit is not None:
            return hit
        if not is_valid_code(code):
            raise ValueError(f"not a KRX short code: {code!r}")
        known = _KNOWN.get(code)
        h = self._hash(code)
        if known is not None:
            name, close, shares = known
            market = "KOSPI"
        else:
            name = _NAME_HEADS[h % len(_NAME_HEADS)] + _NAME_TAILS[(h >> 8) % len(_NAME_TAILS)]
            # Log-uniform-ish spread from ~1,000 to ~500,000 KRW.
            close = round_to_tick(1_000 * (1 + (h >> 16) % 23) ** 2, "down")
            shares = 10_000_000 + (h >> 32) % 490_000_000
            market = "KOSPI" if (h >> 48) % 2 == 0 else "KOSDAQ"
        item = Listing(code, name, close, shares, market)
        self._cache[code] = item
        return item

    def listed(self, extra: int = 25) -> list[Listing]:
        """The simulator's listed market: the configured symbols, then `extra` seeded codes."""
        codes = list(dict.fromkeys(self.symbols))
        i = 0
        while len(codes) < len(self.symbols) + extra:
            code = f"{10_000 + self._hash(f'listed{i}') % 90_000}0"
            if code not in codes:
                codes.append(code)
            i += 1
        return [self.listing(c) for c in codes]

    def name(self, code: str) -> str:
        """The listing's name; raises ValueError for a malformed code."""
        return self.listing(code).name

    def prev_close(self, code: str) -> int:
        """The listing's previous close (KRW, on tick); raises ValueError for a malformed code."""
        return self.listing(code).prev_close

    def _hash(self, code: str) -> int:
        digest = hashlib.blake2b(f"{self.seed}:{code}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")
