"""Client overhead per REST call: KiwoomRest.call("ka10001") vs a raw aiohttp POST, and the
published peer `kiwoom-client` (PyPI; httpx; bench-only dependency group `bench`) on the same
simulator in the same rounds, its own throttle off (`rate_limit=None`) so that only its call
path is measured. Without the `bench` group the peer is skipped with a message.

Starts the simulator in-process on a free port, pacing and cache off, and runs both loops
sequentially in one process, interleaved in rounds so drift hits both equally. Two runs: the
simulator's own ka10001 handler, then a constant ka10001 answer (so the server's work does not
hide the client's cost). Usage: ``uv run --group bench python -m bench.rest_overhead [N]`` (default 2000). Besides the
text, one ``JSON {...}`` line per run carries the figures for `make bench`'s table.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from typing import Any

import aiohttp
import orjson
import structlog

from bench.results import emit
from engine.config import (
    SIM_APPKEY,
    SIM_SECRETKEY,
    CacheConfig,
    Config,
    KiwoomConfig,
    RateConfig,
    SimConfig,
)
from engine.kiwoom.rest import KiwoomRest
from engine.secrets import Secret
from engine.sim.rest import SimReply
from engine.sim.server import start
from engine.sim.state import build_state

try:
    from kiwoom_client import AsyncKiwoomAPI
except ImportError:  # the bench-only group is not installed
    AsyncKiwoomAPI = None

BODY = {"stk_cd": "005930"}
ROUNDS = 10


async def main(n: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    await run(n, constant=False)
    await run(n, constant=True)


async def run(n: int, *, constant: bool) -> None:
    sim_cfg = SimConfig(host="127.0.0.1", port=0, rest_rate_per_s=1e9, rest_burst=10**9)
    state = build_state(sim_cfg)
    if constant:
        reply = await state.rest_handlers["ka10001"](dict(BODY), "")

        async def fixed(body: dict[str, Any], next_key: str) -> SimReply:
            return reply

        state.rest_handlers["ka10001"] = fixed
    runner, port = await start(state)
    url = f"http://127.0.0.1:{port}"
    cfg = Config(
        kiwoom=KiwoomConfig(
            mode="sim",
            rest_url=url,
            rate=RateConfig(
                account_per_s=float("inf"),
                account_burst=10**9,
                per_api_per_s=float("inf"),
                per_api_burst=10**9,
            ),
            cache=CacheConfig(ttl_s={}),
            appkey=Secret(SIM_APPKEY),
            secretkey=Secret(SIM_SECRETKEY),
        ),
        sim=sim_cfg,
    )
    try:
        async with KiwoomRest.from_config(cfg) as rest:
            token = await rest.tokens.token()
            headers = {
                "api-id": "ka10001",
                "authorization": f"Bearer {token}",
                "content-type": "application/json;charset=UTF-8",
            }
            timeout = aiohttp.ClientTimeout(total=cfg.kiwoom.request_timeout_s)
            async with aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=30.0)
            ) as session:

                async def raw_call() -> None:
                    async with session.post(
                        url + "/api/dostk/stkinfo",
                        data=orjson.dumps(BODY),
                        headers=headers,
                        timeout=timeout,
                    ) as r:
                        body = orjson.loads(await r.read())
                        _ = r.headers.get("cont-yn"), r.headers.get("next-key")
                        assert body["return_code"] == 0

                async def client_call() -> None:
                    r = await rest.call("ka10001", BODY)
                    assert r.body["return_code"] == 0

                peer = (
                    None
                    if AsyncKiwoomAPI is None
                    else AsyncKiwoomAPI(SIM_APPKEY, SIM_SECRETKEY, base_url=url, rate_limit=None)
                )

                async def peer_call() -> None:
                    assert peer is not None
                    body = await peer.stock_info.basic_stock_info(**BODY)
                    assert body["return_code"] == 0

                for _ in range(50):  # warm the connections and code paths
                    await raw_call()
                    await client_call()
                    if peer is not None:
                        await peer_call()
                per_round = max(1, n // ROUNDS)
                raw_t: list[float] = []
                cli_t: list[float] = []
                peer_t: list[float] = []
                for _ in range(ROUNDS):
                    t0 = time.perf_counter()
                    for _ in range(per_round):
                        await raw_call()
                    raw_t.append((time.perf_counter() - t0) / per_round)
                    t0 = time.perf_counter()
                    for _ in range(per_round):
                        await client_call()
                    cli_t.append((time.perf_counter() - t0) / per_round)
                    if peer is not None:
                        t0 = time.perf_counter()
                        for _ in range(per_round):
                            await peer_call()
                        peer_t.append((time.perf_counter() - t0) / per_round)
                if peer is not None:
                    await peer.close()
        raw_us = statistics.median(raw_t) * 1e6
        cli_us = statistics.median(cli_t) * 1e6
        calls = per_round * ROUNDS
        which = "constant ka10001 answer" if constant else "simulator's ka10001 handler"
        print(f"--- {which}: {calls} calls per side (sequential, {ROUNDS} interleaved rounds)")
        print(f"raw aiohttp POST : {raw_us:8.1f} us/call (median of rounds)")
        print(f"KiwoomRest.call  : {cli_us:8.1f} us/call (median of rounds)")
        print(f"overhead ratio   : {cli_us / raw_us:.3f}x  (goal <= 1.3x)")
        print(f"client overhead  : {cli_us - raw_us:8.1f} us/call")
        tag = "constant" if constant else "sim_handler"
        emit(f"rest_call_us[{tag}]", cli_us, "us/call", raw_us, "raw aiohttp POST", "<= 1.3x")
        if peer_t:
            peer_us = statistics.median(peer_t) * 1e6
            print(
                f"kiwoom-client    : {peer_us:8.1f} us/call (median of rounds; httpx, no throttle)"
            )
            print(
                f"peer / raw       : {peer_us / raw_us:.3f}x   ours / peer: {cli_us / peer_us:.3f}x"
            )
            emit(
                f"rest_call_us[{tag}] vs kiwoom-client",
                cli_us,
                "us/call",
                peer_us,
                "kiwoom-client 0.4 call",
                "<= 1.0x",
            )
            emit(
                f"kiwoom-client rest_call_us[{tag}]",
                peer_us,
                "us/call",
                raw_us,
                "raw aiohttp POST",
                "(peer, for reference)",
            )
        else:
            print("kiwoom-client    : skipped (not installed: uv run --group bench ...)")
        print(
            f"sim saw ka10001  : {state.request_counts['ka10001']}, 429s: "
            f"{state.request_counts['ka10001'] - state.handled_counts['ka10001']}"
        )
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
