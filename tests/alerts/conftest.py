"""Fixtures for the alerts: a fake Bot API / webhook server, a clock the test moves, and an
Alerts service wired to a real bus and portfolio."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engine.alerts import Alerts
from engine.bus import EventBus
from engine.clock import ManualClock
from engine.config import AlertsConfig, PortfolioConfig, TelegramConfig, WebhookConfig
from engine.secrets import Secret
from engine.trading.portfolio import Portfolio
from tests.alerts.fakebot import FakeBot

TOKEN = "7123456789:AAHfakeTokenForTests-q9Zr4WmXb2LpKd"
HOOK_SECRET = "T0FAKE/B0FAKE/hookSecretXy7Qp2Lm9Rz"


class StepClock(ManualClock):
    """A ManualClock that records each sleep asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await super().sleep(seconds)

    def next_due(self) -> float | None:
        pending = [t for t, f in self._sleepers if not f.done()]
        return min(pending) - self.monotonic() if pending else None


async def drive(clock: StepClock, cond: Callable[[], bool], within_s: float = 5.0) -> None:
    """Let the senders run, moving the clock on to the next sleeper's deadline whenever one
    waits, until `cond` holds (TimeoutError after `within_s` of real time)."""
    async with asyncio.timeout(within_s):
        while not cond():
            await asyncio.sleep(0.005)
            due = clock.next_due()
            if due is not None and not cond():
                clock.advance(max(due, 0.0))


@dataclasses.dataclass
class Rig:
    alerts: Alerts
    bus: EventBus
    portfolio: Portfolio
    clock: StepClock
    bot: FakeBot


def alerts_config(
    bot: FakeBot, *, telegram: bool = True, webhook: bool = False, **over: Any
) -> AlertsConfig:
    return AlertsConfig(
        **{"min_interval_s": 1.0, "retry_base_s": 1.0, **over},
        telegram=TelegramConfig(chat_id="-100777", api_url=bot.api_url, token=Secret(TOKEN))
        if telegram
        else None,
        webhook=WebhookConfig(url=Secret(bot.hook_url(HOOK_SECRET), redact="/hook/" + HOOK_SECRET))
        if webhook
        else None,
    )


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    clock_holder: list[StepClock] = []
    b = FakeBot(lambda: clock_holder[0].monotonic() if clock_holder else 0.0)
    b.clock_holder = clock_holder  # type: ignore[attr-defined]
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def make_rig(bot: FakeBot) -> AsyncIterator[Callable[..., Rig]]:
    made: list[Alerts] = []

    def make(*, start: bool = True, **over: Any) -> Rig:
        clock = StepClock()
        bot.clock_holder[:] = [clock]  # type: ignore[attr-defined]
        bus = EventBus(clock)
        portfolio = Portfolio(PortfolioConfig())
        alerts = Alerts(alerts_config(bot, **over), clock)
        alerts.attach(bus, portfolio)
        if start:
            alerts.start()
        made.append(alerts)
        return Rig(alerts, bus, portfolio, clock, bot)

    yield make
    for a in made:
        await a.close()
