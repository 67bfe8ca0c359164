"""The simulator's REST side over real sockets: envelope, tokens, paging, errors, limits, faults."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.clock import KST, ManualClock
from engine.config import SimConfig
from engine.sim.rest import UNKNOWN_API_ID, SimBusinessError, SimReply
from engine.sim.server import start
from engine.sim.state import build_state
from engine.trading.krx import tick_size
from tests.sim.conftest import SimClient, SimFactory

DAILY = {"stk_cd": "005930", "base_dt": "20991231", "upd_stkpc_tp": "1"}
ORDER = {"dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "1", "ord_uv": "", "trde_tp": "3"}


def code_in(msg: str) -> int:
    m = re.search(r"\[(\d{4}):", msg)
    assert m, msg
    return int(m.group(1))


# --- tokens -----------------------------------------------------------------------------------


async def test_token_issue_shape_and_reissue_returns_same_token(make_sim: SimFactory) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, 0, tzinfo=KST))
    sim = await make_sim(clock, token_ttl_s=3600.0)
    first = await sim.issue()
    assert first.status == 200
    assert first.headers["api-id"] == "au10001"
    assert first.headers["cont-yn"] == "N"
    assert first.body["token_type"] == "bearer"
    assert first.body["expires_dt"] == "20260302090000"
    assert first.rc == 0
    assert first.msg == "정상적으로 처리되었습니다"
    clock.advance(60)
    again = await sim.issue()
    assert again.body["token"] == first.body["token"]
    assert again.body["expires_dt"] == "20260302090000"
    other = await sim.issue(appkey="another-app")
    assert other.body["token"] != first.body["token"]


async def test_token_issue_without_api_id_header_is_inferred_from_path(sim: SimClient) -> None:
    body = {"grant_type": "client_credentials", "appkey": "k" * 8, "secretkey": "s" * 8}
    reply = await sim.post("/oauth2/token", body, {})
    assert reply.rc == 0
    assert reply.headers["api-id"] == "au10001"
    assert sim.state.request_counts["au10001"] == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"appkey": "a", "secretkey": "b"}, 8011),
        ({"grant_type": "password", "appkey": "a", "secretkey": "b"}, 8012),
        ({"grant_type": "client_credentials", "appkey": "", "secretkey": "b"}, 8020),
    ],
)
async def test_token_issue_errors(sim: SimClient, body: dict[str, str], code: int) -> None:
    reply = await sim.post("/oauth2/token", body, {"api-id": "au10001"})
    assert reply.status == 200
    assert reply.rc == 3
    assert code_in(reply.msg) == code
    assert "token" not in reply.body


async def test_revoke_then_token_is_refused(sim: SimClient) -> None:
    await sim.issue()
    token = sim.token
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 0
    revoke = {"appkey": "appkey-1", "secretkey": "secret-1", "token": token}
    reply = await sim.post("/oauth2/revoke", revoke, {"api-id": "au10002"})
    assert (reply.status, reply.rc, reply.headers["api-id"]) == (200, 0, "au10002")
    after = await sim.call("ka10001", {"stk_cd": "005930"})
    assert (after.status, after.rc) == (200, 3)
    assert after.msg == "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"
    again = await sim.post("/oauth2/revoke", revoke, {"api-id": "au10002"})
    assert code_in(again.msg) == 8015
    missing = await sim.post("/oauth2/revoke", {**revoke, "token": ""}, {"api-id": "au10002"})
    assert code_in(missing.msg) == 8016
    fresh = await sim.issue()
    assert fresh.body["token"] != token


async def test_token_expires_on_the_injected_clock(make_sim: SimFactory) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 10, 0, 0, tzinfo=KST))
    sim = await make_sim(clock, token_ttl_s=600.0)
    await sim.issue()
    old = sim.token
    clock.advance(599)
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 0
    clock.advance(1)
    expired = await sim.call("ka10001", {"stk_cd": "005930"})
    assert (expired.status, expired.rc, code_in(expired.msg)) == (200, 3, 8005)
    renewed = await sim.issue()
    assert renewed.body["token"] != old
    assert renewed.body["expires_dt"] == "20260302102000"
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 0


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, 1513), ("Bearer", 1516), ("Basic abc", 1515), ("garbage", 1514)],
)
async def test_authorization_header_errors(sim: SimClient, header: str | None, code: int) -> None:
    headers = {"api-id": "ka10001"}
    if header is not None:
        headers["authorization"] = header
    reply = await sim.post("/api/dostk/stkinfo", {"stk_cd": "005930"}, headers)
    assert reply.status == 200
    assert reply.rc != 0
    assert code_in(reply.msg) == code
    assert sim.state.handled_counts["ka10001"] == 0


async def test_unknown_token_is_rc3_http200(sim: SimClient) -> None:
    reply = await sim.call("ka10001", {"stk_cd": "005930"}, token="not-a-token")
    assert reply.status == 200
    assert reply.body == {
        "return_code": 3,
        "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]",
    }


# --- request validation -----------------------------------------------------------------------


async def test_unknown_api_id(sim: SimClient) -> None:
    await sim.issue()
    headers = {"api-id": "ka99999", "authorization": f"Bearer {sim.token}"}
    reply = await sim.post("/api/dostk/stkinfo", {}, headers)
    assert (reply.status, reply.rc) == (200, 2)
    assert code_in(reply.msg) == 1505
    assert "ka99999" in reply.msg


async def test_api_id_on_wrong_path_and_unknown_path(sim: SimClient) -> None:
    await sim.issue()
    headers = {"api-id": "ka10001", "authorization": f"Bearer {sim.token}"}
    wrong = await sim.post("/api/dostk/chart", {"stk_cd": "005930"}, headers)
    assert (wrong.rc, code_in(wrong.msg)) == (2, 1504)
    assert "URI=/api/dostk/chart" in wrong.msg
    nowhere = await sim.post("/no/such/path", {"stk_cd": "005930"}, headers)
    assert (nowhere.status, code_in(nowhere.msg)) == (200, 1504)


async def test_missing_api_id(sim: SimClient) -> None:
    await sim.issue()
    reply = await sim.post(
        "/api/dostk/stkinfo", {"stk_cd": "005930"}, {"authorization": f"Bearer {sim.token}"}
    )
    assert (reply.rc, code_in(reply.msg)) == (2, 1501)


@pytest.mark.parametrize("body", [{}, {"stk_cd": ""}, {"stk_cd": "   "}])
async def test_missing_required_field(sim: SimClient, body: dict[str, str]) -> None:
    reply = await sim.call("ka10001", body)
    assert reply.status == 200
    assert reply.rc == 2
    assert reply.msg.endswith("[1511:필수 입력 값에 값이 존재하지 않습니다. 요소명=stk_cd]")
    assert sim.state.handled_counts["ka10001"] == 0


async def test_malformed_json_body(sim: SimClient) -> None:
    reply = await sim.call("ka10001", b"{not json")
    assert (reply.rc, code_in(reply.msg)) == (2, 1517)


async def test_unknown_symbol(sim: SimClient) -> None:
    reply = await sim.call("ka10001", {"stk_cd": "XYZ"})
    assert reply.rc == 2
    assert code_in(reply.msg) == 1902


# --- market data --------------------------------------------------------------------------------


async def test_ka10081_pages_by_headers_until_cont_yn_n(sim: SimClient) -> None:
    rows: list[dict[str, str]] = []
    pages = 0
    headers: dict[str, str] = {"cont-yn": "N", "next-key": ""}
    while True:
        reply = await sim.call("ka10081", DAILY, headers=headers)
        assert reply.rc == 0
        assert reply.headers["api-id"] == "ka10081"
        assert "cont_yn" not in reply.body
        assert "next_key" not in reply.body
        page = reply.body["stk_dt_pole_chart_qry"]
        pages += 1
        rows.extend(page)
        if reply.headers["cont-yn"] != "Y":
            assert reply.headers["next-key"] == ""
            break
        assert len(page) == 100
        assert reply.headers["next-key"]
        headers = {"cont-yn": "Y", "next-key": reply.headers["next-key"]}
    assert pages >= 3
    dates = [r["dt"] for r in rows]
    assert dates == sorted(dates, reverse=True)
    assert len(set(dates)) == len(dates)
    for r in rows:
        assert datetime.strptime(r["dt"], "%Y%m%d").weekday() < 5
        close, low, high = int(r["cur_prc"]), int(r["low_pric"]), int(r["high_pric"])
        assert low <= close <= high
        assert low <= int(r["open_pric"]) <= high
        assert close % tick_size(close) == 0


async def test_ka10081_next_key_ignored_without_cont_yn_and_base_dt_respected(
    sim: SimClient,
) -> None:
    first = await sim.call("ka10081", DAILY)
    key = first.headers["next-key"]
    again = await sim.call("ka10081", DAILY, headers={"next-key": key})
    assert again.body == first.body
    second = await sim.call("ka10081", DAILY, headers={"cont-yn": "Y", "next-key": key})
    assert second.body["stk_dt_pole_chart_qry"][0]["dt"] == key
    base = first.body["stk_dt_pole_chart_qry"][10]["dt"]
    older = await sim.call("ka10081", {**DAILY, "base_dt": base})
    assert older.body["stk_dt_pole_chart_qry"][0] == first.body["stk_dt_pole_chart_qry"][10]
    bad = await sim.call("ka10081", DAILY, headers={"cont-yn": "Y", "next-key": "nonsense"})
    assert code_in(bad.msg) == 1517


async def test_ka10001_stock_info(sim: SimClient) -> None:
    reply = await sim.call("ka10001", {"stk_cd": "005930"})
    b = reply.body
    assert reply.rc == 0
    assert (b["stk_cd"], b["stk_nm"], b["base_pric"]) == ("005930", "삼성전자", "70000")
    assert b["upl_pric"] == "+91000"
    assert b["lst_pric"] == "-49000"
    cur = int(b["cur_prc"].lstrip("+-"))
    assert cur % tick_size(cur) == 0
    sign = {"2": "+", "5": "-", "3": ""}[b["pre_sig"]]
    assert b["cur_prc"] == f"{sign}{cur}"
    assert int(b["pred_pre"]) == cur - 70000
    assert re.fullmatch(r"[+-]?\d+\.\d\d", b["flu_rt"])
    expected_fields = set(sim.state.catalog["ka10001"].response)
    assert expected_fields <= set(b)


async def test_ka10004_book_is_ordered_on_ticks(sim: SimClient) -> None:
    b = (await sim.call("ka10004", {"stk_cd": "000660"})).body
    asks = [b["sel_fpr_bid"]] + [b[f"sel_{i}th_pre_bid"] for i in range(2, 11)]
    bids = [b["buy_fpr_bid"]] + [b[f"buy_{i}th_pre_bid"] for i in range(2, 11)]
    ask_p = [int(p.lstrip("+-")) for p in asks]
    bid_p = [int(p.lstrip("+-")) for p in bids]
    assert ask_p == sorted(ask_p)
    assert len(set(ask_p)) == 10
    assert bid_p == sorted(bid_p, reverse=True)
    assert len(set(bid_p)) == 10
    assert ask_p[0] > bid_p[0]
    assert all(p % tick_size(p) == 0 for p in ask_p + bid_p)
    qty = [int(b["sel_fpr_req"])] + [int(b[f"sel_{i}th_pre_req"]) for i in range(2, 11)]
    assert int(b["tot_sel_req"]) == sum(qty)


async def test_ka10080_minute_rows(make_sim: SimFactory) -> None:
    clock = ManualClock(datetime(2026, 3, 4, 10, 30, 0, tzinfo=KST))  # a Wednesday
    sim = await make_sim(clock)
    body = {"stk_cd": "005930", "tic_scope": "5", "upd_stkpc_tp": "1"}
    reply = await sim.call("ka10080", body)
    rows = reply.body["stk_min_pole_chart_qry"]
    assert reply.headers["cont-yn"] == "Y"
    assert rows[0]["cntr_tm"] == "20260304103000"
    assert rows[1]["cntr_tm"] == "20260304102500"
    assert all(re.fullmatch(r"\d{14}", r["cntr_tm"]) for r in rows)
    assert all(re.fullmatch(r"[+-]?\d+", r["cur_prc"]) for r in rows)
    bad = await sim.call("ka10080", {**body, "tic_scope": "7"})
    assert code_in(bad.msg) == 1517


async def test_period_charts_and_ticks(sim: SimClient) -> None:
    for api_id, field in (
        ("ka10082", "stk_stk_pole_chart_qry"),
        ("ka10083", "stk_mth_pole_chart_qry"),
        ("ka10094", "stk_yr_pole_chart_qry"),
    ):
        reply = await sim.call(api_id, DAILY)
        rows = reply.body[field]
        assert reply.rc == 0, api_id
        assert rows, api_id
        dates = [r["dt"] for r in rows]
        assert dates == sorted(dates, reverse=True)
    ticks = await sim.call("ka10079", {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"})
    assert ticks.rc == 0
    assert ticks.body["stk_tic_chart_qry"]


async def test_reference_lists(sim: SimClient) -> None:
    kospi = (await sim.call("ka10099", {"mrkt_tp": "0"})).body["list"]
    codes = [r["code"] for r in kospi]
    assert codes[:5] == ["005930", "000660", "035420", "035720", "051910"]
    assert all(r["marketCode"] == "0" for r in kospi)
    one = (await sim.call("ka10100", {"stk_cd": "035420"})).body
    assert one["name"] == "NAVER"
    assert one["lastPrice"] == "00190000"


async def test_same_request_same_answer_across_servers(make_sim: SimFactory) -> None:
    clock = ManualClock(datetime(2026, 3, 4, 11, 0, 0, tzinfo=KST))
    a = await make_sim(clock)
    b = await make_sim(clock)
    other = await make_sim(clock, seed=7)
    for api_id, body in (
        ("ka10081", DAILY),
        ("kt00018", {"qry_tp": "1", "dmst_stex_tp": "KRX"}),
        ("ka10001", {"stk_cd": "123450"}),
        ("ka10004", {"stk_cd": "005930"}),
    ):
        ra, rb = await a.call(api_id, body), await b.call(api_id, body)
        assert ra.body == rb.body, api_id
        assert ra.headers["next-key"] == rb.headers["next-key"]
    ra = await a.call("kt00018", {"qry_tp": "1", "dmst_stex_tp": "KRX"})
    ro = await other.call("kt00018", {"qry_tp": "1", "dmst_stex_tp": "KRX"})
    assert ra.body != ro.body


# --- rate limit -------------------------------------------------------------------------------


async def test_rate_limit_is_per_api_id_and_refills(make_sim: SimFactory) -> None:
    clock = ManualClock(datetime(2026, 3, 4, 11, 0, 0, tzinfo=KST))
    sim = await make_sim(clock, rest_rate_per_s=1.0, rest_burst=2)
    await sim.issue()
    body = {"stk_cd": "005930"}
    assert [(await sim.call("ka10001", body)).rc for _ in range(2)] == [0, 0]
    limited = await sim.call("ka10001", body)
    assert limited.status == 429
    assert limited.rc == 5
    assert limited.msg == (
        "허용된 요청 개수를 초과하였습니다[1700:허용된 API 요청 개수를 초과하였습니다. "
        "유량=1, API ID=ka10001]"
    )
    assert limited.headers["api-id"] == "ka10001"
    assert (await sim.call("ka10004", body)).rc == 0  # another TR has its own bucket
    clock.advance(1.0)
    assert (await sim.call("ka10001", body)).rc == 0
    assert (await sim.call("ka10001", body)).status == 429
    assert sim.state.request_counts["ka10001"] == 5
    assert sim.state.handled_counts["ka10001"] == 3


async def test_burst_within_rate_sees_no_429(make_sim: SimFactory) -> None:
    sim = await make_sim(rest_rate_per_s=1000.0, rest_burst=50)
    await sim.issue()
    replies = await asyncio.gather(*(sim.call("ka10001", {"stk_cd": "005930"}) for _ in range(50)))
    assert {r.status for r in replies} == {200}


# --- faults -------------------------------------------------------------------------------------


async def test_delayed_order_is_taken_once_and_client_times_out(sim: SimClient) -> None:
    await sim.issue()
    sim.state.faults.rest_delay_s["kt10000"] = 0.5
    with pytest.raises(asyncio.TimeoutError):
        await sim.call("kt10000", ORDER, total_s=0.1)
    assert sim.state.request_counts["kt10000"] == 1
    assert sim.state.handled_counts["kt10000"] == 1


async def test_drop_after_accept(sim: SimClient) -> None:
    await sim.issue()
    sim.state.faults.drop_after_accept.add("kt10000")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await sim.call("kt10000", ORDER)
    assert sim.state.handled_counts["kt10000"] == 1
    sim.state.faults.drop_after_accept.clear()
    assert (await sim.call("kt10000", ORDER)).rc == 0


async def test_http_error_once_and_queue(sim: SimClient) -> None:
    await sim.issue()
    faults = sim.state.faults
    faults.http_error_once["ka10001"] = 503
    faults.http_error_queue["ka10004"] = [500, 502]
    statuses = []
    for api_id in ("ka10001", "ka10001", "ka10004", "ka10004", "ka10004"):
        async with sim.session.post(
            sim.url + sim.state.catalog[api_id].path,
            json={"stk_cd": "005930"},
            headers={"api-id": api_id, "authorization": f"Bearer {sim.token}"},
        ) as r:
            statuses.append(r.status)
    assert statuses == [503, 200, 500, 502, 200]
    assert sim.state.handled_counts == {"au10001": 1, "ka10001": 1, "ka10004": 1}


async def test_token_error_once_expire_all_and_rate_limit_once(sim: SimClient) -> None:
    await sim.issue()
    faults = sim.state.faults
    faults.token_error_once = True
    first = await sim.call("ka10001", {"stk_cd": "005930"})
    assert (first.rc, code_in(first.msg)) == (3, 8005)
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 0
    faults.rate_limit_once.add("ka10001")
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).status == 429
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 0
    sim.state.expire_tokens()
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 3
    old = sim.token
    await sim.issue()
    assert sim.token != old
    assert (await sim.call("ka10001", {"stk_cd": "005930"})).rc == 0


# --- composition ------------------------------------------------------------------------------


async def test_custom_handler_extra_route_and_handler_crash() -> None:
    state = build_state(SimConfig(port=0))

    async def orders(body: dict[str, Any], next_key: str) -> SimReply:
        if body["stk_cd"] == "000000":
            raise SimBusinessError(2, "주문이 거부되었습니다[9999:test]")
        if body["stk_cd"] == "111110":
            raise RuntimeError("boom")
        return SimReply({"ord_no": "0000001", "dmst_stex_tp": "KRX"}, return_msg="주문완료")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    state.rest_handlers["kt10000"] = orders
    runner, port = await start(state, [web.get("/api/dostk/websocket", hello)])
    try:
        sim = SimClient(state, f"http://127.0.0.1:{port}", aiohttp.ClientSession())
        async with sim.session:
            ok = await sim.call("kt10000", ORDER)
            assert ok.body == {
                "ord_no": "0000001",
                "dmst_stex_tp": "KRX",
                "return_code": 0,
                "return_msg": "주문완료",
            }
            refused = await sim.call("kt10000", {**ORDER, "stk_cd": "000000"})
            assert (refused.status, refused.rc, refused.msg) == (
                200,
                2,
                "주문이 거부되었습니다[9999:test]",
            )
            crashed = await sim.call("kt10000", {**ORDER, "stk_cd": "111110"})
            assert (crashed.status, code_in(crashed.msg)) == (500, 1999)
            async with sim.session.get(sim.url + "/api/dostk/websocket") as r:
                assert await r.text() == "hi"
    finally:
        await runner.cleanup()


async def test_start_reports_the_bound_port() -> None:
    state = build_state(SimConfig(port=0))
    runner, port = await start(state)
    try:
        assert port > 0
        assert ("127.0.0.1", port) == tuple(runner.addresses[0][:2])
    finally:
        await runner.cleanup()


async def test_api_ids_outside_the_catalogue_count_under_one_key(sim: SimClient) -> None:
    for i in range(300):
        reply = await sim.call("ka10001", {"stk_cd": "005930"}, headers={"api-id": f"zz{i:05d}"})
        assert code_in(reply.msg) == 1505
    await sim.call("ka10001", {"stk_cd": "005930"})
    assert sim.state.request_counts == {UNKNOWN_API_ID: 300, "au10001": 1, "ka10001": 1}
