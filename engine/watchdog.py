"""The stall watchdog: a thread of its own that breaks a strategy handler stuck in the event
loop, and ends the process when it cannot be broken or the shutdown overruns its deadline.

The loop marks every handler call in `StrategyHost.current` (engine/host.py); this thread only
reads that record. A call current for `daemon.handler_stall_s` gets `HandlerStalled` raised
into the loop's thread (`PyThreadState_SetAsyncExc`), again every `RAISE_EVERY_S` while the
same call is current, and any raise still pending is withdrawn once it is not. A handler that
swallows it, or waits in C (`time.sleep`, a lock: an asynchronous exception only lands between
bytecodes), is still current `STALL_GRACE_S` later: the strategy is held disabled across
restarts (engine/holds.py), the reason logged, and the process exits with EXIT_STALLED.

Once a stop is asked for (SIGTERM), the whole shutdown has `daemon.stop_timeout_s`: a handler
call running longer than `stop_break_s` is broken the same way, and a C wait too, by the stop
signal sent again to the loop's thread (its Python handler raises between bytecodes, which
interrupts the wait); past the deadline (and STOP_MARGIN_S) the process exits. The thread
also reads the signals' wakeup fd (`hear`), so a SIGTERM arms that deadline even while the
loop's thread is in C code.

Time here is real time (`stopwatch_ns`, as for handler budgets), whatever the engine's Clock:
a stall is CPU and wall time lost, never simulated.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import structlog

from engine.clock import stopwatch_ns

if TYPE_CHECKING:
    from engine.holds import Holds
    from engine.host import Call, StrategyHost

log = structlog.get_logger(__name__)

EXIT_STALLED: Final = 7
"""The watchdog ended the process: a handler that could not be broken (its strategy is then
held disabled), or a shutdown past its deadline. Not 0, so that Restart=on-failure restarts."""
TICK_S: Final = 0.05
"""How often the thread looks at the current call."""
RAISE_EVERY_S: Final = 0.2
"""How often HandlerStalled is raised again into a call that swallowed it."""
STALL_GRACE_S: Final = 2.0
"""From the first raise to giving up on a call. A pure-Python loop breaks in well under a
second; one still current after this swallows the exception or waits in C."""
STOP_BREAK_MIN_S: Final = 0.5
"""During the shutdown a call is broken after the larger of this and a tenth of
`stop_timeout_s` (at most `handler_stall_s`), leaving the rest to the orders, the journal and
the token revoke."""
STOP_MARGIN_S: Final = 0.5
"""Past the stop deadline, how long the watchdog lets a shutdown that kept its steps to the
deadline finish unwinding (closing what is already closed) before it ends the process."""
_ENGINE_DIR: Final = str(Path(__file__).resolve().parent) + os.sep
_HOST_FILE: Final = _ENGINE_DIR + "host.py"
_CALL_SITES: Final = frozenset({"call", "dispatch"})
"""The host's functions that call a strategy handler and catch what it raises."""


class HandlerStalled(BaseException):
    """Raised into a strategy handler that ran past `daemon.handler_stall_s` (or past its share
    of the shutdown). A BaseException, so that `except Exception` in a strategy does not
    swallow it; the host counts it as the strategy's fault and disables the strategy."""


class StopStalled(HandlerStalled):
    """HandlerStalled raised while the daemon stops: the strategy is not disabled the usual
    way (which cancels its orders); `daemon.on_stop` decides about orders."""


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> int:
    set_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    return int(set_exc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None))


def in_engine(frame: FrameType | None) -> bool:
    """Whether raising at `frame` could leave the engine's own work half done: it, or a frame
    it was called from above the host's handler call, runs engine code (an order on its way
    through the OMS, the journal; a library the engine called, such as the logger). The
    strategy's own code, and libraries it called itself, are fair game. Also True outside any
    handler call."""
    f = frame
    while f is not None:
        code = f.f_code
        if code.co_filename.startswith(_ENGINE_DIR):
            return not (code.co_filename == _HOST_FILE and code.co_name in _CALL_SITES)
        f = f.f_back
    return True


def describe(call: Call) -> tuple[str, str, float]:
    """(strategy, handler name, seconds it has run) of a current call."""
    slot, handler, started_ns = call
    return slot.name, handler, (stopwatch_ns() - started_ns) / 1e9


class Watchdog:
    """The thread. Build it on the loop's thread (that is the thread it breaks into), `watch`
    the host once there is one, `start` it; `stop_requested` arms the shutdown deadline and may
    be called from a signal handler."""

    def __init__(
        self,
        *,
        stall_s: float,
        stop_timeout_s: float,
        holds: Holds | None,
        resignal: bool = False,
        last_words: Callable[[], Mapping[str, Any]] | None = None,
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        self.stall_s = stall_s
        self.stop_timeout_s = stop_timeout_s
        self.stop_break_s = min(stall_s, max(STOP_BREAK_MIN_S, stop_timeout_s / 10))
        self._holds = holds
        self._resignal = resignal
        self.last_words = last_words
        """What the exit line should add (the MQTT spool's depth, open orders): read from the
        admin's last published snapshot, never from the live engine."""
        self._exit = exit
        self._thread_id = threading.get_ident()
        self._thread_c_id = ctypes.c_ulong(self._thread_id)
        self._host: StrategyHost | None = None
        self._stop_ns: int | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: Call | None = None
        self._reported = False
        self._raised = False
        self._last_raise_ns = 0
        self.breaks = 0
        """HandlerStalled raised into the loop (each attempt)."""
        self.gave_up = False
        self._wakeup: socket.socket | None = None
        self._on_signal: Callable[[int], None] | None = None
        self._signal_broke: Call | None = None

    def watch(self, host: StrategyHost) -> None:
        self._host = host

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stall-watchdog", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._clear()
        self._report_signal_break()  # a shutdown quicker than a tick

    def stop_requested(self) -> None:
        """A stop was asked for: the shutdown's deadline starts now (the first call counts)."""
        if self._stop_ns is None:
            self._stop_ns = stopwatch_ns()

    def since_stop_s(self) -> float:
        """Seconds since the stop was asked for, 0 before."""
        return 0.0 if self._stop_ns is None else (stopwatch_ns() - self._stop_ns) / 1e9

    def current_call(self) -> tuple[str, str, float] | None:
        """(strategy, handler, seconds) of the handler call running now, if any."""
        host = self._host
        call = host.current if host is not None else None
        return describe(call) if call is not None else None

    def break_from_signal(self, frame: FrameType | None) -> None:
        """Called by the stop signal's Python handler, which runs on the loop's thread between
        bytecodes: raise HandlerStalled out of the handler call running there, when it has run
        past `stop_break_s` and the signal interrupted the strategy's own code."""
        host = self._host
        call = host.current if host is not None else None
        if call is None or in_engine(frame):
            return
        if (stopwatch_ns() - call[2]) / 1e9 >= self.stop_break_s:
            # Logged by the thread: a log line here could re-enter a handler's lock.
            self._signal_broke = call
            raise StopStalled

    # --- the thread --------------------------------------------------------------------------

    def hear(self, wakeup: socket.socket, on_signal: Callable[[int], None]) -> None:
        """Read signal numbers from `wakeup` (the read end of `signal.set_wakeup_fd`'s pair)
        on this thread and call `on_signal` with each: a signal reaches the daemon even when
        the loop's thread is held in C code, where its Python handlers cannot run. Call
        before `start`."""
        self._wakeup = wakeup
        self._on_signal = on_signal

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wait()
            try:
                self._tick()
            except Exception:
                log.exception("watchdog_failed")

    def _wait(self) -> None:
        """TICK_S, or until a signal arrives (then handled at once)."""
        wakeup, on_signal = self._wakeup, self._on_signal
        if wakeup is None or on_signal is None:
            self._closed.wait(TICK_S)
            return
        try:
            ready, _, _ = select.select([wakeup], [], [], TICK_S)
            if not ready:
                return
            heard = wakeup.recv(64)
        except (OSError, ValueError):  # closed under us at shutdown
            self._closed.wait(TICK_S)
            return
        for signum in heard:
            try:
                on_signal(signum)
            except Exception:
                log.exception("watchdog_signal_failed", signal=signum)

    def _tick(self) -> None:
        host = self._host
        call = host.current if host is not None else None
        self._report_signal_break()
        if call is not self._seen:
            if self._reported and self._seen is not None:
                strategy, handler, ran_s = describe(self._seen)
                log.warning("handler_stall_ended", strategy=strategy, handler=handler, ran_s=ran_s)
            self._clear()
            self._seen = call
            self._reported = False
        stopping = self._stop_ns is not None
        if call is not None:
            strategy, handler, ran_s = describe(call)
            limit = self.stop_break_s if stopping else self.stall_s
            if ran_s >= limit:
                if not self._reported:
                    self._reported = True
                    log.error(
                        "handler_stalled",
                        strategy=strategy,
                        handler=handler,
                        ran_s=round(ran_s, 3),
                        limit_s=limit,
                        stopping=stopping,
                        action="raising HandlerStalled into it",
                    )
                self._break(call, stopping)
                if not stopping and ran_s >= limit + STALL_GRACE_S:
                    self._give_up(call, "handler_unbreakable")
        if stopping and self.since_stop_s() >= self.stop_timeout_s + STOP_MARGIN_S:
            self._give_up(call, "shutdown_deadline")

    def _report_signal_break(self) -> None:
        broke, self._signal_broke = self._signal_broke, None
        if broke is None or (broke is self._seen and self._reported):
            return
        if broke is self._seen:
            self._reported = True
        strategy, handler, _ = describe(broke)
        log.error(
            "handler_stalled",
            strategy=strategy,
            handler=handler,
            ran_s=None,  # the call ended with the raise; its time is in strategy_slow
            limit_s=self.stop_break_s,
            stopping=True,
            action="HandlerStalled raised by the stop signal",
        )

    def _break(self, call: Call, stopping: bool) -> None:
        now = stopwatch_ns()
        if now - self._last_raise_ns < RAISE_EVERY_S * 1e9:
            return
        self._last_raise_ns = now
        if stopping and self._resignal:
            # Interrupts a C wait too: the signal's Python handler raises (break_from_signal).
            signal.pthread_kill(self._thread_id, signal.SIGTERM)
        host = self._host
        if host is None or in_engine(sys._current_frames().get(self._thread_id)):
            return
        exc = ctypes.py_object(StopStalled if stopping else HandlerStalled)
        set_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
        # The loop's thread runs no bytecode from the frame check to the raise: it waits for
        # the GIL, which this thread gives up only at a switch request (after 5 ms of the
        # other's waiting), and neither line between checks for one before the C call. The
        # exception so lands where the frame was seen. (An OS pause of this thread longer
        # than that could still let the loop move on: then the raise is withdrawn at once.)
        if host.current is call:
            set_exc(self._thread_c_id, exc)
            self._raised = True
            self.breaks += 1
            if host.current is not call:
                self._clear()

    def _clear(self) -> None:
        """Withdraw a HandlerStalled not yet delivered: its call has returned."""
        if self._raised:
            _set_async_exc(self._thread_id, None)
            self._raised = False

    def _give_up(self, call: Call | None, why: str) -> None:
        if self.gave_up:
            return
        self.gave_up = True
        strategy = handler = None
        ran_s = 0.0
        held = False
        if call is not None:
            strategy, handler, ran_s = describe(call)
            if self._holds is not None:
                try:
                    self._holds.hold(
                        strategy,
                        f"{why}: {handler} ran {ran_s:.1f} s and could not be broken",
                    )
                    held = True
                except OSError as e:
                    log.error("strategy_hold_failed", strategy=strategy, error=str(e))
        extra: dict[str, Any] = {}
        if self.last_words is not None:
            try:
                extra = dict(self.last_words())
            except Exception:
                log.exception("watchdog_last_words_failed")
        log.critical(
            "watchdog_exit",
            why=why,
            strategy=strategy,
            handler=handler,
            ran_s=round(ran_s, 3),
            since_stop_s=round(self.since_stop_s(), 3) if self._stop_ns is not None else None,
            held_disabled=held,
            hint=f"kiwoom-engine enable {strategy} once it is fixed" if held else None,
            exit_code=EXIT_STALLED,
            journal="crash-safe: every order intent and fill written is kept; the next start "
            "reconciles the rest with the broker",
            mqtt="best effort: messages still spooled are not delivered",
            token_revoke="not done (the event loop is stuck); the token expires on its own",
            **extra,
        )
        _flush_logs()
        self._exit(EXIT_STALLED)


def _flush_logs() -> None:
    # Exiting anyway: a stream that cannot be flushed has nothing more to tell.
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stderr, sys.stdout):
        with contextlib.suppress(Exception):
            stream.flush()
