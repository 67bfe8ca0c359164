"""The run-time universe's feed on Kiwoom (engine/universe/port.py): condition search over the
WebSocket, per-owner REG/REMOVE, and the base price (ka10001) and best quote (ka10004) a new
symbol needs before its first order. Data kinds become realtime types here, and only here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import KiwoomError, TransportError
from engine.kiwoom.fids import ORDER_BOOK, QUOTE, STOCK_INFO, TRADE, VI
from engine.kiwoom.ws import KiwoomWebSocket
from engine.kiwoom.wsproto import resolve_condition
from engine.universe.port import FeedUnavailable, Snapshot

TYPES_OF: Final[Mapping[str, str]] = {"trades": TRADE, "quotes": QUOTE, "book": ORDER_BOOK}
"""Data kind -> the realtime type that carries it (0B 주식체결, 0C 우선호가, 0D 호가잔량); VI
notices (1h) and stock info (0g) are registered with any of them."""


class KiwoomUniverseFeed:
    """`UniverseFeed` over one KiwoomWebSocket and KiwoomApi."""

    def __init__(self, ws: KiwoomWebSocket, api: KiwoomApi) -> None:
        self.ws = ws
        self.api = api
        self.max_realtime = ws.condition_book.max_realtime

    def condition_list(self) -> list[tuple[str, str]]:
        return list(self.ws.condition_book.names.items())

    async def list_conditions(self) -> list[tuple[str, str]]:
        return await self.ws.conditions()

    def resolve(self, ref: str) -> tuple[str, str]:
        return resolve_condition(self.condition_list(), ref)

    def members(self, seq: str) -> list[str] | None:
        book = self.ws.condition_book
        return book.members(seq) if seq in book.realtime else None

    async def watch(self, seq: str) -> None:
        try:
            await self.ws.search(seq, realtime=True)
        except TransportError as e:
            raise FeedUnavailable(str(e)) from e

    async def unwatch(self, seq: str) -> None:
        await self.ws.clear(seq)

    async def subscribe(self, owner: str, symbol: str, kinds: Iterable[str]) -> None:
        # With any data: VI notices (risk's VI_ACTIVE, on_vi, vi_active) and the stock's day
        # parameters (0g: base price and limits, as they change).
        types = {TYPES_OF[k] for k in kinds} | {VI, STOCK_INFO}
        await self.ws.subscribe_owner(owner, symbol, sorted(types))

    async def unsubscribe(self, owner: str, symbol: str) -> None:
        await self.ws.unsubscribe_owner(owner, symbol)

    async def snapshot(self, symbol: str) -> Snapshot:
        info = await self.api.stock_info(symbol)
        try:
            quote = await self.api.best_quote(symbol)
        except KiwoomError:
            quote = None
        return Snapshot(symbol, info.base_price, info.upper_limit, info.lower_limit, quote)
