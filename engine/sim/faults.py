"""Fault knobs the tests turn on a running simulator, shared by its REST and WebSocket sides.

A plain mutable dataclass: a test sets a field and the next matching request sees it. One-shot
knobs clear themselves when they fire. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Faults:
    # --- REST ---
    rest_delay_s: dict[str, float] = field(default_factory=dict)
    """api-id -> seconds to hold the answer AFTER the request was handled (an order is taken
    and counted, then the client waits): drives client timeout / outcome-unknown tests."""
    drop_after_accept: set[str] = field(default_factory=set)
    """api-ids whose connection is closed without an answer after the request was handled."""
    http_error_once: dict[str, int] = field(default_factory=dict)
    """api-id -> HTTP status (5xx) answered once, before the request reaches its handler."""
    http_error_queue: dict[str, list[int]] = field(default_factory=dict)
    """api-id -> statuses answered in turn, one per request, before the handler (e.g. [503,
    502] fails twice and then serves normally)."""
    token_error_once: bool = False
    """The next authenticated request gets the token error (rc 3, 8005) though its token is
    valid."""
    rate_limit_once: set[str] = field(default_factory=set)
    """api-ids that get one HTTP 429 / rc 5 answer whatever the bucket holds."""
    order_no_missing: set[str] = field(default_factory=set)
    """Order api-ids whose order is taken and then answered with return_code 0 but a blank
    ord_no (the client cannot tell which order is live)."""
    order_push_first: bool = False
    """What a client hears first of a taken order. False: the REST answer is written, then
    the 00 (접수, and any immediate fill) and 04 pushes are queued on the WebSocket. True: the
    pushes are written to every logged-in session first (the answer waits while the feed is
    silent), then the answer is sent. A client in the same process handles them in that
    order too (see engine/sim/rest.py). The default comes from config `sim.order_push_first`;
    when the answer is delayed or dropped (`rest_delay_s`, `drop_after_accept`), the pushes
    go at once, as the order is live."""

    order_push_twice: bool = False
    """Every push an order request causes (00 접수 / 체결, 04) is published twice, as a
    client may hear a frame again; a client must count each order and fill once."""

    # --- WebSocket (consumed by engine/sim/ws.py; the only place its knobs live) ---
    ws_system_frames_before_login: int = 1
    """SYSTEM frames sent between a good LOGIN and its ack. Production does this, so the
    default is 1 (not a fault: clients must cope); 0 gives the plain handshake. The simulator
    starts from `sim.system_frames_before_login`, and `clear()` goes back to that."""
    ws_frame_delay_s: float = 0.0
    """Delay before every server frame."""
    ws_silent: bool = False
    """The server stops sending anything (no PING, no REAL, no acks) while set."""
    ws_ping_stop: bool = False
    """The server stops sending PINGs (and stops enforcing the echo) while set."""
    ws_pong_timeout_s: float | None = None
    """How long a client may take to echo a PING before it is dropped; None = the PING
    interval."""
    ws_reject_reg: bool = False
    """REG is answered with return_code 1 while set."""
    ws_close_in_handshake: int = 0
    """The next N connections are closed with code 1000 right after their LOGIN, before any
    ack, as Kiwoom does to clients that reconnect too fast. Counts down."""
    ws_close_after_login: int = 0
    """The next N connections get their LOGIN ack and are then closed with code 1000 (a
    session that flaps right after login). Counts down."""
    ws_drops: int = 0
    """How many times `ws_drop_now` was called."""
    _ws_drop_listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _ws_system_frames_configured: int = field(default=1, init=False, repr=False)
    _configured_push_first: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._ws_system_frames_configured = self.ws_system_frames_before_login
        self._configured_push_first = self.order_push_first

    def take_http_error(self, api_id: str) -> int | None:
        """The injected HTTP status for this request, or None. Consumes one-shot entries."""
        status = self.http_error_once.pop(api_id, None)
        if status is not None:
            return status
        queue = self.http_error_queue.get(api_id)
        if queue:
            status = queue.pop(0)
            if not queue:
                del self.http_error_queue[api_id]
            return status
        return None

    def take_token_error(self) -> bool:
        """True once after `token_error_once` was set."""
        if self.token_error_once:
            self.token_error_once = False
            return True
        return False

    def take_rate_limit(self, api_id: str) -> bool:
        """True once per api-id in `rate_limit_once`."""
        if api_id in self.rate_limit_once:
            self.rate_limit_once.discard(api_id)
            return True
        return False

    def take_ws_close_in_handshake(self) -> bool:
        """True (and one fewer left) when this connection is to be closed during LOGIN."""
        if self.ws_close_in_handshake > 0:
            self.ws_close_in_handshake -= 1
            return True
        return False

    def take_ws_close_after_login(self) -> bool:
        """True (and one fewer left) when this session is to be closed after its LOGIN ack."""
        if self.ws_close_after_login > 0:
            self.ws_close_after_login -= 1
            return True
        return False

    def on_ws_drop(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` on every `ws_drop_now()`; returns a function that unsubscribes."""
        self._ws_drop_listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._ws_drop_listeners:
                self._ws_drop_listeners.remove(listener)

        return unsubscribe

    def ws_drop_now(self) -> None:
        """Ask every open WebSocket session to drop its connection at once."""
        self.ws_drops += 1
        for listener in list(self._ws_drop_listeners):
            listener()

    def clear(self) -> None:
        """Turn every fault off and put every knob back to its default (listeners stay;
        `order_push_first` goes back to the value the simulator was configured with)."""
        self.rest_delay_s.clear()
        self.drop_after_accept.clear()
        self.http_error_once.clear()
        self.http_error_queue.clear()
        self.token_error_once = False
        self.rate_limit_once.clear()
        self.order_no_missing.clear()
        self.order_push_first = self._configured_push_first
        self.order_push_twice = False
        self.ws_system_frames_before_login = self._ws_system_frames_configured
        self.ws_frame_delay_s = 0.0
        self.ws_silent = False
        self.ws_ping_stop = False
        self.ws_pong_timeout_s = None
        self.ws_reject_reg = False
        self.ws_close_in_handshake = 0
        self.ws_close_after_login = 0
