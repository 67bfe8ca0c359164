"""What an alert says, and how queued lines become messages: pure functions, no I/O.

Each event a person should hear of becomes one line of plain text (no Markdown: nothing to
escape, nothing a symbol name or a reason could break). Lines queued while a target is paced
or retrying are merged into one message up to the target's size limit (`batch`). Whether and
how long to wait before a retry is `retry_delay`, from the answer's status, body and headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from engine.events import (
    Fill,
    PositionDivergence,
    StrategyDisabled,
    TradingState,
    TradingStateChanged,
)

TELEGRAM_MAX_CHARS = 4096
"""Telegram's limit for a message's text."""
TELEGRAM_CAPTION_MAX_CHARS = 1024
"""Telegram's limit for a photo's caption."""
WEBHOOK_MAX_CHARS = 2000
"""Discord's limit for `content` (Slack's `text` takes far more): the webhook's batch size."""
RETRY_AFTER_MAX_S = 3600.0
"""A server's retry_after is honoured up to this: a larger one is a bug, not a request."""


def money(krw: int) -> str:
    """A signed KRW amount with thousands separators: "+12,300", "-105", "0"."""
    return f"{krw:+,}" if krw else "0"


def fill_line(fill: Fill, pnl: int, day_pnl: int | None) -> str:
    """One fill: strategy, side, qty, symbol, price, and the realised PnL it made (after fees
    and tax; a buy's is its fee) with the strategy's realised PnL of the day."""
    who = fill.strategy or "external"
    day = f" (day {money(day_pnl)})" if day_pnl is not None else ""
    return (
        f"FILL {who}: {fill.side.value.upper()} {fill.qty:,} {fill.symbol} @ {fill.price:,}"
        f" | realised {money(pnl)}{day}"
    )


def rejection_digest(counts: Mapping[str, int], window_s: float) -> str:
    """Risk rejections of the last window, by reason, most frequent first."""
    total = sum(counts.values())
    parts = ", ".join(
        f"{reason} x{n}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return f"RISK rejected {total} order{'s' if total != 1 else ''} in {_span(window_s)}: {parts}"


def who_moved(ev: TradingStateChanged) -> str:
    """Who changed the trading state, from the reason's text (engine/admin.py writes
    OPERATOR_HALT/OPERATOR_RESUME, the mirror "mqtt: ...") and the halt kinds in force."""
    reason = ev.reason
    if reason.startswith(("OPERATOR_HALT", "OPERATOR_RESUME")):
        return "operator (admin endpoint / CLI)"
    if reason.startswith("mqtt:"):
        return "operator (MQTT command)"
    if reason.startswith(("DAILY_LOSS", "JOURNAL", "POSITION_DIVERGENCE", "DIVERGENCE")):
        return "engine"
    return "engine" if ev.state is TradingState.HALTED and not reason else "operator"


def state_line(ev: TradingStateChanged) -> str:
    """A halt, a resume or a mode change: the new state, the reason and who."""
    if ev.state is TradingState.HALTED:
        head = "HALTED" if ev.prev_state is not TradingState.HALTED else "STILL HALTED"
        kinds = f" [{', '.join(ev.reasons)}]" if ev.reasons else ""
        return f"{head}{kinds}: {ev.reason or '-'} | by {who_moved(ev)}"
    word = "RESUMED" if ev.prev_state is TradingState.HALTED else "TRADING"
    return (
        f"{word}: now {ev.state.value} (was {ev.prev_state.value}): {ev.reason or '-'}"
        f" | by {who_moved(ev)}"
    )


def disabled_line(ev: StrategyDisabled) -> str:
    return (
        f"STRATEGY DISABLED {ev.strategy}: {ev.reason} (errors {ev.errors}, overruns {ev.overruns})"
    )


def divergence_line(ev: PositionDivergence) -> str:
    return f"DIVERGENCE {ev.symbol}: ours {ev.ours:,} shares, broker {ev.broker:,} (reconciliation)"


def feed_down_line(down_s: float, why: str) -> str:
    return f"FEED DOWN for {_span(down_s)} ({why}): no prices or order notices"


def feed_back_line(down_s: float) -> str:
    return f"FEED BACK after {_span(down_s)}"


def started_line(mode: str, strategies: Iterable[str], state: str) -> str:
    names = ", ".join(strategies) or "none"
    return f"STARTED kiwoom-engine (mode {mode}): strategies {names}; trading {state}"


def stopped_line(mode: str, fills: int, realized: int, open_orders: int) -> str:
    return (
        f"STOPPED kiwoom-engine (mode {mode}): {fills} fills today, realised {money(realized)},"
        f" {open_orders} open orders left"
    )


def dropped_line(n: int) -> str:
    return f"({n} alert line{'s' if n != 1 else ''} dropped: the queue was full)"


def batch(lines: list[str], limit: int) -> tuple[str, int]:
    """Merge the first of `lines` into one message of at most `limit` characters; returns
    the message and how many lines it took (at least one). A single line longer than the
    limit is cut, marked with "...", never split over two messages."""
    if not lines:
        raise ValueError("nothing to batch")
    first = lines[0]
    if len(first) > limit:
        return first[: limit - 3] + "...", 1
    size = len(first)
    taken = 1
    for line in lines[1:]:
        if size + 1 + len(line) > limit:
            break
        size += 1 + len(line)
        taken += 1
    return "\n".join(lines[:taken]), taken


def retry_delay(
    status: int | None,
    body: Any,
    headers: Mapping[str, str],
    attempt: int,
    base_s: float,
    max_s: float,
) -> float | None:
    """How long to wait before trying a message again, or None when retrying cannot help.

    `status` None is a connection failure or timeout (retried). 429 and 5xx are retried
    after the longer of the back-off (`base_s` doubled per `attempt`, from 1, up to `max_s`)
    and the server's own `retry_after`: Telegram's `parameters.retry_after` in the JSON
    body, Discord's `retry_after` in the body, or the Retry-After header (seconds). Any
    other status (400 a bad chat id, 401 a bad token, 404) is final."""
    if status is not None and status != 429 and not 500 <= status <= 599:
        return None
    backoff: float = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    asked = server_retry_after(body, headers)
    return max(backoff, asked) if asked is not None else backoff


def server_retry_after(body: Any, headers: Mapping[str, str]) -> float | None:
    """The server's retry_after, seconds, from the body or the header; None when neither
    names a usable number (an HTTP date in the header is not read)."""
    found: list[float] = []
    if isinstance(body, Mapping):
        params = body.get("parameters")
        for value in (
            params.get("retry_after") if isinstance(params, Mapping) else None,
            body.get("retry_after"),
        ):
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.append(float(value))
    header = headers.get("Retry-After")
    if header is not None:
        with contextlib.suppress(ValueError):
            found.append(float(header.strip()))
    usable = [v for v in found if 0 <= v < float("inf")]
    return min(max(usable), RETRY_AFTER_MAX_S) if usable else None


def _span(seconds: float) -> str:
    """A duration as a person reads it: "45s", "3m 05s", "2h 10m"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
