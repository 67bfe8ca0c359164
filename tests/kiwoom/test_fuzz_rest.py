"""Fuzzing the REST client over real sockets: paging (cont-yn / next-key) against a server
that answers anything, raw HTTP bytes, and the typed account and quote views.

A loopback aiohttp server plays Kiwoom: its token endpoint is sound, and every other answer
comes from a script hypothesis writes (any status, paging headers, envelope or garbage).
Whatever it says, `call_all` ends in every page in order or a KiwoomError, never another
exception and never a page skipped, repeated or taken from the wrong place.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from engine.config import (
    CacheConfig,
    Config,
    KiwoomConfig,
    RateConfig,
    RetryConfig,
    SimConfig,
)
from engine.kiwoom import protocol
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import AuthError, KiwoomError, RateLimitError, ValidationError
from engine.kiwoom.rest import KiwoomRest, Pages
from engine.models import AccountBalance
from engine.secrets import Secret
from engine.sim.rest import SimReply

from .conftest import SimEnv
from .test_fuzz_protocol import (
    expect_unsigned,
    field_values,
    json_values,
    return_codes,
    return_msgs,
    wire_text,
)

pytestmark = pytest.mark.timeout(60)

NET_FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one server, many examples
)

DAILY = {"stk_cd": "005930", "base_dt": "20260105", "upd_stkpc_tp": "1"}
ROWS = "stk_dt_pole_chart_qry"
TOKEN_BODY = orjson.dumps(
    {"token": "fuzz-token", "expires_dt": "20991231235959", "return_code": 0, "return_msg": ""}
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptServer:
    """Answers each chart request with the next scripted answer; once the script is spent,
    with a sound last page. Records the paging headers of every request it got."""

    url: str = ""
    script: list[Answer] = field(default_factory=list)
    served: list[tuple[dict[str, str], Answer]] = field(default_factory=list)

    def reset(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.served = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/oauth2/token":
            return web.Response(body=TOKEN_BODY, content_type="application/json")
        await request.read()
        asked = {k: request.headers[k] for k in ("cont-yn", "next-key") if k in request.headers}
        answer = (
            self.script.pop(0)
            if self.script
            else Answer(200, {"cont-yn": "N"}, orjson.dumps({ROWS: [], "return_code": 0}))
        )
        self.served.append((asked, answer))
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)


@pytest.fixture
async def server() -> AsyncIterator[ScriptServer]:
    srv = ScriptServer()
    app = web.Application()
    app.router.add_post("/{tail:.*}", srv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield srv
    finally:
        await runner.cleanup()


def client_config(url: str) -> Config:
    """Fast retries and backoff: a fuzz example must not wait for real pacing."""
    return Config(
        kiwoom=KiwoomConfig(
            mode="sim",
            rest_url=url,
            request_timeout_s=5.0,
            connect_timeout_s=2.0,
            rate=RateConfig(
                account_per_s=10_000.0,
                account_burst=1000,
                per_api_per_s=10_000.0,
                per_api_burst=1000,
                backoff_base_s=0.001,
                backoff_max_s=0.002,
                max_rate_limit_retries=2,
            ),
            retry=RetryConfig(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002),
            cache=CacheConfig(ttl_s={}),
            appkey=Secret("fuzz-appkey"),
            secretkey=Secret("fuzz-secretkey"),
        ),
        sim=SimConfig(),
    )


# --- scripts -------------------------------------------------------------------------------

keys = st.one_of(st.sampled_from(["k1", "k2", "k3", " k1 ", "", " "]), st.text(max_size=6))
row_lists = st.one_of(
    st.lists(st.dictionaries(st.sampled_from(["dt", "cur_prc"]), field_values), max_size=3),
    json_values,
)


@st.composite
def pages(draw: st.DrawFn) -> Answer:
    """A 200 answer meant as a page: mostly sound (rows, cont-yn Y, a fresh or a repeated
    next-key), else with fuzzed paging headers, rows or envelope."""
    if draw(st.integers(0, 9)) < 7:
        more = draw(st.integers(0, 9)) < 7
        headers = {"cont-yn": "Y" if more else "N", "next-key": f"k{draw(st.integers(1, 6))}"}
        rows = draw(st.lists(st.fixed_dictionaries({"dt": field_values}), max_size=2))
        return Answer(200, headers, orjson.dumps({ROWS: rows, "return_code": 0}))
    headers = {}
    if draw(st.booleans()):
        headers["cont-yn"] = draw(st.sampled_from(["Y", "Y", "N", "y", " Y ", "YES", ""]))
    if draw(st.booleans()):
        headers["next-key"] = draw(keys)
    body: dict[str, Any] = {}
    if draw(st.integers(0, 4)):
        body[ROWS] = draw(row_lists)
    if draw(st.integers(0, 3)) == 0:
        body["return_code"] = draw(return_codes)
        body["return_msg"] = draw(return_msgs)
    else:
        body["return_code"] = 0
    return Answer(200, headers, orjson.dumps(body))


@st.composite
def failures(draw: st.DrawFn) -> Answer:
    """Anything else a server or a proxy may answer."""
    status = draw(st.sampled_from([200, 401, 408, 413, 429, 500, 502, 503, 404, 302, 204]))
    body = draw(
        st.one_of(
            st.binary(max_size=30),
            st.builds(
                lambda rc, msg: orjson.dumps({"return_code": rc, "return_msg": msg}),
                return_codes,
                return_msgs,
            ),
        )
    )
    return Answer(status, {}, body)


scripts = st.lists(st.one_of(pages(), pages(), pages(), failures()), min_size=1, max_size=6)


def is_good_page(answer: Answer, first: bool) -> bool:
    """Would the client take this answer as a page? (classify has its own fuzz test.)"""
    if any((c < " " and c != "\t") or c == "\x7f" for v in answer.headers.values() for c in v):
        return False  # HTTP forbids control characters in a header: an unreadable answer
    # an HTTP 204 carries no body, whatever the script wrote for it
    body = b"" if answer.status == 204 else answer.body
    try:
        result = protocol.classify("ka10081", answer.status, answer.headers, body)
    except KiwoomError:
        return False
    part = result.body.get(ROWS)
    if part is None:
        return first and not result.cont_yn
    return isinstance(part, list) and all(isinstance(r, dict) for r in part)


@NET_FUZZ
@given(script=scripts, max_pages=st.integers(1, 4))
@example(
    script=[
        Answer(200, {"cont-yn": "Y", "next-key": "k1"}, orjson.dumps({ROWS: [{"dt": "1"}]})),
        Answer(200, {"cont-yn": "Y", "next-key": "k1"}, orjson.dumps({ROWS: [{"dt": "2"}]})),
    ],
    max_pages=4,
)
async def test_paging_ends_in_every_page_in_order_or_a_kiwoom_error(
    server: ScriptServer, script: list[Answer], max_pages: int
) -> None:
    server.reset(script)
    async with KiwoomRest.from_config(client_config(server.url), revoke_on_close=False) as rest:
        try:
            got: Pages | KiwoomError = await rest.call_all("ka10081", DAILY, max_pages)
        except KiwoomError as e:
            got = e
    served = server.served
    assert served, "nothing was asked"
    # The first request asks for page 1; every later one repeats the last request (a retry)
    # or asks for the page after the last page taken, by its own next-key.
    good = [(asked, a) for asked, a in served if is_good_page(a, first=not asked)]
    assert served[0][0] == {}
    for asked, _ in served:
        if "next-key" in asked:
            assert asked["cont-yn"] == "Y"
            assert asked["next-key"].strip()
    event("error" if isinstance(got, KiwoomError) else f"{len(got.pages)} pages")
    if isinstance(got, KiwoomError):
        # an error only when some answer was not a sound page
        assert len(good) < len(served), (got, served)
        return
    assert len(got.pages) == len(good) <= max_pages
    for page, (_, answer) in zip(got.pages, good, strict=True):
        assert page.body == orjson.loads(answer.body)
    # each page after the first was asked for with the key of the page before it
    asked_keys = [asked.get("next-key") for asked, _ in good]
    assert asked_keys == [None] + [p.next_key for p in got.pages[:-1]]
    used = [k for k in asked_keys if k is not None]
    assert len(used) == len(set(used))
    assert all(used)
    last = got.pages[-1]
    assert got.truncated == last.cont_yn
    if got.truncated:
        key = last.next_key
        unsendable = not (key.isascii() and key.isprintable())
        assert len(got.pages) == max_pages or not key or key in used or unsendable
    expected_rows = [r for p in got.pages for r in (p.body.get(ROWS) or [])]
    assert got.rows == expected_rows
    assert all(isinstance(r, dict) for r in got.rows)


# --- raw HTTP bytes ------------------------------------------------------------------------


@dataclass
class RawServer:
    """Speaks HTTP/1.1 by hand so that an answer can be any bytes at all: a sound token
    answer, and for every other request the next scripted bytes; the connection is closed
    after each answer."""

    url: str = ""
    script: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def reset(self, script: list[bytes]) -> None:
        self.script = list(script)
        self.requests = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("utf-8", "surrogateescape").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            await reader.readexactly(int(headers.get("content-length", "0")))
            if path == "/oauth2/token":
                answer = http_answer(200, {"Content-Type": "application/json"}, TOKEN_BODY)
            else:
                self.requests.append((path, headers))
                answer = self.script.pop(0) if self.script else LAST_PAGE
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def http_answer(status: int | str, headers: dict[str, str], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


SOUND_PAGE = orjson.dumps({ROWS: [{"dt": "20260105"}], "return_code": 0})
LAST_PAGE = http_answer(200, {"cont-yn": "N"}, orjson.dumps({ROWS: [], "return_code": 0}))


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    srv = RawServer()
    server = await asyncio.start_server(srv.serve, "127.0.0.1", 0)
    srv.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield srv
    finally:
        server.close()
        await server.wait_closed()


header_bytes = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"Y", b"N", b"k1", b"\xff\xfe", b"\xed\xa0\x80", b"\xc3\xa9", b" k2 "]),
    st.sampled_from([b"k\x7f", b"k\x0b1", b"a\tb", b"k\x00", b"\xe2\x80\xa8"]),
)


@st.composite
def raw_answers(draw: st.DrawFn) -> bytes:
    """Any bytes; or an HTTP answer with a fuzzed status line, paging headers that may hold
    any bytes, a wrong or missing length, a broken chunked or compressed body."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=60))
    status = draw(st.sampled_from([b"200 OK"] * 4 + [b"500 X", b"429 X", b"999 X", b"20 X", b"OK"]))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 4 + [b"HTTP/1.0", b"HTTP/2", b"HTTX/1.1"]))
    body = draw(
        st.one_of(
            st.binary(max_size=30),
            st.builds(
                lambda rows: orjson.dumps({ROWS: rows, "return_code": 0}),
                st.lists(st.fixed_dictionaries({"dt": field_values}), max_size=2),
            ),
            st.builds(
                lambda rc: orjson.dumps({"ord_no": "0000001", "return_code": rc}), return_codes
            ),
        )
    )
    lines = [version + b" " + status]
    if draw(st.booleans()):
        lines.append(b"cont-yn: " + draw(header_bytes))
    if draw(st.booleans()):
        lines.append(b"next-key: " + draw(header_bytes))
    framing = draw(
        st.sampled_from(["length"] * 4 + ["wrong", "none", "chunked", "gzip", "negative"])
    )
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "wrong":
        lines.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 50))))
    elif framing == "negative":
        lines.append(b"Content-Length: -1")
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = draw(st.sampled_from([b"zz\r\n", b"5\r\nab", b"0\r\n\r\n", b""])) + body
    elif framing == "gzip":
        lines.append(b"Content-Encoding: " + draw(st.sampled_from([b"gzip", b"deflate", b"br"])))
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


ORDER = {
    "dmst_stex_tp": "KRX",
    "stk_cd": "005930",
    "ord_qty": "1",
    "ord_uv": "",
    "trde_tp": "3",
    "cond_uv": "",
}


def proves_not_taken(answer: bytes) -> bool:
    """Does this answer prove an order was not taken, so that sending it again is right? Only
    a pacing or a token refusal does (the client re-sends after nothing else)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status_line) < 2 or not status_line[1].isdigit():
        return False
    try:
        protocol.classify("kt10000", int(status_line[1]), {}, body)
    except RateLimitError:
        return True
    except AuthError as e:
        return protocol.is_token_error(e)
    except KiwoomError:
        return False
    return False


@NET_FUZZ
@given(script=st.lists(raw_answers(), min_size=1, max_size=3))
@example(script=[http_answer(200, {"cont-yn": "Y", "next-key": "k\x7f"}, SOUND_PAGE)])  # ValueError
@example(script=[http_answer(200, {"cont-yn": "Y", "next-key": "k\x0b1"}, SOUND_PAGE)])
async def test_any_http_bytes_end_in_an_answer_or_a_kiwoom_error(
    raw_server: RawServer, script: list[bytes]
) -> None:
    raw_server.reset(script)
    async with KiwoomRest.from_config(client_config(raw_server.url), revoke_on_close=False) as rest:
        try:
            await rest.call_all("ka10081", DAILY, max_pages=2)
            event("query: answer")
        except KiwoomError as e:
            event(f"query: {type(e).__name__}")
        raw_server.reset(script)
        try:
            await rest.call("kt10000", ORDER)
            event("order: answer")
        except KiwoomError as e:
            event(f"order: {type(e).__name__}")
    sent = len(raw_server.requests)
    assert sent >= 1
    if sent > 1:  # an order is sent again only after an answer that proves it was not taken
        assert any(proves_not_taken(answer) for answer in script[: sent - 1]), script


# --- typed views through the simulator ------------------------------------------------------

HOLDINGS = "acnt_evlt_remn_indv_tot"
HOLDING_KEYS = ("stk_cd", "stk_nm", "rmnd_qty", "trde_able_qty", "pur_pric", "cur_prc")
HOLDING_KEYS += ("pur_amt", "evlt_amt", "evltv_prft", "prft_rt")
ORDER_KEYS = ("ord_no", "stk_cd", "io_tp_nm", "ord_qty", "ord_pric", "cntr_qty", "cntr_pric")
ORDER_KEYS += ("orig_ord_no", "tm", "ord_tm", "ord_stt", "oso_qty", "tdy_trde_cmsn")
ORDER_KEYS += ("ord_uv", "cntr_uv", "ori_ord", "cnfm_qty", "ord_remnq", "mdfy_cncl")
QUOTE_KEYS = ("stk_cd", "cur_prc", "pred_pre", "flu_rt", "open_pric", "high_pric", "low_pric")
QUOTE_KEYS += ("upl_pric", "lst_pric", "base_pric", "trde_qty", "flo_stk", "mac")
CASH_KEYS = ("entr", "ord_alow_amt", "pymn_alow_amt", "d1_entra", "d2_entra")


sound_numbers = st.builds(
    lambda sign, n: sign + str(n).zfill(15), st.sampled_from(["", "+", "-"]), st.integers(0, 10**9)
)
view_values = st.one_of(sound_numbers, sound_numbers, sound_numbers, field_values)


def loose(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, view_values))


def listing(field_name: str, keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {field_name: st.lists(loose(keys), max_size=3)},
        optional={"tot_pur_amt": view_values, "tot_prft_rt": view_values},
    )


VIEWS: dict[str, tuple[str, st.SearchStrategy[dict[str, Any]]]] = {
    "stock_info": ("ka10001", loose(QUOTE_KEYS)),
    "cash_balance": ("kt00001", loose(CASH_KEYS)),
    "account_balance": ("kt00018", listing(HOLDINGS, HOLDING_KEYS)),
    "open_orders": ("ka10075", listing("oso", ORDER_KEYS)),
    "executions": ("ka10076", listing("cntr", ORDER_KEYS)),
    "order_history": ("kt00007", listing("acnt_ord_cntr_prps_dtl", ORDER_KEYS)),
}
NOT_NEGATIVE = {
    # quantities
    "qty", "sellable_qty", "open_qty", "filled_qty", "confirmed_qty", "remaining_qty",
    "volume", "listed_shares_k", "market_cap_100m",
    # prices (direction-signed on the wire: the value is the magnitude)
    "price", "fill_price", "avg_price", "open", "high", "low", "upper_limit", "lower_limit",
    "base_price",
}  # fmt: skip


def assert_sound(record: Any) -> None:
    """Ints where ints are due (never a bool or a float), no negative quantity or price."""
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name.endswith("_pct"):
            assert type(value) is float, (f.name, value)
        elif f.type in ("int", "int | None"):
            assert value is None or type(value) is int, (f.name, value)
            if f.name in NOT_NEGATIVE and value is not None:
                assert value >= 0, (f.name, value)


@NET_FUZZ
@given(answer=st.sampled_from(sorted(VIEWS)).flatmap(lambda v: st.tuples(st.just(v), VIEWS[v][1])))
# was: ValueError out of stock_info
@example(answer=("stock_info", {"stk_cd": "005930_XX"}))
# was: a holding of -3 shares
@example(answer=("account_balance", {HOLDINGS: [{"stk_cd": "A005930", "rmnd_qty": "-3"}]}))
async def test_a_typed_view_of_any_answer_is_sound_or_a_kiwoom_error(
    sim: SimEnv, answer: tuple[str, dict[str, Any]]
) -> None:
    view, body = answer
    api_id = VIEWS[view][0]

    async def reply(request: dict[str, Any], next_key: str) -> SimReply:
        return SimReply(body)

    sim.state.rest_handlers[api_id] = reply
    async with KiwoomRest.from_config(sim.config()) as rest:
        try:
            method = getattr(KiwoomApi(rest), view)
            got = await (method("005930") if view == "stock_info" else method())
        except KiwoomError as e:
            event(f"{view}: {type(e).__name__}")
            return
    event(f"{view}: answer")
    records = got if isinstance(got, list) else [got]
    if isinstance(got, AccountBalance):
        records += list(got.holdings)
        listed = [r for r in body[HOLDINGS] if wire_text(r.get("stk_cd")).strip()]
        assert [h.qty for h in got.holdings] == [expect_unsigned(r.get("rmnd_qty")) for r in listed]
    for record in records:
        assert_sound(record)


@pytest.mark.parametrize("key", ["k\x7f", "k\x0b1", "k\r\nx: y", "é"])
async def test_a_cont_key_that_cannot_be_sent_back_is_refused_before_sending(
    raw_server: RawServer, key: str
) -> None:
    # was: aiohttp's ValueError ("Forbidden control character ...") out of `call`
    raw_server.reset([])
    async with KiwoomRest.from_config(client_config(raw_server.url), revoke_on_close=False) as rest:
        with pytest.raises(ValidationError, match="cont_key"):
            await rest.call("ka10081", DAILY, cont_key=key)
    assert raw_server.requests == []
