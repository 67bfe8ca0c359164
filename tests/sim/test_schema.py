"""Schema-shaped answers for the whole catalogue, the wire formatters, and the pure parts of the
simulator (universe, price model, token store, faults)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Coroutine
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from engine.clock import KST, ManualClock
from engine.kiwoom.catalog import ApiSpec
from engine.sim.faults import Faults
from engine.sim.market import MarketGenerator
from engine.sim.marketdata import Marketdata, is_trading_day, prev_trading_day
from engine.sim.rest import SimReply
from engine.sim.schema import (
    decimal,
    direction_price,
    padded,
    percent,
    pre_sig,
    rest_catalog,
    schema_body,
    signed,
)
from engine.sim.tokens import TokenStore
from engine.sim.universe import Universe, split_exchange
from engine.trading.krx import price_limits, tick_size
from tests.sim.conftest import SimClient, SimFactory

REST = rest_catalog()
DAY = date(2026, 3, 4)
_CODE = re.compile(r"([0-9A-Za-z%]+)\s*:")


def sample_request(spec: ApiSpec) -> dict[str, str]:
    """A plausible value for every required field of `spec`."""
    us = spec.path.startswith("/api/us/")
    out: dict[str, str] = {}
    for f in spec.request:
        if not f.required:
            continue
        codes = _CODE.findall(f.desc)
        if f.name == "stk_cd":
            out[f.name] = "NVDA" if us else "005930"
        elif f.name == "tic_scope":
            out[f.name] = "1"
        elif "YYYYMMDD" in f.desc or f.name.endswith("_dt") or f.name == "dt":
            out[f.name] = "20260304"
        elif codes:
            out[f.name] = codes[0]
        else:
            out[f.name] = "1"
    return out


def test_catalogue_has_every_rest_api() -> None:
    assert len(REST) >= 306
    assert {"au10001", "au10002", "ka10001", "kt10000", "ust20000"} <= set(REST)
    assert "ka10171" not in REST  # condition search lives on the WebSocket


@pytest.mark.parametrize("api_id", sorted(k for k in REST if not k.startswith("au")))
async def test_every_rest_api_answers_with_its_schema(sim: SimClient, api_id: str) -> None:
    spec = REST[api_id]
    reply = await sim.call(api_id, sample_request(spec))
    assert reply.status == 200
    assert reply.rc == 0, reply.msg
    assert reply.headers["api-id"] == api_id
    body = reply.body
    assert set(spec.response) <= set(body)
    for name in spec.response:
        if name != spec.list_field:
            assert isinstance(body[name], str), name
    if spec.list_field:
        rows = body[spec.list_field]
        assert rows, "list field is empty"
        for row in rows:
            assert set(spec.list_item_fields) <= set(row)
            assert all(isinstance(v, str) for v in row.values())


# --- formats by documented description -----------------------------------------------------------

_FORMATS: list[tuple[str, re.Pattern[str]]] = [
    ("부호 포함 소수점 둘째 자리까지 포맷된 백분율", re.compile(r"[+-]?\d+\.\d{2}")),
    ("단위: 원, 부호가 포함된 숫자", re.compile(r"[+-]?\d+")),
    ("단위: USD, 부호 포함 소수점 넷째 자리까지", re.compile(r"[+-]?\d+\.\d{4}")),
    ("단위: USD, 소수점 넷째 자리까지", re.compile(r"\d+\.\d{4}")),
    ("YYYYMMDDHHmmss", re.compile(r"\d{14}")),
    ("HHmmss", re.compile(r"\d{6}")),
    ("단위: 1주", re.compile(r"[+-]?\d+")),
]


def _check(desc: str, value: str) -> None:
    width = re.search(r"(\d+)자리", desc)
    if "0-padding" in desc and width:
        assert len(value) == int(width.group(1)), (desc, value)
        assert re.fullmatch(r"-?\d+", value), (desc, value)
        if "부호" not in desc:
            assert not value.startswith("-")
        return
    if "YYYYMMDD" in desc and "HH" not in desc:
        assert re.fullmatch(r"\d{8}", value), (desc, value)
        datetime.strptime(value, "%Y%m%d")
        return
    for needle, pattern in _FORMATS:
        if needle in desc:
            assert pattern.fullmatch(value), (desc, value)
            return


def test_schema_values_follow_documented_formats() -> None:
    universe = Universe(1, ("005930", "000660"))
    checked = 0
    for spec in REST.values():
        body = schema_body(spec, {}, universe, DAY)
        for name in spec.response:
            if name != spec.list_field and name in spec.response_desc:
                _check(spec.response_desc[name], body[name])
                checked += 1
        for row in body.get(spec.list_field or "", []):
            for name in spec.list_item_fields:
                if name in spec.response_desc:
                    _check(spec.response_desc[name], row[name])
                    checked += 1
    assert checked > 2_000


def test_schema_body_is_deterministic_and_echoes_request_fields() -> None:
    spec = REST["kt00018"]
    u = Universe(5)
    req = {"qry_tp": "1", "dmst_stex_tp": "KRX"}
    assert schema_body(spec, req, u, DAY) == schema_body(spec, dict(req), Universe(5), DAY)
    assert schema_body(spec, req, u, DAY) != schema_body(spec, {**req, "qry_tp": "2"}, u, DAY)
    rows = schema_body(spec, req, u, DAY)["acnt_evlt_remn_indv_tot"]
    assert rows[0]["stk_cd"] == "A005930"
    assert rows[0]["stk_nm"] == "삼성전자"
    info = schema_body(REST["ka10100"], {"stk_cd": "035720"}, u, DAY)
    assert info["code"] == "035720"
    assert len(schema_body(spec, req, u, DAY, rows=7)["acnt_evlt_remn_indv_tot"]) == 7


def test_formatters() -> None:
    assert padded(17_598_258, 15) == "000000017598258"
    assert padded(-196_888, 15) == "-00000000196888"
    assert padded(-5, 8, sign=False) == "00000005"
    assert padded(1, 12) == "000000000001"
    assert padded(0, 10) == "0000000000"
    assert padded(-196_888) == "-00000000196888"  # 15, the account TRs' width, by default
    assert percent(1, 8) == "12.50"
    assert percent(-2, 7) == "-28.57"  # truncated toward zero, not floored
    assert percent(2, 7, sign=True) == "+28.57"
    assert percent(-1, 100_000) == "0.00"  # no "-0.00"
    assert percent(5, 0) == "0.00"
    assert pre_sig(91_000, 70_000, (49_000, 91_000)) == "1"
    assert pre_sig(49_000, 70_000, (49_000, 91_000)) == "4"
    assert pre_sig(90_900, 70_000, (49_000, 91_000)) == "2"
    assert pre_sig(70_000, 70_000) == "3"
    assert direction_price(70_000, 69_900) == "+70000"
    assert direction_price(69_800, 70_000) == "-69800"
    assert direction_price(70_000, 70_000) == "70000"
    assert signed(600) == "+600"
    assert signed(-600) == "-600"
    assert signed(0) == "0"
    assert decimal(181, 2, sign=True) == "+1.81"
    assert decimal(-5, 2, sign=True) == "-0.05"
    assert decimal(4625, 2) == "46.25"
    assert decimal(1_985_000, 4) == "198.5000"


# --- universe ------------------------------------------------------------------------------


def test_universe_known_and_derived() -> None:
    u = Universe(42)
    assert u.name("005930") == "삼성전자"
    assert u.prev_close("051910") == 320_000
    derived = u.listing("123450")
    again = Universe(42).listing("123450")
    assert derived == again
    assert derived.prev_close % tick_size(derived.prev_close) == 0
    assert Universe(43).listing("123450") != derived
    with pytest.raises(ValueError, match="short code"):
        u.listing("12345")
    listed = u.listed(10)
    assert len({x.code for x in listed}) == 15
    assert split_exchange("005930_NX") == ("005930", "NX")
    assert split_exchange("005930") == ("005930", "")


# --- price model ------------------------------------------------------------------------------


def test_daily_history_is_consistent() -> None:
    clock = ManualClock(datetime(2026, 3, 4, 20, 0, tzinfo=KST))
    md = Marketdata(Universe(9), clock)
    bars = md.daily_bars("005930")
    assert len(bars) == md.history_days
    # The day before today closes at the universe's previous close.
    assert bars[1].close == 70_000
    assert bars[1].label == "20260303"
    for newer, older in itertools.pairwise(bars):
        assert newer.prev_close == older.close
        assert abs(newer.close - older.close) * 10 <= older.close * 3  # KRX +-30 %
        assert newer.low <= min(newer.open, newer.close) <= max(newer.open, newer.close)
        assert max(newer.open, newer.close) <= newer.high
        for p in (newer.open, newer.high, newer.low, newer.close):
            assert p % tick_size(p) == 0


def test_intraday_follows_the_clock() -> None:
    clock = ManualClock(datetime(2026, 3, 4, 8, 59, tzinfo=KST))
    md = Marketdata(Universe(9), clock)
    assert md.last_day() == date(2026, 3, 3)
    assert md.current_price("005930") == 70_000
    clock.advance(61)
    assert md.last_day() == date(2026, 3, 4)
    bars = md.minute_bars("005930", 1)
    assert bars[0].label == "20260304090100"
    assert bars[1].label.startswith("20260303")
    assert md.path("005930", date(2026, 3, 3))[-1] == 70_000
    live = Marketdata(Universe(9), clock, price_of=lambda code: 71_500)
    assert live.current_price("005930") == 71_500


def test_trading_days() -> None:
    assert not is_trading_day(date(2026, 3, 7))
    assert prev_trading_day(date(2026, 3, 9)) == date(2026, 3, 6)


# --- tokens and faults --------------------------------------------------------------------------


def test_token_store() -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=KST))
    store = TokenStore(clock, ttl_s=100.0)
    token, expires = store.issue("a", "b")
    assert expires == "20260105090140"
    assert store.is_valid(token)
    assert store.issue("a", "b") == (token, expires)
    clock.advance(100)
    assert not store.is_valid(token)
    token2, _ = store.issue("a", "b")
    assert token2 != token
    assert store.issued_count == 2
    assert store.revoke(token2)
    assert not store.revoke(token2)
    t3, _ = store.issue("a", "b")
    store.expire_all()
    assert not store.is_valid(t3)
    assert not store.is_valid("")
    assert clock.now() - timedelta(seconds=100) == datetime(2026, 1, 5, 9, 0, tzinfo=KST)


def test_faults_one_shot_knobs() -> None:
    f = Faults(http_error_once={"a": 503}, http_error_queue={"b": [500, 502]})
    assert [f.take_http_error("a"), f.take_http_error("a")] == [503, None]
    assert [f.take_http_error("b") for _ in range(3)] == [500, 502, None]
    f.token_error_once = True
    assert f.take_token_error()
    assert not f.take_token_error()
    f.rate_limit_once.add("x")
    assert f.take_rate_limit("x")
    assert not f.take_rate_limit("x")
    calls: list[int] = []
    unsubscribe = f.on_ws_drop(lambda: calls.append(1))
    f.ws_drop_now()
    unsubscribe()
    f.ws_drop_now()
    assert calls == [1]
    assert f.ws_drops == 2
    f.ws_silent = True
    f.rest_delay_s["k"] = 1.0
    f.clear()
    assert not f.ws_silent
    assert not f.rest_delay_s


# --- REST quotes agree with the realtime feed ---------------------------------------------------


def _run_handler(coro: Coroutine[Any, Any, SimReply]) -> dict[str, Any]:
    """Drive a handler coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value.body  # type: ignore[no-any-return]
    raise AssertionError("handler suspended")


@pytest.mark.parametrize("floor", [69_800, 49_000])
def test_ka10001_change_fields_match_the_feed(floor: int) -> None:
    """flu_rt / pre_sig say what 0B FIDs 12 / 25 say for the same price (truncated rate, 4 at
    the lower limit), so a client sees one market over REST and WebSocket."""
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=KST))
    universe = Universe(7)
    market = MarketGenerator(["005930"], 7, clock, universe=universe)
    md = Marketdata(universe, clock, price_of=market.last_price)
    fills = market.take("005930", False, 10**7, floor)  # sell down through the bids to `floor`
    assert market.last_price("005930") == floor
    trade = market.next_entries(len(fills))[-1]["values"]  # the 0B of the last fill
    assert trade["10"] == f"-{floor}"
    info = _run_handler(md.ka10001({"stk_cd": "005930"}, ""))
    assert info["cur_prc"] == trade["10"]
    assert info["flu_rt"] == trade["12"]
    assert info["pre_sig"] == trade["25"]
    assert info["pred_pre"] == trade["11"]


def test_ka10004_shows_the_book_orders_fill_against() -> None:
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=KST))
    universe = Universe(7)
    market = MarketGenerator(["005930"], 7, clock, universe=universe)
    md = Marketdata(universe, clock, price_of=market.last_price, book_of=market.book)
    market.take("005930", True, 500, None)  # move the book off its opening levels
    book = market.book("005930")
    out = _run_handler(md.ka10004({"stk_cd": "005930"}, ""))
    asks = [(out["sel_fpr_bid"], out["sel_fpr_req"])]
    asks += [(out[f"sel_{i}th_pre_bid"], out[f"sel_{i}th_pre_req"]) for i in range(2, 11)]
    bids = [(out["buy_fpr_bid"], out["buy_fpr_req"])]
    bids += [(out[f"buy_{i}th_pre_bid"], out[f"buy_{i}th_pre_req"]) for i in range(2, 11)]
    assert [(abs(int(p)), int(q)) for p, q in asks] == book.asks
    assert [(abs(int(p)), int(q)) for p, q in bids] == book.bids
    assert out["sel_fpr_bid"] == market.signed("005930", market.best("005930")[1])
    assert int(out["tot_sel_req"]) == sum(q for _, q in book.asks)


def test_ka10004_seeded_book_stays_inside_the_daily_limits() -> None:
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=KST))
    universe = Universe(7)
    lower, upper = price_limits(70_000)
    md = Marketdata(universe, clock, price_of=lambda _c: upper - 300)
    out = _run_handler(md.ka10004({"stk_cd": "005930"}, ""))
    asks = [out["sel_fpr_bid"], *(out[f"sel_{i}th_pre_bid"] for i in range(2, 11))]
    assert [abs(int(p)) for p in asks] == [upper - 200, upper - 100, upper] + [0] * 7
    assert [int(out[f"sel_{i}th_pre_req"]) for i in range(4, 11)] == [0] * 7
    md.price_of = lambda _c: lower
    out = _run_handler(md.ka10004({"stk_cd": "005930"}, ""))
    assert abs(int(out["buy_fpr_bid"])) == lower
    assert out["buy_2th_pre_bid"] == "0"


async def test_schema_answers_carry_the_configured_account(make_sim: SimFactory) -> None:
    sim = await make_sim(account_no="5099999910")
    acct = await sim.call("ka00001", {})
    assert acct.body["acctNo"] == "5099999910"
    oso = await sim.call("ka10075", {"all_stk_tp": "0", "trde_tp": "0", "stex_tp": "0"})
    assert {row["acnt_no"] for row in oso.body["oso"]} == {"5099999910"}
