"""The simulator's fault-control endpoint (sim.control): off by default, loopback only, and
what it sets is what the simulator then does."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from engine.config import SimConfig
from engine.sim.simulator import SimStartupError, Simulator


def _config(**kw: object) -> SimConfig:
    return dataclasses.replace(SimConfig(), port=0, events_per_s=0.0, **kw)  # type: ignore[arg-type]


async def test_control_is_refused_unless_enabled() -> None:
    async with Simulator(_config()) as sim, aiohttp.ClientSession() as s:
        async with s.post(sim.rest_url + "/_sim/faults", json={"ws_silent": True}) as r:
            body = await r.json(content_type=None)
        assert body["return_code"] != 0  # Kiwoom's own error envelope: no such api
        async with s.get(sim.rest_url + "/_sim/book") as r:
            assert r.status in (404, 405)
        assert sim.state.faults.ws_silent is False


async def test_control_sets_knobs_and_reads_the_book() -> None:
    async with Simulator(_config(control=True)) as sim, aiohttp.ClientSession() as s:
        url = sim.rest_url
        async with s.post(
            url + "/_sim/faults",
            json={
                "http_error_queue": {"kt10000": [503, 502]},
                "drop_after_accept": ["kt10001"],
                "order_push_twice": True,
                "token_ttl_s": 3,
            },
        ) as r:
            assert r.status == 200
            knobs = await r.json()
        assert sim.state.faults.http_error_queue == {"kt10000": [503, 502]}
        assert sim.state.faults.drop_after_accept == {"kt10001"}
        assert sim.state.faults.order_push_twice is True
        assert sim.state.tokens.ttl_s == 3.0
        assert knobs["drop_after_accept"] == ["kt10001"]
        async with s.post(url + "/_sim/drop") as r:
            assert (await r.json())["ws_drops"] == 1
        sim.state.tokens.issue("k", "s")
        async with s.get(url + "/_sim/book") as r:
            book = await r.json()
        assert book["cash"] == sim.config.cash
        assert book["orders"] == []
        assert len(book["tokens"]) == 1
        async with s.post(url + "/_sim/faults", json={"clear": True}) as r:
            assert r.status == 200
        assert sim.state.faults.order_push_twice is False


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"no_such_knob": 1}, "no_such_knob"),
        ({"ws_silent": "yes"}, "ws_silent"),
        ({"token_ttl_s": 0}, "token_ttl_s"),
        ({"drop_after_accept": "kt10000"}, "drop_after_accept"),
    ],
)
async def test_a_bad_knob_is_a_400_naming_it_and_nothing_changes(
    body: dict[str, object], named: str
) -> None:
    async with Simulator(_config(control=True)) as sim, aiohttp.ClientSession() as s:
        async with s.post(sim.rest_url + "/_sim/faults", json={"ws_frame_delay_s": 1, **body}) as r:
            assert r.status == 400
            assert named in (await r.json())["error"]
        assert sim.state.faults.ws_frame_delay_s == 0.0


async def test_control_refuses_a_non_loopback_host() -> None:
    with pytest.raises(SimStartupError, match=r"sim\.control"):
        async with Simulator(_config(control=True, host="0.0.0.0")):
            pass
