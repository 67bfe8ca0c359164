"""The chaos scenarios and their runner. Each drives one kind of fault for `duration_s`, then
lets the daemon settle and checks every invariant (chaos/checks.py)."""

from __future__ import annotations

import asyncio
import random
import signal
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaos import checks
from chaos.stack import SIM_PING_S, Stack, until

Driver = Callable[[Stack, float], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    drive: Driver
    strategies: tuple[str, ...] = ("trader",)
    provoked: frozenset[str] = frozenset()
    """Log events with a traceback that the scenario causes on purpose."""


@dataclass
class Result:
    scenario: str
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(ok for ok, _ in self.checks.values())


async def _every(period_s: float, duration_s: float, act: Callable[[int], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    i = 0
    while loop.time() < end:
        await asyncio.sleep(min(period_s, max(0.0, end - loop.time())))
        if loop.time() >= end:
            break
        await act(i)
        i += 1


async def ws_drops(stack: Stack, duration_s: float) -> None:
    async def drop(_i: int) -> None:
        await stack.ws_drop()

    await _every(max(2.0, duration_s / 4), duration_s, drop)


async def rest_faults(stack: Stack, duration_s: float) -> None:
    # request_timeout_s is 2 s: a 3 s delay is a timeout after the order was taken.
    rounds = [
        {"http_error_queue": {"kt10000": [503], "kt10001": [502], "ka10075": [500, 503]}},
        {"rest_delay_s": {"kt10000": 3.0}},
        {"drop_after_accept": ["kt10000"]},
        {"rest_delay_s": {"kt10003": 3.0, "kt10002": 3.0}},
        {"drop_after_accept": ["kt10001"]},
    ]

    async def step(i: int) -> None:
        await stack.faults(clear=True, **rounds[i % len(rounds)])

    await _every(max(1.5, duration_s / len(rounds)), duration_s, step)


async def push_order(stack: Stack, duration_s: float) -> None:
    rounds = [
        {"order_push_first": True},
        {"ws_frame_delay_s": 0.2},
        {"order_push_twice": True},
        {"order_push_twice": True, "order_push_first": True},
    ]
    await stack.faults(**rounds[0])

    async def step(i: int) -> None:
        await stack.faults(clear=True, **rounds[(i + 1) % len(rounds)])

    await _every(max(1.5, duration_s / len(rounds)), duration_s, step)


async def token_expiry(stack: Stack, duration_s: float) -> None:
    await stack.faults(token_ttl_s=3.0, expire_tokens=True)

    async def expire(_i: int) -> None:
        await stack.faults(expire_tokens=True)

    await _every(max(1.0, duration_s / 5), duration_s, expire)


async def rate_storms(stack: Stack, duration_s: float) -> None:
    async def storm(i: int) -> None:
        if i % 2 == 0:
            await stack.faults(
                rest_rate_per_s=2.0, rest_burst=2, rate_limit_once=["kt10000", "kt10001"]
            )
        else:
            await stack.faults(rest_rate_per_s=1000.0, rest_burst=1000)

    await _every(max(1.0, duration_s / 6), duration_s, storm)
    await stack.faults(rest_rate_per_s=1000.0, rest_burst=1000)


async def mqtt_restarts(stack: Stack, duration_s: float) -> None:
    async def restart(_i: int) -> None:
        await stack.restart_broker(down_s=1.0)

    await _every(max(2.0, duration_s / 3), duration_s, restart)


async def sigkill_loop(stack: Stack, duration_s: float) -> None:
    rng = random.Random(duration_s)
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    i = 0
    while loop.time() < end:
        # Some kills land while an order's answer is held: the order is taken, unanswered.
        if i % 2:
            await stack.faults(clear=True, rest_delay_s={"kt10000": 1.5, "kt10003": 1.5})
        else:
            await stack.faults(clear=True)
        await asyncio.sleep(rng.uniform(0.3, 2.5))
        await stack.kill_daemon()
        await stack.faults(clear=True)
        await stack.start_daemon()
        i += 1


async def bad_strategies(stack: Stack, duration_s: float) -> None:
    await asyncio.sleep(duration_s)


async def sim_freeze(stack: Stack, duration_s: float) -> None:
    async def freeze(_i: int) -> None:
        stack.signal_sim(signal.SIGSTOP)
        await asyncio.sleep(SIM_PING_S * 3)  # past the PING interval and the stale deadline
        stack.signal_sim(signal.SIGCONT)

    await _every(max(1.0, duration_s / 2), duration_s, freeze)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("ws_drops", ws_drops),
    Scenario("rest_5xx_timeouts", rest_faults),
    Scenario("push_order_late_twice", push_order),
    Scenario("token_expiry", token_expiry),
    Scenario("429_storms", rate_storms),
    Scenario("mqtt_restarts", mqtt_restarts),
    Scenario("sigkill_loop", sigkill_loop),
    Scenario(
        "strategy_raises_blocks",
        bad_strategies,
        strategies=("trader", "raiser", "blocker"),
        provoked=frozenset({"strategy_handler_failed"}),
    ),
    Scenario("sim_freeze", sim_freeze),
)


async def _settle(stack: Stack) -> tuple[dict[str, object] | None, dict[str, object]]:
    """Faults off, trading halted, until the daemon's books agree with the simulator's (or
    20 s): the last /status and the simulator's book."""
    await stack.faults(clear=True, rest_rate_per_s=1000.0, rest_burst=1000)
    if stack.daemon is None or stack.daemon.returncode is not None:
        await stack.start_daemon()
    await until(stack.daemon_ready, 30)
    await stack.halt()
    last: dict[str, object] = {}

    async def agreed() -> bool:
        status = await stack.daemon_status()
        book = await stack.book()
        last["status"], last["book"] = status, book
        return checks.books_match(status, book)[0] and not book.get("open_orders_changing")

    await until(agreed, 20, poll_s=0.5)
    return last["status"], last["book"]  # type: ignore[return-value]


async def run_scenario(scenario: Scenario, duration_s: float, root: Path) -> Result:
    result = Result(scenario.name)
    dir = Path(tempfile.mkdtemp(prefix=f"{scenario.name}-", dir=root))
    try:
        async with Stack(dir, strategies=scenario.strategies) as stack:
            await scenario.drive(stack, duration_s)
            status, book = await _settle(stack)
            result.checks["books"] = checks.books_match(status, book)  # type: ignore[arg-type]
            await stack.stop_daemon()
            book = await stack.book()
            await asyncio.sleep(0.5)  # the recorder takes what the last flush sent
            result.checks["orders"] = checks.orders_match(dir / "state" / "journal.sqlite3", book)
            result.checks["mqtt_seq"] = checks.seq_gaps(stack.recorder.messages)
            log_ok, log_detail = checks.log_clean(stack.daemon_log, scenario.provoked)
            bad_exits = [c for c in stack.daemon_exits if c != 0]
            if bad_exits:
                log_ok, log_detail = False, f"{log_detail}; exit codes {bad_exits}"
            result.checks["log"] = (log_ok, log_detail)
            texts = {
                "daemon.log": stack.daemon_log.read_bytes(),
                "sim.log": stack.sim_log.read_bytes(),
            }
            texts["mqtt"] = b"\n".join(p for _r, _t, p in stack.recorder.messages)
            result.checks["secrets"] = checks.no_secrets(
                [*stack.tokens, stack.appkey, stack.secretkey], texts
            )
            placed = sum(1 for o in book["orders"] if o["action"] == "new")  # type: ignore[index]
            if placed == 0:
                result.checks["traded"] = (False, "no order reached the simulator")
            else:
                result.checks["traded"] = (True, f"{placed} new orders, {book['fills']} fills")
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"[:2000]
    result_dir = dir
    result.checks.setdefault("_dir", (True, str(result_dir)))
    return result


COLUMNS = ("traded", "orders", "books", "mqtt_seq", "log", "secrets")


def table(results: list[Result]) -> str:
    """The invariant table, markdown."""
    lines = [
        "| scenario | " + " | ".join(COLUMNS) + " | result |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for r in results:
        cells = []
        for c in COLUMNS:
            got = r.checks.get(c)
            cells.append("-" if got is None else ("ok" if got[0] else "FAIL"))
        lines.append(
            f"| {r.scenario} | " + " | ".join(cells) + f" | {'PASS' if r.ok else 'FAIL'} |"
        )
    return "\n".join(lines)


def details(results: list[Result]) -> str:
    out = []
    for r in results:
        out.append(f"{r.scenario}:" + (f" ERROR {r.error}" if r.error else ""))
        for name, (ok, detail) in r.checks.items():
            out.append(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return "\n".join(out)
