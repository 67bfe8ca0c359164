"""The alerts service: hears the bus, queues lines per target, sends them from its own tasks.

The loop's side is a handful of in-loop handlers for rare events (fills, rejections, state
changes, the feed's health, divergences) that format one line and append it to each target's
bounded outbox: no await, no I/O, nothing that can raise into the dispatch. Each target's
outbox is drained by its own task, paced (`min_interval_s`, Telegram's one message a second
per chat), merging what queued meanwhile into one message, retrying 429, 5xx and lost
connections with back-off and the server's `retry_after`. Every wait is on the engine's Clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from engine.bus import EventBus
from engine.clock import Clock
from engine.config import AlertsConfig
from engine.events import (
    Disconnected,
    FeedResumed,
    FeedStale,
    Fill,
    PositionDivergence,
    Reconciled,
    Reconnected,
    RiskRejected,
    StrategyDisabled,
    TradingStateChanged,
)
from engine.trading.portfolio import Portfolio

from . import messages as m
from .targets import SendFailed, Target, TelegramTarget, WebhookTarget

log = structlog.get_logger(__name__)

IDLE_POLL_S = 0.05
"""How often `close` looks whether the outboxes are empty (on the engine's Clock)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued line, or a message that goes alone (a report's text, a photo)."""

    text: str
    alone: bool = False
    png: Path | None = None


class Outbox:
    """One target's queue and figures.

    Bounded at `size` entries (a line is ~100 bytes: 1,000 of them are 100 kB); past it the
    oldest entry is dropped, counted in `dropped`, and the next message says how many went.
    Alerts are a copy of what the journal and the log keep, so dropping never loses a record.
    """

    def __init__(self, target: Target, size: int) -> None:
        self.target = target
        self.entries: deque[Entry] = deque()
        self.size = size
        self.wakeup = asyncio.Event()
        self.busy = False
        self.dropped = 0
        self.unsaid = 0
        """Dropped since the last message that said so."""
        self.sent = 0
        """Messages (and photos) the target took."""
        self.failed = 0
        """Messages given up after their last try, or refused for good."""
        self.retries = 0
        self.lines_failed = 0

    def put(self, entry: Entry) -> None:
        if len(self.entries) >= self.size:
            self.entries.popleft()
            self.dropped += 1
            self.unsaid += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "alerts_dropped", target=self.target.name, dropped=self.dropped, bound=self.size
                )
        self.entries.append(entry)
        self.wakeup.set()

    @property
    def idle(self) -> bool:
        return not self.entries and not self.busy

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self.entries),
            "sent": self.sent,
            "failed": self.failed,
            "retries": self.retries,
            "dropped": self.dropped,
        }


def targets_from(cfg: AlertsConfig) -> list[Target]:
    out: list[Target] = []
    if cfg.telegram is not None:
        out.append(TelegramTarget(cfg.telegram))
    if cfg.webhook is not None and cfg.webhook.enabled:
        out.append(WebhookTarget(cfg.webhook))
    return out


class Alerts:
    """See the module docstring. `attach` to the bus, `start` the senders, `close` at
    shutdown with a budget. `post` and `send_report` never block and never raise."""

    def __init__(
        self,
        cfg: AlertsConfig,
        clock: Clock,
        targets: Sequence[Target] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.boxes = [
            Outbox(t, cfg.queue_size) for t in (targets_from(cfg) if targets is None else targets)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self._closed = False
        self._portfolio: Portfolio | None = None
        self._seen: dict[tuple[str | None, str], int] = {}
        """Realised PnL per (strategy, symbol) as of the last fill heard (or the baseline)."""
        self._rejections: Counter[str] = Counter()
        self._digest: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._down_why = ""
        self._down_told = False
        self._episode = 0
        self._diverged: dict[str, tuple[int, int]] = {}
        self._this_pass: dict[str, tuple[int, int]] = {}

    # --- hearing the engine ------------------------------------------------------------

    def attach(self, bus: EventBus, portfolio: Portfolio) -> None:
        """Subscribe to the events each switched-on kind needs, and take the baseline again
        whenever the portfolio starts a new day's figures (`Portfolio.on_new_day`)."""
        self._portfolio = portfolio
        portfolio.on_new_day.append(self.mark_baseline)
        cfg = self.cfg
        subs: list[tuple[type | tuple[type, ...], Callable[[Any], None]]] = []
        if cfg.fills:
            subs.append((Fill, self._fill))
        if cfg.rejections:
            subs.append((RiskRejected, self._rejected))
        if cfg.halts:
            subs.append((TradingStateChanged, self._state))
        if cfg.strategy_disabled:
            subs.append((StrategyDisabled, self._disabled))
        if cfg.feed:
            subs.append(((Disconnected, FeedStale), self._feed_down))
            subs.append(((Reconnected, FeedResumed), self._feed_up))
        if cfg.divergence:
            subs.append((PositionDivergence, self._divergence))
            subs.append((Reconciled, self._reconciled))
        for types, handler in subs:
            bus.subscribe(types, handler)

    def mark_baseline(self) -> None:
        """Take the portfolio's realised PnL as already told (after the journal's recovery
        rebuilt it, and at each KST day roll, which starts it at 0): each fill's line then
        says what that fill realised."""
        p = self._portfolio
        if p is None:
            return
        self._seen = {(None, s): pos.realized for s, pos in p.positions.items()}
        for name, mine in p.by_strategy.items():
            for s, pos in mine.items():
                self._seen[(name, s)] = pos.realized

    def _fill(self, ev: Fill) -> None:
        p = self._portfolio
        pnl, day = 0, None
        if p is not None:
            if ev.strategy is None:
                pos = p.positions.get(ev.symbol)
            else:
                mine = p.by_strategy.get(ev.strategy, {})
                pos = mine.get(ev.symbol)
                day = sum(x.realized for x in mine.values())
            key = (ev.strategy, ev.symbol)
            now = pos.realized if pos is not None else 0
            pnl = now - self._seen.get(key, 0)
            self._seen[key] = now
        self.post(m.fill_line(ev, pnl, day))

    def _rejected(self, ev: RiskRejected) -> None:
        self._rejections[ev.reason] += 1
        if self._digest is None:
            self._digest = self._spawn(self._send_digest(), "alerts-digest")

    async def _send_digest(self) -> None:
        try:
            await self.clock.sleep(self.cfg.rejection_digest_s)
        finally:
            self._digest = None
        counts, self._rejections = self._rejections, Counter()
        if counts:
            self.post(m.rejection_digest(counts, self.cfg.rejection_digest_s))

    def _state(self, ev: TradingStateChanged) -> None:
        self.post(m.state_line(ev))

    def _disabled(self, ev: StrategyDisabled) -> None:
        self.post(m.disabled_line(ev))

    def _feed_down(self, ev: Disconnected | FeedStale) -> None:
        why = f"silent {ev.silent_s:.0f}s" if isinstance(ev, FeedStale) else ev.reason.value
        self._down_why = why
        if self._down_since is not None:
            return
        already = ev.silent_s if isinstance(ev, FeedStale) else 0.0
        self._down_since = self.clock.monotonic() - already
        self._down_told = False
        self._episode += 1
        self._spawn(self._tell_down(self._episode, already), "alerts-feed-down")

    async def _tell_down(self, episode: int, already_s: float) -> None:
        await self.clock.sleep(max(0.0, self.cfg.feed_down_after_s - already_s))
        if self._episode != episode or self._down_since is None:
            return
        self._down_told = True
        self.post(m.feed_down_line(self.clock.monotonic() - self._down_since, self._down_why))

    def _feed_up(self, ev: Reconnected | FeedResumed) -> None:
        if self._down_since is None:
            return
        down_s = self.clock.monotonic() - self._down_since
        if self._down_told:
            self.post(m.feed_back_line(down_s))
        self._down_since = None
        self._down_told = False
        self._episode += 1

    def _divergence(self, ev: PositionDivergence) -> None:
        seen = (ev.ours, ev.broker)
        self._this_pass[ev.symbol] = seen
        if self._diverged.get(ev.symbol) != seen:
            self.post(m.divergence_line(ev))

    def _reconciled(self, ev: Reconciled) -> None:
        """A pass ended: a divergence it did not find again is resolved; one it found again
        unchanged was told already (every pass repeats it)."""
        for symbol in sorted(set(self._diverged) - set(self._this_pass)):
            self.post(f"DIVERGENCE {symbol} resolved: ours and the broker's agree")
        self._diverged, self._this_pass = self._this_pass, {}

    # --- what others call --------------------------------------------------------------

    def post(self, line: str) -> None:
        """Queue `line` for every target. Never blocks, never raises."""
        if self._closed:
            return
        entry = Entry(line)
        for box in self.boxes:
            box.put(entry)

    def started(self, mode: str, strategies: Iterable[str], state: str) -> None:
        if self.cfg.lifecycle:
            self.post(m.started_line(mode, strategies, state))

    def stopped(self, mode: str, fills: int, realized: int, open_orders: int) -> None:
        if self.cfg.lifecycle:
            self.post(m.stopped_line(mode, fills, realized, open_orders))

    def send_report(self, text: str, png_path: str | Path | None = None) -> None:
        """Queue the daily report (`[alerts] daily_report`): its text as messages of its own,
        then the PNG (Telegram: a photo, sendPhoto; a webhook: a line naming the file).
        Returns at once; the file is read when it is sent. Call it on the event loop's
        thread (the daemon's `Running.alerts`); `[alerts] daily_report = false` makes it do
        nothing."""
        if self._closed or not self.cfg.daily_report:
            return
        png = Path(png_path) if png_path is not None else None
        for box in self.boxes:
            lines = text.splitlines() or [""]
            while lines:
                chunk, n = m.batch(lines, box.target.max_chars)
                box.put(Entry(chunk, alone=True))
                lines = lines[n:]
            if png is not None:
                box.put(Entry(f"Equity through the day ({png.name})", alone=True, png=png))

    # --- sending -------------------------------------------------------------------------

    def start(self) -> None:
        """Start one sender task per target."""
        if self._tasks or not self.boxes:
            return
        for box in self.boxes:
            self._tasks.append(
                asyncio.create_task(self._drain(box), name=f"alerts-{box.target.name}")
            )

    async def _drain(self, box: Outbox) -> None:
        cfg, clock = self.cfg, self.clock
        last = float("-inf")
        while True:
            while not box.entries:
                box.wakeup.clear()
                self._changed.set()
                await box.wakeup.wait()
            wait = last + cfg.min_interval_s - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)  # what queues meanwhile joins this message
            box.busy = True
            taken = 0
            try:
                entry, taken = self._take(box)
                await self._deliver(box, entry, taken)
            except asyncio.CancelledError:
                box.dropped += taken  # in flight when the budget ran out (see `close`)
                raise
            except Exception:
                box.failed += 1
                log.exception("alerts_sender_failed", target=box.target.name)
            finally:
                box.busy = False
                last = clock.monotonic()
                self._changed.set()

    def _take(self, box: Outbox) -> tuple[Entry, int]:
        """The next message: an entry that goes alone, or the queued lines merged, with
        the note of what was dropped first. Returns it and how many lines it carries."""
        head = box.entries[0]
        if head.alone:
            box.entries.popleft()
            return head, 1
        note = [m.dropped_line(box.unsaid)] if box.unsaid else []
        queued: list[str] = []
        for e in box.entries:
            if e.alone:
                break
            queued.append(e.text)
        text, n = m.batch(note + queued, box.target.max_chars)
        box.unsaid = 0
        taken = n - len(note)  # the note is not a queued line
        for _ in range(taken):
            box.entries.popleft()
        return Entry(text), max(taken, 1)

    async def _deliver(self, box: Outbox, entry: Entry, lines: int) -> None:
        cfg, target = self.cfg, box.target
        png: bytes | None = None
        if entry.png is not None:
            try:
                png = await asyncio.to_thread(entry.png.read_bytes)
            except OSError as e:
                log.warning("alerts_report_png_unreadable", path=str(entry.png), error=str(e))
        session = self._ensure_session()
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                if png is not None:
                    await target.send_photo(session, entry.text, png)
                else:
                    await target.send_text(session, entry.text)
            except SendFailed as e:
                delay = m.retry_delay(
                    e.status, e.body, e.headers, attempt, cfg.retry_base_s, cfg.retry_max_s
                )
                if delay is None or attempt == cfg.max_attempts:
                    box.failed += 1
                    box.lines_failed += lines
                    log.warning(
                        "alerts_send_failed",
                        target=target.name,
                        status=e.status,
                        error=str(e),
                        attempts=attempt,
                        lines=lines,
                    )
                    return
                box.retries += 1
                (log.warning if attempt == 1 else log.debug)(
                    "alerts_send_retry",
                    target=target.name,
                    status=e.status,
                    error=str(e),
                    attempt=attempt,
                    wait_s=round(delay, 3),
                )
                await self.clock.sleep(delay)
            else:
                box.sent += 1
                return

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s)
            )
        return self._session

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)
        return task

    @property
    def idle(self) -> bool:
        return all(box.idle for box in self.boxes)

    async def wait_idle(self, budget_s: float) -> bool:
        """Wait (on the Clock) until every outbox is empty, at most `budget_s`; True when
        they are."""
        deadline = self.clock.monotonic() + budget_s
        while not self.idle:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            sleep = asyncio.ensure_future(self.clock.sleep(min(left, IDLE_POLL_S)))
            try:
                await asyncio.wait({changed, sleep}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                sleep.cancel()
        return True

    async def close(self, budget_s: float = 0.0) -> None:
        """Send what is queued within `budget_s` (on the Clock), then stop the senders;
        what is left is logged and counted as dropped. Never raises; a second call does
        nothing."""
        if self._closed:
            return
        try:
            if budget_s > 0 and self._tasks:
                await self.wait_idle(budget_s)
        except Exception:
            log.exception("alerts_flush_failed")
        self._closed = True
        for t in [*self._tasks, *self._timers]:
            t.cancel()
        for t in [*self._tasks, *self._timers]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        for box in self.boxes:
            left = len(box.entries)
            if left:
                box.dropped += left
                log.warning("alerts_abandoned_at_stop", target=box.target.name, entries=left)
            box.entries.clear()
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None

    def stats(self) -> dict[str, Any]:
        """Per target: queued, sent, failed, retries, dropped (for /status and /metrics)."""
        return {box.target.name: box.stats() for box in self.boxes}
