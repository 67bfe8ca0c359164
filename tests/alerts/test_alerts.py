"""The alerts service against a local fake Bot API / webhook server (real HTTP on loopback):
what each kind of event says, batching within the pace, drops at the bound, 429 with
retry_after, 5xx retried, a refusal given up, the daily report as a photo. Time is a
ManualClock the test moves: every wait of the service is on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.events import (
    Disconnected,
    DisconnectReason,
    FeedResumed,
    FeedStale,
    Fill,
    PositionDivergence,
    Reconciled,
    Reconnected,
    RiskRejected,
    Side,
    StrategyDisabled,
    TradingState,
    TradingStateChanged,
)
from tests.alerts.conftest import HOOK_SECRET, TOKEN, Rig, drive
from tests.alerts.fakebot import Answer

pytestmark = pytest.mark.timeout(30)

MakeRig = Callable[..., Rig]


def fill(strategy: str | None, side: Side, qty: int, price: int, fee: int, tax: int = 0) -> Fill:
    return Fill("c1", strategy, "0001", f"f{qty}{price}", "005930", side, qty, price, fee, tax)


async def test_a_fill_says_strategy_side_qty_price_and_the_pnl_it_realised(
    make_rig: MakeRig,
) -> None:
    rig = make_rig(min_interval_s=0.0)
    for f in (
        fill("mom", Side.BUY, 10, 70_000, 105),
        fill("mom", Side.SELL, 10, 71_000, 106, 1278),
    ):
        rig.portfolio.on_fill(f)  # the OMS books a fill, then publishes it
        rig.bus.publish(f)
    await drive(rig.clock, lambda: len(rig.bot.lines()) == 2)
    assert rig.bot.lines() == [
        "FILL mom: BUY 10 005930 @ 70,000 | realised -105 (day -105)",
        # 710,000 - 700,000 - 106 - 1,278 = 8,616; the day: 8,616 - 105
        "FILL mom: SELL 10 005930 @ 71,000 | realised +8,616 (day +8,511)",
    ]
    assert {r.chat_id for r in rig.bot.received} == {"-100777"}
    assert all(r.path == f"/bot{TOKEN}/sendMessage" for r in rig.bot.received)


async def test_after_the_day_roll_a_fill_says_what_it_realised_and_the_new_day_s_pnl(
    make_rig: MakeRig,
) -> None:
    rig = make_rig(min_interval_s=0.0)
    buy = fill("mom", Side.BUY, 10, 70_000, 105)
    rig.portfolio.on_fill(buy)
    rig.bus.publish(buy)
    rig.portfolio.new_day()  # KST midnight: the risk engine's roll calls it
    sell = fill("mom", Side.SELL, 4, 71_000, 42, 511)
    rig.portfolio.on_fill(sell)
    rig.bus.publish(sell)
    await drive(rig.clock, lambda: len(rig.bot.lines()) == 2)
    assert rig.bot.lines() == [
        "FILL mom: BUY 10 005930 @ 70,000 | realised -105 (day -105)",
        # 284,000 - 280,000 - 42 - 511 = 3,447: the new day's first realised PnL, and its day
        "FILL mom: SELL 4 005930 @ 71,000 | realised +3,447 (day +3,447)",
    ]


async def test_lines_queued_within_the_pace_go_as_one_message(make_rig: MakeRig) -> None:
    rig = make_rig(min_interval_s=1.0)
    rig.alerts.post("first")
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    for i in range(5):  # within the second after the first message
        rig.alerts.post(f"line {i}")
    await drive(rig.clock, lambda: len(rig.bot.received) == 2)
    assert rig.bot.texts == ["first", "line 0\nline 1\nline 2\nline 3\nline 4"]
    # The second went a full interval after the first, on the service's clock.
    assert rig.bot.received[1].at - rig.bot.received[0].at >= 1.0


async def test_a_batch_never_passes_telegrams_4096_characters(make_rig: MakeRig) -> None:
    rig = make_rig(start=False)
    for i in range(100):
        rig.alerts.post(f"{i:03d} " + "x" * 96)  # 100 characters each
    rig.alerts.start()
    await drive(rig.clock, lambda: len(rig.bot.lines()) == 100)
    assert [len(t) for t in rig.bot.texts] == [40 * 101 - 1, 40 * 101 - 1, 20 * 101 - 1]
    assert rig.bot.lines()[0].startswith("000 ")
    assert rig.bot.lines()[-1].startswith("099 ")


async def test_lines_dropped_at_the_bound_are_counted_and_said_in_the_next_message(
    make_rig: MakeRig,
) -> None:
    rig = make_rig(start=False, queue_size=3)
    for i in range(10):
        rig.alerts.post(f"line {i}")
    rig.alerts.start()
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.bot.texts == ["(7 alert lines dropped: the queue was full)\nline 7\nline 8\nline 9"]
    assert rig.alerts.stats()["telegram"]["dropped"] == 7


async def test_429_waits_the_retry_after_telegram_asks_then_sends(make_rig: MakeRig) -> None:
    rig = make_rig(retry_base_s=1.0)
    rig.bot.script.append(
        Answer(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
        )
    )
    rig.alerts.post("halted")
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.bot.texts == ["halted"]
    assert len(rig.bot.refused) == 1
    assert 7.0 in rig.clock.slept
    assert rig.bot.received[0].at - rig.bot.refused[0].at >= 7.0
    assert rig.alerts.stats()["telegram"] == {
        "queued": 0,
        "sent": 1,
        "failed": 0,
        "retries": 1,
        "dropped": 0,
    }


async def test_a_webhook_429_honours_the_retry_after_header(make_rig: MakeRig) -> None:
    rig = make_rig(telegram=False, webhook=True)
    rig.bot.script.append(Answer(429, {"message": "slow down"}, {"Retry-After": "12"}))
    rig.alerts.post("feed down")
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    got = rig.bot.received[0]
    # One body both Slack (text) and Discord (content) read.
    assert got.json == {"text": "feed down", "content": "feed down"}
    assert got.path == f"/hook/{HOOK_SECRET}"
    assert got.at - rig.bot.refused[0].at >= 12.0


async def test_5xx_is_retried_with_back_off_and_a_refusal_is_given_up(make_rig: MakeRig) -> None:
    rig = make_rig(retry_base_s=2.0, max_attempts=4)
    rig.bot.script.extend([Answer(502, "bad gateway"), Answer(503, "busy")])
    rig.alerts.post("one")
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.bot.texts == ["one"]
    assert [r.at for r in rig.bot.refused] == [0.0, 2.0]  # back-off 2 s, then 4 s
    assert rig.bot.received[0].at == 6.0
    rig.bot.script.append(Answer(400, {"ok": False, "description": "Bad Request: chat not found"}))
    rig.alerts.post("two")
    await drive(rig.clock, lambda: rig.alerts.stats()["telegram"]["failed"] == 1)
    assert len(rig.bot.refused) == 3  # a 400 is final: not tried again
    rig.alerts.post("three")
    await drive(rig.clock, lambda: len(rig.bot.received) == 2)
    assert rig.bot.texts == ["one", "three"]


async def test_risk_rejections_come_as_one_digest_by_reason(make_rig: MakeRig) -> None:
    rig = make_rig(rejection_digest_s=60.0)
    for reason in ["MAX_NOTIONAL", "PRICE_BAND", "MAX_NOTIONAL", "MAX_NOTIONAL"]:
        rig.bus.publish(RiskRejected("c", "mom", "005930", Side.BUY, 1, 70_000, reason))
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.bot.texts == ["RISK rejected 4 orders in 1m 00s: MAX_NOTIONAL x3, PRICE_BAND x1"]
    assert rig.bot.received[0].at >= 60.0  # not before the minute is out


async def test_halt_and_resume_say_the_reason_and_who(make_rig: MakeRig) -> None:
    rig = make_rig(min_interval_s=0.0)
    rig.bus.publish(
        TradingStateChanged(
            TradingState.HALTED, TradingState.ACTIVE, "OPERATOR_HALT: lunch", ("OPERATOR",)
        )
    )
    rig.bus.publish(
        TradingStateChanged(TradingState.ACTIVE, TradingState.HALTED, "OPERATOR_RESUME: back", ())
    )
    rig.bus.publish(
        TradingStateChanged(
            TradingState.HALTED,
            TradingState.ACTIVE,
            "DAILY_LOSS: lost 5000000 of 5000000",
            ("DAILY_LOSS",),
        )
    )
    rig.bus.publish(
        TradingStateChanged(TradingState.HALTED, TradingState.ACTIVE, "mqtt: halt", ("OPERATOR",))
    )
    await drive(rig.clock, lambda: len(rig.bot.lines()) == 4)
    assert rig.bot.lines() == [
        "HALTED [OPERATOR]: OPERATOR_HALT: lunch | by operator (admin endpoint / CLI)",
        "RESUMED: now active (was halted): OPERATOR_RESUME: back | by operator (admin endpoint / CLI)",
        "HALTED [DAILY_LOSS]: DAILY_LOSS: lost 5000000 of 5000000 | by engine",
        "HALTED [OPERATOR]: mqtt: halt | by operator (MQTT command)",
    ]


async def test_a_disabled_strategy_says_why(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.bus.publish(StrategyDisabled("mom", "10 errors", 10, 0))
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.bot.texts == ["STRATEGY DISABLED mom: 10 errors (errors 10, overruns 0)"]


async def test_the_feed_is_told_down_only_past_n_seconds_and_then_back(make_rig: MakeRig) -> None:
    rig = make_rig(feed_down_after_s=30.0, min_interval_s=0.0)
    # A short drop: back within the 30 s, nothing said.
    rig.bus.publish(Disconnected(DisconnectReason.LOST, 1))
    rig.clock.advance(5.0)
    rig.bus.publish(Reconnected(1, 5.0))
    # A long one: stale for 12 s already, then the connection is dropped.
    rig.bus.publish(FeedStale(12.0))
    rig.bus.publish(Disconnected(DisconnectReason.STALE, 1))
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.clock.monotonic() == 5.0 + 18.0  # 30 s after the last frame
    rig.clock.advance(10.0)
    rig.bus.publish(Reconnected(2, 28.0))
    await drive(rig.clock, lambda: len(rig.bot.received) == 2)
    assert rig.bot.texts == [
        "FEED DOWN for 30s (stale): no prices or order notices",
        "FEED BACK after 40s",
    ]
    rig.bus.publish(FeedStale(3.0))
    rig.bus.publish(FeedResumed(4.0))
    rig.clock.advance(60.0)
    await drive(rig.clock, lambda: rig.alerts.idle)
    assert len(rig.bot.received) == 2


async def test_a_divergence_is_told_once_and_its_end_too(make_rig: MakeRig) -> None:
    rig = make_rig(min_interval_s=0.0)
    for _ in range(3):  # every reconciliation pass finds it again
        rig.bus.publish(PositionDivergence("005930", 10, 7))
        rig.bus.publish(Reconciled(1, 0, 1))
    rig.bus.publish(Reconciled(1, 0, 0))
    await drive(rig.clock, lambda: len(rig.bot.lines()) == 2)
    assert rig.bot.lines() == [
        "DIVERGENCE 005930: ours 10 shares, broker 7 (reconciliation)",
        "DIVERGENCE 005930 resolved: ours and the broker's agree",
    ]


async def test_switched_off_kinds_send_nothing(make_rig: MakeRig) -> None:
    rig = make_rig(fills=False, halts=False, lifecycle=False, min_interval_s=0.0)
    f = fill("mom", Side.BUY, 1, 70_000, 10)
    rig.portfolio.on_fill(f)
    rig.bus.publish(f)
    rig.bus.publish(TradingStateChanged(TradingState.HALTED, TradingState.ACTIVE, "x", ()))
    rig.alerts.started("sim", ["mom"], "active")
    rig.bus.publish(StrategyDisabled("mom", "slow", 0, 5))
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    assert rig.bot.texts == ["STRATEGY DISABLED mom: slow (errors 0, overruns 5)"]


async def test_the_daily_report_goes_as_text_then_a_telegram_photo(
    make_rig: MakeRig, tmp_path: Path
) -> None:
    png = tmp_path / "2026-01-05.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    rig = make_rig(min_interval_s=0.0, telegram=True, webhook=True)
    rig.alerts.post("a line before")
    rig.alerts.send_report("Day 2026-01-05\nmom: realised +8,616", png)
    await drive(rig.clock, lambda: len(rig.bot.received) == 6)
    tg = [r for r in rig.bot.received if r.kind != "hook"]
    hook = [r for r in rig.bot.received if r.kind == "hook"]
    assert [(r.kind, r.text) for r in tg] == [
        ("sendMessage", "a line before"),
        ("sendMessage", "Day 2026-01-05\nmom: realised +8,616"),
        ("sendPhoto", "Equity through the day (2026-01-05.png)"),
    ]
    assert tg[2].photo == png.read_bytes()
    assert tg[2].path == f"/bot{TOKEN}/sendPhoto"
    assert [r.text for r in hook] == [
        "a line before",
        "Day 2026-01-05\nmom: realised +8,616",
        "Equity through the day (2026-01-05.png)",
    ]


async def test_close_sends_what_is_queued_within_its_budget_and_no_longer(
    make_rig: MakeRig,
) -> None:
    rig = make_rig(min_interval_s=1.0)
    for i in range(3):
        rig.alerts.post(f"line {i}")
    await drive(rig.clock, lambda: len(rig.bot.received) == 1)
    rig.alerts.stopped("sim", 2, 8_511, 0)
    await rig.bot.stop()  # the server is gone: the stop line cannot go
    closing = __import__("asyncio").ensure_future(rig.alerts.close(budget_s=2.5))
    await drive(rig.clock, closing.done)
    assert rig.clock.monotonic() <= 2.5 + 1.0
    assert rig.alerts.stats()["telegram"]["dropped"] >= 1
