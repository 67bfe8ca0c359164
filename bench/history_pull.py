"""History pull: the wall time of `kiwoom-engine history`'s puller against the governor's own
minimum for the same requests (the rate limit is the floor: N requests at R per second with a
burst of 1 cannot take less than (N - 1) / R seconds). Goal <= 1.1x: the store's writes, the
parsing and the paging add at most a tenth.

The simulator runs in-process on a free port, on a clock set to a fixed evening (its chart
days are then fixed), with its own rate limit out of the way; the client's account bucket is
RATE per second, burst 1. Minute bars of SYMBOLS over the simulator's five intraday days,
into a scratch store. Usage: ``uv run python -m bench.history_pull [RATE]`` (default 20).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from bench.results import emit
from engine import config
from engine.clock import KST, OffsetClock
from engine.data.pull import Puller
from engine.data.store import Store
from engine.kiwoom.charts import KiwoomCharts
from engine.kiwoom.rest import KiwoomRest
from engine.sim.rest import RestHandler, SimReply
from engine.sim.simulator import Simulator

SYMBOLS = ("005930", "000660", "035420")
EVENING = datetime(2026, 11, 27, 20, 0, tzinfo=KST)


def memoise(sim: Simulator) -> None:
    """The simulator rebuilds and formats a whole chart for every page it serves (about 50 ms
    for five days of minute bars); memoised, its answers cost a lookup, so the figure measures
    the client and the governor, as against Kiwoom, whose work is not ours."""
    for api_id in ("ka10080", "ka10081"):
        handler = sim.state.rest_handlers[api_id]
        seen: dict[tuple[bytes, str], SimReply] = {}

        def make(handler: RestHandler, seen: dict[tuple[bytes, str], SimReply]) -> RestHandler:
            async def memo(body: dict[str, Any], next_key: str) -> SimReply:
                key = (orjson.dumps(body, option=orjson.OPT_SORT_KEYS), next_key)
                hit = seen.get(key)
                if hit is None:
                    hit = seen[key] = await handler(body, next_key)
                return hit

            return memo

        sim.state.rest_handlers[api_id] = make(handler, seen)


async def warm(rest: KiwoomRest, clock: OffsetClock) -> None:
    """One pull into a throw-away store fills the memo (and imports pyarrow)."""
    with tempfile.TemporaryDirectory() as tmp:
        puller = Puller(KiwoomCharts(rest, clock), Store(Path(tmp)), clock)
        for symbol in SYMBOLS:
            await puller.pull(symbol, "1m", EVENING.date().replace(day=1), EVENING.date())


async def main(rate: float) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    clock = OffsetClock((EVENING - datetime.now(KST)).total_seconds())
    base = config.load(None, env={})
    sim_cfg = dataclasses.replace(base.sim, port=0, rest_rate_per_s=1e6, rest_burst=10**6)
    async with Simulator(sim_cfg, clock) as sim:
        memoise(sim)
        rate_cfg = dataclasses.replace(
            base.kiwoom.rate,
            account_per_s=rate,
            account_burst=1,
            per_api_per_s=1e6,
            per_api_burst=10**6,
        )
        kiwoom = dataclasses.replace(base.kiwoom, rest_url=sim.rest_url, rate=rate_cfg)
        unpaced = dataclasses.replace(rate_cfg, account_per_s=1e6, account_burst=10**6)
        cfg = dataclasses.replace(base, kiwoom=kiwoom)
        with tempfile.TemporaryDirectory() as tmp:
            async with KiwoomRest.from_config(
                dataclasses.replace(cfg, kiwoom=dataclasses.replace(kiwoom, rate=unpaced)),
                clock,
                revoke_on_close=False,
            ) as rest:
                await warm(rest, clock)
            async with KiwoomRest.from_config(cfg, clock, revoke_on_close=False) as rest:
                await rest.tokens.token()  # the token request is not a chart request
                puller = Puller(KiwoomCharts(rest, clock), Store(Path(tmp)), clock)
                start = EVENING.date().replace(day=1)
                t0 = time.perf_counter()
                requests = rows = 0
                for symbol in SYMBOLS:
                    stats = await puller.pull(symbol, "1m", start, EVENING.date())
                    requests += stats.pages + stats.factor_pages
                    rows += stats.rows
                wall = time.perf_counter() - t0
    floor = (requests - 1) / rate
    print(
        f"history pull: {requests} requests, {rows} rows, {wall:.2f} s; the governor's floor "
        f"at {rate:g}/s burst 1: {floor:.2f} s; ratio {wall / floor:.3f}"
    )
    emit(
        "history_pull_s",
        wall,
        "s",
        floor,
        f"governor floor ({requests} req at {rate:g}/s)",
        "<= 1.1x",
    )


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
