"""The bus: stamps, dispatch order, isolation, and each consumer queue's overflow policy."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import types
import typing
from typing import Any

import pytest

from engine.bus import AccountOverflow, ConsumerQueue, EventBus
from engine.clock import ManualClock
from engine.events import (
    ACCOUNT_EVENTS,
    Exchange,
    Fill,
    OrderBook,
    OrderState,
    OrderUpdate,
    Quote,
    Side,
    Trade,
)


def trade(symbol: str = "005930", price: int = 70_000, qty: int = 1) -> Trade:
    return Trade(symbol, Exchange.KRX, 90000, price, qty, 0, 0, 0, 0, 0, 0, 0)


def quote(symbol: str = "005930", ask: int = 70_100) -> Quote:
    return Quote(symbol, Exchange.KRX, ask, ask - 100)


def update(cid: str = "c1") -> OrderUpdate:
    return OrderUpdate(
        cid, "s", "005930", Side.BUY, 1, 70_000, OrderState.SUBMITTING, OrderState.NEW, None, 0, 0
    )


def fill(n: str = "1") -> Fill:
    return Fill("c1", "s", "0000001", n, "005930", Side.BUY, 1, 70_000, 0, 0)


def test_every_event_is_stamped_with_clock_time_and_a_rising_sequence() -> None:
    clock = ManualClock()
    bus = EventBus(clock)
    a, b = trade(), quote()
    bus.publish(a)
    clock.advance(1.5)
    bus.publish(b)
    assert (a.seq, b.seq) == (1, 2)
    assert b.ts_recv - a.ts_recv == 1_500_000_000
    assert a.ts_recv == clock.time_ns() - 1_500_000_000


def test_events_raised_inside_a_handler_wait_and_account_events_go_first() -> None:
    bus = EventBus(ManualClock())
    seen: list[str] = []

    def on_trade(ev: Trade) -> None:
        seen.append(f"trade{ev.price}")
        if ev.price == 1:
            # While handling: market data first, then an account event. Neither re-enters.
            bus.publish(trade(price=2))
            bus.publish(update())
            seen.append("handler_done")

    bus.subscribe(Trade, on_trade)
    bus.subscribe(OrderUpdate, lambda ev: seen.append("order"))
    bus.publish(trade(price=1))
    assert seen == ["trade1", "handler_done", "order", "trade2"]


def test_handlers_see_the_event_being_dispatched_as_current() -> None:
    # The OMS reads bus.current to time an order from the tick it answers: the first event
    # of a dispatch (the inlined path) must be named as much as the ones that waited.
    bus = EventBus(ManualClock())
    first, queued = trade(price=1), trade(price=2)
    seen: list[object] = []

    def on_trade(ev: Trade) -> None:
        seen.append(bus.current)
        if ev is first:
            bus.publish(queued)

    bus.subscribe(Trade, on_trade)
    bus.publish(first)
    assert seen == [first, queued]
    assert bus.current is None


def test_a_raising_handler_is_counted_and_the_others_still_run() -> None:
    bus = EventBus(ManualClock())
    got: list[int] = []

    def bad(ev: Trade) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Trade, bad)
    bus.subscribe(Trade, lambda ev: got.append(ev.price))
    q = bus.attach(ConsumerQueue("q"))
    bus.publish(trade(price=5))
    assert got == [5]
    assert bus.handler_errors == 1
    assert q.depth == 1


def test_consumer_queue_coalesces_quotes_per_symbol_and_keeps_the_newest() -> None:
    q = ConsumerQueue("q")
    for ask in (100, 200, 300):
        q.offer(quote("005930", ask))
    q.offer(quote("000660", 50))
    book = OrderBook("005930", Exchange.KRX, 0, (), (), 0, 0)
    q.offer(book)
    out = q.take()
    assert [type(e).__name__ for e in out] == ["Quote", "Quote", "OrderBook"]
    assert out[0].symbol == "005930"
    assert out[0].best_ask == 300
    assert q.coalesced == 2
    assert q.depth == 0


def test_consumer_queue_drops_oldest_trades_with_a_count_but_never_an_account_event() -> None:
    q = ConsumerQueue("q", max_market=3)
    for i in range(10):
        q.offer(fill(str(i)))
        q.offer(trade(price=i + 1))
    assert q.dropped == 7
    out = q.take(limit=100)
    fills = [e for e in out if isinstance(e, Fill)]
    trades = [e for e in out if isinstance(e, Trade)]
    assert [f.fill_no for f in fills] == [str(i) for i in range(10)]
    assert [t.price for t in trades] == [8, 9, 10]
    # Account events come out first.
    assert out[:10] == fills


def test_a_copying_queue_drops_its_oldest_account_event_past_the_bound_and_counts_it() -> None:
    # The mirror's policy: a copy of what the journal keeps; its loss never stops trading.
    q = ConsumerQueue("mirror", max_account=3)
    assert q.account_overflow is AccountOverflow.DROP_OLDEST
    for i in range(5):
        q.offer(fill(str(i)))
    assert q.critical_depth == 3
    assert q.account_dropped == 2
    assert [f.fill_no for f in q.take()] == ["2", "3", "4"]
    assert q.stats()["account_dropped"] == 2


def test_the_journal_queue_drops_nothing_calls_on_full_at_its_bound_and_on_drained_at_half() -> (
    None
):
    calls: list[tuple[str, int]] = []
    q = ConsumerQueue(
        "journal",
        max_account=4,
        account_overflow=AccountOverflow.HALT,
        on_full=lambda q: calls.append(("full", q.critical_depth)),
        on_drained=lambda q: calls.append(("drained", q.critical_depth)),
    )
    for i in range(3):
        q.offer(fill(str(i)))
    assert calls == []
    assert not q.account_full
    q.offer(fill("3"))
    assert calls == [("full", 4)]
    assert q.account_full
    for i in range(4, 7):
        q.offer(fill(str(i)))
    assert calls == [("full", 4)]  # once per episode
    assert q.account_over_bound == 3
    assert q.account_dropped == 0
    assert len(q.take(limit=4)) == 4  # 3 left: more than half of 4
    assert calls == [("full", 4)]
    assert q.account_full
    assert [f.fill_no for f in q.take(limit=1)] == ["4"]  # 2 left: half
    assert calls == [("full", 4), ("drained", 2)]
    assert not q.account_full
    assert [f.fill_no for f in q.take()] == ["5", "6"]  # every one kept, in order
    q.offer(fill("7"))
    q.offer(fill("8"))
    q.offer(fill("9"))
    q.offer(fill("10"))
    assert calls[-1] == ("full", 4)  # a new episode


def test_a_raising_queue_hook_is_logged_and_never_breaks_the_dispatch() -> None:
    bus = EventBus(ManualClock())

    def broken(_q: ConsumerQueue) -> None:
        raise RuntimeError("owner bug")

    q = bus.attach(
        ConsumerQueue(
            "journal", max_account=2, account_overflow=AccountOverflow.HALT, on_full=broken
        )
    )
    got: list[Fill] = []
    bus.subscribe(Fill, got.append)
    for i in range(3):
        bus.publish(fill(str(i)))
    assert len(got) == 3
    assert q.critical_depth == 3
    assert q.account_full


def test_consumer_queue_refuses_an_account_bound_below_two() -> None:
    with pytest.raises(ValueError, match="max_account"):
        ConsumerQueue("q", max_account=1)


def test_consumer_queue_filter_and_limit() -> None:
    q = ConsumerQueue("journal", types={Fill, OrderUpdate})
    q.offer(trade())
    for i in range(5):
        q.offer(fill(str(i)))
    assert q.offered == 5
    assert len(q.take(limit=2)) == 2
    assert q.depth == 3


async def test_consumer_queue_get_waits_for_an_event() -> None:
    q = ConsumerQueue("q")
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.offer(fill())
    got = await asyncio.wait_for(getter, 1)
    assert len(got) == 1


def test_consumer_queue_refuses_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="max_market"):
        ConsumerQueue("q", max_market=0)


async def test_a_slow_consumer_lets_a_scheduled_order_task_go_before_its_batch() -> None:
    bus = EventBus(ManualClock())
    queue = bus.attach(ConsumerQueue("slow"))
    order: list[str] = []

    async def consumer() -> None:
        await queue.get()
        order.append("batch")

    async def placement() -> None:
        order.append("order")

    bus.publish(trade())
    worker = asyncio.create_task(consumer())  # scheduled first: ahead in the loop's queue
    bus.spawn_urgent(placement(), "place")
    assert bus.take_turn_wanted()
    assert not bus.take_turn_wanted()  # read once
    await worker
    assert order == ["order", "batch"]
    assert not bus.urgent_waiting


async def test_an_order_task_cancelled_before_it_ran_holds_no_consumer_back() -> None:
    bus = EventBus(ManualClock())
    queue = bus.attach(ConsumerQueue("slow"))

    async def never() -> None:
        raise AssertionError("cancelled before its first step")

    task = bus.spawn_urgent(never(), "place")
    task.cancel()
    assert bus.urgent_waiting
    bus.publish(trade())
    assert len(await asyncio.wait_for(queue.get(), 1)) == 1
    assert not bus.urgent_waiting


def test_a_typed_queue_is_offered_only_its_types() -> None:
    bus = EventBus(ManualClock())
    accounts = bus.attach(ConsumerQueue("journal", types={OrderUpdate, Fill}))
    everything = bus.attach(ConsumerQueue("mirror"))
    for ev in (trade(), quote(), update(), fill(), trade()):
        bus.publish(ev)
    assert accounts.offered == 2  # market data never reached it
    assert [type(e) for e in accounts.take()] == [OrderUpdate, Fill]
    assert everything.offered == 5
    late = bus.attach(ConsumerQueue("late", types={Trade}))  # the table is rebuilt
    bus.publish(trade())
    assert (late.offered, accounts.offered, everything.offered) == (1, 2, 6)


def _sample(cls: type, n: int) -> Any:
    """An instance of the event dataclass `cls` with every field filled by its type, and `n`
    in each int and str field so that no two samples are equal; all name one symbol, so a
    queue that coalesced per symbol would keep one."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.default is not dataclasses.MISSING:
            continue
        if f.default_factory is not dataclasses.MISSING:
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        t = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
        origin = typing.get_origin(t) or t
        if isinstance(origin, type) and issubclass(origin, enum.Enum):
            values[f.name] = next(iter(origin))
        elif origin is bool:
            values[f.name] = False
        elif origin is int:
            values[f.name] = n
        elif origin is float:
            values[f.name] = float(n)
        elif origin is str:
            values[f.name] = "005930" if f.name == "symbol" else f"{f.name}{n}"
        elif origin is tuple:
            values[f.name] = ()
        else:
            values[f.name] = None
    return cls(**values)


@pytest.mark.parametrize("cls", ACCOUNT_EVENTS, ids=lambda c: c.__name__)
def test_no_queue_drops_or_coalesces_an_account_event_of_any_type(cls: type) -> None:
    # Issue 14 item 25: a mutant that let 04 (Balance) coalesce per symbol survived the suite.
    samples = [_sample(cls, n) for n in (1, 2, 3)]
    assert len({repr(s) for s in samples}) == 3
    for q in (
        ConsumerQueue("mirror", max_market=1),
        ConsumerQueue("journal", max_market=1, account_overflow=AccountOverflow.HALT),
    ):
        for s in samples:
            q.offer(s)
            q.offer(trade())
            q.offer(quote())
        out = [e for e in q.take(limit=100) if type(e) is cls]
        assert out == samples, q.name
        assert q.account_dropped == 0
