"""How an order call ends (KiwoomApi.buy/sell/modify/cancel): its `deadline` (past it the order
is not sent any more, and OrderExpiredError proves it was not; a POST already on the wire is
never cut short), and an answer taken with return_code 0 (an ack whenever its order number is
readable, outcome unknown when not). Against the simulator over real sockets."""

from __future__ import annotations

from typing import Any

import pytest

from engine.clock import Clock
from engine.config import RateConfig
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import OrderExpiredError, OutcomeUnknownError, ValidationError
from engine.kiwoom.rest import KiwoomRest
from engine.models import OrderAck, OrderType
from engine.sim.rest import SimReply

from .conftest import SimEnv

pytestmark = pytest.mark.timeout(30)

CLOCK = Clock()


def _rate(**kw: Any) -> RateConfig:
    base: dict[str, Any] = {
        "account_per_s": 2000.0,
        "account_burst": 500,
        "per_api_per_s": 2000.0,
        "per_api_burst": 500,
        "order_per_api_per_s": 2000.0,
        "order_per_api_burst": 500,
        "backoff_base_s": 0.02,
        "backoff_max_s": 0.2,
        "max_rate_limit_retries": 50,
    }
    base.update(kw)
    return RateConfig(**base)


async def test_a_resend_after_a_rate_limit_that_would_leave_late_is_expired_not_sent(
    sim: SimEnv,
) -> None:
    # The backoff after the 429 (1-2 s here) would send the order past its deadline: give up
    # at once with proof that it was never taken.
    sim.state.faults.rate_limit_once.add("kt10000")
    async with KiwoomRest.from_config(
        sim.config(rate=_rate(backoff_base_s=2.0, backoff_max_s=2.0)), CLOCK
    ) as rest:
        api = KiwoomApi(rest)
        with pytest.raises(OrderExpiredError) as ei:
            await api.buy("005930", 1, OrderType.MARKET, deadline=CLOCK.monotonic() + 0.5)
    assert ei.value.reason == "STALE"
    assert ei.value.rate_limited == 1
    assert ei.value.late_s > 0
    assert sim.state.request_counts["kt10000"] == 1
    assert sim.state.handled_counts["kt10000"] == 0


async def test_a_resend_within_the_deadline_goes(sim: SimEnv) -> None:
    sim.state.faults.rate_limit_once.add("kt10001")
    async with KiwoomRest.from_config(sim.config(rate=_rate()), CLOCK) as rest:
        ack = await KiwoomApi(rest).sell(
            "005930", 1, OrderType.MARKET, deadline=CLOCK.monotonic() + 20.0
        )
    assert isinstance(ack, OrderAck)
    assert sim.state.request_counts["kt10001"] == 2
    assert sim.state.handled_counts["kt10001"] == 1


async def test_a_pacing_wait_past_the_deadline_is_expired_not_sent(sim: SimEnv) -> None:
    # One cancel a second: the second would wait about a second in the governor.
    async with KiwoomRest.from_config(
        sim.config(rate=_rate(order_per_api_per_s=1.0, order_per_api_burst=1)), CLOCK
    ) as rest:
        api = KiwoomApi(rest)
        await api.cancel("0000001", "005930")
        with pytest.raises(OrderExpiredError) as ei:
            await api.cancel("0000002", "005930", deadline=CLOCK.monotonic() + 0.1)
    assert ei.value.rate_limited == 0
    assert sim.state.request_counts["kt10003"] == 1


async def test_a_deadline_already_past_sends_nothing(sim: SimEnv) -> None:
    async with KiwoomRest.from_config(sim.config(rate=_rate()), CLOCK) as rest:
        with pytest.raises(OrderExpiredError):
            await KiwoomApi(rest).modify(
                "0000001", "005930", 1, 70000, deadline=CLOCK.monotonic() - 0.001
            )
    assert sim.state.request_counts["kt10002"] == 0


async def test_a_post_on_the_wire_is_not_cut_short_by_its_deadline(sim: SimEnv) -> None:
    # The answer comes after the deadline; the order was sent before it: it is an ack.
    sim.state.faults.rest_delay_s["kt10000"] = 0.3
    async with KiwoomRest.from_config(sim.config(rate=_rate()), CLOCK) as rest:
        ack = await KiwoomApi(rest).buy(
            "005930", 1, OrderType.MARKET, deadline=CLOCK.monotonic() + 0.1
        )
    assert ack.order_no.isdigit()
    assert sim.state.handled_counts["kt10000"] == 1


async def test_a_deadline_is_for_orders_only(sim: SimEnv) -> None:
    async with KiwoomRest.from_config(sim.config(rate=_rate()), CLOCK) as rest:
        with pytest.raises(ValidationError, match="order calls only"):
            await rest.call("ka10001", {"stk_cd": "005930"}, deadline=CLOCK.monotonic() + 1)
    assert sim.state.request_counts["ka10001"] == 0


def _answer(sim: SimEnv, api_id: str, body: dict[str, Any]) -> None:
    async def handler(request: dict[str, Any], next_key: str) -> SimReply:
        return SimReply(body)

    sim.state.rest_handlers[api_id] = handler


async def test_an_order_number_that_is_not_digits_is_outcome_unknown(sim: SimEnv) -> None:
    async with KiwoomRest.from_config(sim.config(rate=_rate()), CLOCK) as rest:
        api = KiwoomApi(rest)
        for ord_no in ("", "   ", None, "0000l40", "주문번호"):
            _answer(sim, "kt10000", {"ord_no": ord_no, "dmst_stex_tp": "KRX"})
            with pytest.raises(OutcomeUnknownError) as ei:
                await api.buy("005930", 1, OrderType.MARKET)
            assert ei.value.reason == "no_order_no"
        _answer(sim, "kt10002", {"mdfy_qty": "000000000001"})
        with pytest.raises(OutcomeUnknownError):
            await api.modify("0000139", "005930", 1, 70000)


async def test_a_taken_order_with_a_malformed_side_field_is_still_an_ack(sim: SimEnv) -> None:
    # The order is live under a known number: the number is what counts, not the echo.
    _answer(sim, "kt10003", {"ord_no": "0000141", "cncl_qty": "a lot"})
    async with KiwoomRest.from_config(sim.config(rate=_rate()), CLOCK) as rest:
        ack = await KiwoomApi(rest).cancel("0000140", "005930")
    assert (ack.order_no, ack.qty) == ("0000141", None)
