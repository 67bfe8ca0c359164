"""Where the watchdog may raise HandlerStalled: in a strategy's own code, never while the
engine's code (or a library it called) runs on the stack above the handler call."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from engine import host
from engine.bus import EventBus
from engine.clock import SYSTEM_CLOCK
from engine.watchdog import in_engine


class _Host:
    """What `host.dispatch` reads of the host."""

    current: Any = None
    call_seq = 0
    _tasks: Any = None  # no asyncio task registry here: dispatch takes detach/attach_task
    _loop: Any = None

    def detach_task(self) -> None:
        return None

    def attach_task(self, _task: None) -> None:
        pass


HOST: Any = _Host()


class _Slot:
    """What `host.dispatch` reads of a slot."""

    def __init__(self) -> None:
        self.host = HOST
        self.enabled = True
        self.calls = 0
        self.budget_ns = 10**12
        self.overruns_in_row = 0
        self.name = "s"


class _Event:
    seq = 1  # stamped already: the bus takes it as it is


_TRADE: Any = _Event()


def test_the_strategys_own_frame_may_be_broken_into() -> None:
    seen: list[FrameType] = []

    def on_trade(_ev: Any) -> None:
        seen.append(sys._getframe())

    host.dispatch(HOST, ((_Slot(), on_trade, "on_trade"),), _TRADE)
    (frame,) = seen
    assert in_engine(frame) is False


def test_a_frame_called_by_engine_code_inside_the_handler_is_not() -> None:
    # The handler publishes on the bus (engine code), which calls back into code outside
    # engine/: raising there would unwind through the bus half way.
    seen: list[FrameType] = []
    bus = EventBus(SYSTEM_CLOCK)
    bus.subscribe(_Event, lambda _ev: seen.append(sys._getframe()))

    def on_trade(_ev: Any) -> None:
        bus.publish(_TRADE)  # an Event in all but name

    host.dispatch(HOST, ((_Slot(), on_trade, "on_trade"),), _TRADE)
    (frame,) = seen
    assert in_engine(frame) is True


def test_a_nested_handler_call_is_its_own_boundary() -> None:
    seen: list[FrameType] = []

    def on_order(_ev: Any) -> None:
        seen.append(sys._getframe())

    def on_trade(_ev: Any) -> None:
        host.dispatch(HOST, ((_Slot(), on_order, "on_order"),), _TRADE)

    host.dispatch(HOST, ((_Slot(), on_trade, "on_trade"),), _TRADE)
    (frame,) = seen
    assert in_engine(frame) is False


def test_outside_any_handler_call_nothing_is_raised() -> None:
    assert in_engine(sys._getframe()) is True
