"""Reason codes of the Kiwoom client (STYLE §10): `OutcomeUnknownError.reason` and
`Disconnected.reason` are codes a machine can act on, with the human text in `detail`.

The expected values are the published strings, written out (an order in doubt reads
``UNKNOWN: <code>``; `feed_disconnected` carries the feed's code on MQTT).
"""

from __future__ import annotations

import asyncio

import pytest

from engine.events import Disconnected, Reconnected
from engine.kiwoom.errors import OutcomeUnknownError
from engine.kiwoom.rest import KiwoomRest
from tests.support import until

from .conftest import SimEnv
from .test_ws import Env, env  # noqa: F401 - the realtime simulator fixture

pytestmark = pytest.mark.timeout(20)

CANCEL = {"dmst_stex_tp": "KRX", "orig_ord_no": "0000139", "stk_cd": "005930", "cncl_qty": "0"}


async def test_an_order_in_doubt_names_why_with_a_code_and_the_detail(sim: SimEnv) -> None:
    async with KiwoomRest.from_config(sim.config(request_timeout_s=0.3)) as rest:
        sim.state.faults.http_error_once["kt10003"] = 502
        with pytest.raises(OutcomeUnknownError) as ei:
            await rest.call("kt10003", CANCEL)
        assert (ei.value.reason, ei.value.detail) == ("server_error", "HTTP 502")

        sim.state.faults.drop_after_accept.add("kt10003")
        with pytest.raises(OutcomeUnknownError) as ei:
            await rest.call("kt10003", CANCEL)
        assert ei.value.reason == "disconnected"
        sim.state.faults.drop_after_accept.clear()

        sim.state.faults.rest_delay_s["kt10003"] = 1.0
        with pytest.raises(OutcomeUnknownError) as ei:
            await rest.call("kt10003", CANCEL)
        assert (ei.value.reason, ei.value.detail) == ("timeout", "timeout")
        sim.state.faults.rest_delay_s.clear()

        call = asyncio.ensure_future(rest.call("kt10003", CANCEL))
        sim.state.faults.rest_delay_s["kt10003"] = 0.2
        await until(lambda: sim.state.request_counts["kt10003"] == 4)
        call.cancel()
        with pytest.raises(OutcomeUnknownError) as ei:
            await call
        assert (ei.value.reason, ei.value.detail) == ("cancelled", "")
        assert "outcome unknown (cancelled)" in str(ei.value)


async def test_a_server_that_closes_the_feed_is_closed_with_its_close_code(env: Env) -> None:  # noqa: F811
    ws = env.client()
    await ws.start()
    await env.rt.drop_all()  # close frame 1011
    await until(lambda: bool(env.of(Disconnected)))
    (disc,) = env.of(Disconnected)
    assert disc.reason == "closed"
    assert "1011" in disc.detail
    await until(lambda: bool(env.of(Reconnected)))
