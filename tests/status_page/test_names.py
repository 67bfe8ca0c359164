"""Symbol names from the broker's stock lists: read once a day, cached on disk, and a broker
that fails leaves the page with codes alone; the page file itself is self-contained."""

from __future__ import annotations

import re
from datetime import date
from importlib import resources
from pathlib import Path

import orjson

from engine.models import Listed, ListedMarket
from engine.status_page.names import SymbolNames
from engine.status_page.page import loopback_host

TODAY = date(2026, 12, 7)


class Broker:
    def __init__(self, fail: bool = False) -> None:
        self.asked: list[ListedMarket] = []
        self.fail = fail

    async def __call__(self, market: ListedMarket) -> list[Listed]:
        self.asked.append(market)
        if self.fail:
            raise ConnectionError("kiwoom unreachable")
        if market is ListedMarket.KOSPI:
            return [Listed("005930", "삼성전자", market), Listed("000660", "SK하이닉스", market)]
        return [Listed("035720", "카카오\n<b>", market)]


async def test_the_lists_are_read_cached_and_not_read_again_the_same_day(tmp_path: Path) -> None:
    path = tmp_path / "state" / "symbol_names.json"
    names = SymbolNames(path)
    broker = Broker()
    assert await names.refresh(broker, TODAY)
    assert broker.asked == [ListedMarket.KOSPI, ListedMarket.KOSDAQ]
    assert names.get("005930") == "삼성전자"
    assert names.get("035720") == "카카오<b>"  # one printable line (shown as text anyway)
    assert orjson.loads(path.read_bytes())["day"] == "2026-12-07"

    again = SymbolNames(path)
    again.load()
    assert again.get("000660") == "SK하이닉스"
    assert not await again.refresh(broker, TODAY)  # today's cache: the broker is not asked
    assert len(broker.asked) == 2
    assert await again.refresh(broker, date(2026, 12, 8))  # a new day: read again
    assert len(broker.asked) == 4


async def test_a_broker_that_fails_or_a_broken_cache_leaves_the_names_there_were(
    tmp_path: Path,
) -> None:
    path = tmp_path / "symbol_names.json"
    path.write_text("{not json")
    names = SymbolNames(path)
    names.load()  # logged, not raised
    assert names.names == {}
    assert not await names.refresh(Broker(fail=True), TODAY)
    assert names.names == {}
    assert await names.refresh(Broker(), TODAY)
    assert not await names.refresh(Broker(fail=True), date(2026, 12, 8))
    assert names.get("005930") == "삼성전자"  # yesterday's names still serve


def test_the_page_is_one_self_contained_file() -> None:
    page = resources.files("engine.status_page").joinpath("status.html").read_text("utf-8")
    # Nothing fetched from elsewhere: no URLs, no external scripts, styles or fonts.
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "url(" not in page
    # Read-only: no form, no button, no POST.
    assert not re.search(r"<(form|button)\b|method=|\"POST\"", page, re.IGNORECASE)
    # It names a CJK face first.
    assert '--font: "Kiwoom KR", "NanumGothic"' in page


def test_the_page_answers_loopback_host_names_only() -> None:
    for host in ("127.0.0.1:18780", "localhost", "LOCALHOST:1", "[::1]:18780", "127.1.2.3:80"):
        assert loopback_host(host), host
    for host in ("evil.example", "evil.example:18780", "127.0.0.1.evil.example", "[::2]:1", ""):
        assert not loopback_host(host), host
