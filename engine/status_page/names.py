"""Symbol names (005930 -> 삼성전자) from the broker's stock lists, cached in one JSON file in
the state directory and read again once a trading day: the lists change with listings, not
by the minute, and each is a few thousand rows."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Final

import orjson
import structlog

from engine.models import Listed, ListedMarket

log = structlog.get_logger(__name__)

CACHE_FILE: Final = "symbol_names.json"
MAX_NAME_CHARS: Final = 40

Fetch = Callable[[ListedMarket], Awaitable[list[Listed]]]
"""One market's stock list (KiwoomApi.listed)."""


class SymbolNames:
    """symbol -> name. `get` is a dict read (the snapshot asks on the loop); `refresh` asks
    the broker when the cache is not from `today`, and never raises."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, str] = {}
        self.day: str | None = None
        """The day the cached lists were read (ISO), None before any."""

    def get(self, symbol: str) -> str | None:
        return self.names.get(symbol)

    def load(self) -> None:
        """Read the cache file; a missing or unreadable one leaves no names (a warning for
        the unreadable: it is read again from the broker)."""
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as e:
            log.warning("symbol_names_unreadable", path=str(self.path), error=str(e))
            return
        names = raw.get("names") if isinstance(raw, dict) else None
        day = raw.get("day") if isinstance(raw, dict) else None
        if not isinstance(names, dict) or not isinstance(day, str):
            log.warning("symbol_names_unreadable", path=str(self.path), error="not a names file")
            return
        self.names = {str(k): _clean(str(v)) for k, v in names.items() if isinstance(v, str)}
        self.day = day

    def update(self, listed: Iterable[Listed], day: date) -> None:
        """Take `listed` as the names of `day`, and write the cache (atomically: a file
        beside it, renamed over it). A write that fails is logged; the names stay."""
        self.names = {x.symbol: _clean(x.name) for x in listed}
        self.day = day.isoformat()
        body = orjson.dumps({"day": self.day, "names": self.names})
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(body)
            os.replace(tmp, self.path)
        except OSError as e:
            log.warning("symbol_names_not_cached", path=str(self.path), error=str(e))
            with contextlib.suppress(OSError):
                tmp.unlink()

    async def refresh(self, fetch: Fetch, today: date) -> bool:
        """Read every market's list unless the cache is from `today`. Returns whether the
        names were read anew. A broker error is logged and leaves the names as they were
        (the page then shows codes alone)."""
        if self.day == today.isoformat() and self.names:
            return False
        listed: list[Listed] = []
        try:
            for market in ListedMarket:
                listed += await fetch(market)
        except Exception as e:  # any failure leaves the page with codes alone
            log.warning("symbol_names_unavailable", error_type=type(e).__name__, error=str(e))
            return False
        if not listed:
            log.warning("symbol_names_unavailable", error="the stock lists were empty")
            return False
        self.update(listed, today)
        log.info("symbol_names_read", symbols=len(self.names))
        return True


def _clean(name: str) -> str:
    """One short printable line: a name is shown as text, never trusted as markup."""
    return "".join(c for c in name if c.isprintable()).strip()[:MAX_NAME_CHARS]
