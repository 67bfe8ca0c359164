"""The MQTT mirror: every event the bus carries, published to a broker for outside subscribers.

Owns the broker connection (reconnect with backoff), the spool of QoS 1 messages the broker has
not acknowledged yet, the retained `status` / `positions` / `risk_state`, and the optional
halt/resume commands. It reads its own ConsumerQueue and never blocks the bus: with no broker,
trading goes on and the mirror keeps retrying. Topics and payloads: engine/mirror_schema.py.

The publish path (figures: bench/mirror.py, bench/RESULTS.md). aiomqtt's `await publish`
waits for each message's own write, one loop turn per message; the feed can pass 20k
events/s. The mirror keeps aiomqtt for what it does well (connecting in an executor, the
socket callbacks on our loop, keepalive, the will, TLS, subscriptions, noticing a lost
connection) and publishes through the paho client underneath it, without waiting:
- market data (QoS 0) is batched per loop turn: the batch's PUBLISH packets are encoded here
  (`fixed_header`, `topic_header`) and handed to paho's write queue as one buffer, so a batch
  costs one send() instead of one per message, the largest cost left in paho's own publish;
- QoS 1 messages go through paho's `publish`, which numbers them and tracks their
  acknowledgements; `_ack_loop` collects those from each message's info, and paho's
  per-message publish callback is switched off (aiomqtt's `publish`, which needs it, is never
  called).
No thread is added: all of it runs in the loop's turns.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson
import paho.mqtt.client as paho
import structlog

from engine.bus import AccountOverflow, ConsumerQueue
from engine.clock import Clock
from engine.config import MqttConfig
from engine.events import ACCOUNT_EVENTS, Event, OrderUpdate, SessionChanged
from engine.mirror_schema import (
    QOS_ACCOUNT,
    QOS_MARKET,
    ROUTES,
    CommandRejected,
    Route,
    Topics,
    encode_event,
    encode_snapshot,
    encode_status,
    parse_command,
)
from engine.trading.orders import TERMINAL

if TYPE_CHECKING:
    from engine.trader import Trader

log = structlog.get_logger(__name__)

BATCH = 128
"""Events published per loop turn. Between batches the writer callback flushes the socket and
the feed gets its turn. 128 events take about a millisecond to encode here: larger batches
gain little rate (bench/mirror.py) and make the loop's turns longer for the feed."""
LINGER_S = 0.005
"""How long a small batch waits for more before it is published: at most this much delay for
subscribers, against a wake-up per event for the engine's loop."""
WINDOW = 1_000
"""QoS 1 messages sent and not yet acknowledged, at most. Keeps paho's message ids (65535)
from wrapping onto one still in flight; the rest of the spool waits its turn, in order."""
ACK_POLL_S = 0.005
"""How often acknowledgements are collected while QoS 1 messages are in flight."""
DRAIN_POLL_MAX_S = 0.02
"""Longest pause between checks of a socket that does not drain (a broker that stopped
reading); the queue absorbs what arrives meanwhile."""
SNAPSHOTS = ("positions", "risk_state")
ENDED_TOPICS_KEPT = 4_096
"""Topics of ended orders (`order/<client_id>`) whose seq is remembered, newest last: the
OMS's own window of ended orders (engine/trading/oms.py ENDED_KEPT). An order it has
forgotten gets no more updates, so its topic's seq is not needed; without this bound the
mirror would keep one entry per order of the day."""

_PUBLISH = 0x30
"""MQTT 3.1.1 PUBLISH, QoS 0, no retain: the fixed header's first byte."""
_RAW_QUEUE = hasattr(paho.Client, "_packet_queue")
"""paho's write queue, private but stable across paho 1.x and 2.x (uv.lock pins 2.2). Should a
release drop it, market data falls back to paho's `publish`, one send() per message."""

_PAHO_LOG = logging.getLogger("engine.mirror.mqtt")

CommandHandler = Callable[[str, Mapping[str, Any]], None]
SnapshotSource = Callable[[], Mapping[str, Any]]


@dataclass(slots=True)
class _Lane:
    """One market-data topic: its name as every packet to it carries it, and its last seq."""

    header: bytes
    seq: int = 0


@dataclass(slots=True)
class _Spooled:
    topic: str
    payload: bytes
    info: paho.MQTTMessageInfo | None = None
    """Set while sent on the current connection and not yet acknowledged."""


class Mirror:
    """Publishes what arrives on `queue` (see `Mirror.queue`) to the broker of `cfg`.

    `snapshots()` returns `{"positions": {...}, "risk_state": {...}}` (plain JSON data); it is
    called in the loop after account events and every `cfg.snapshot_s`. `on_command(name,
    args)` gets "halt" or "resume" with `{"reason": str}` when `cfg.commands_enabled`.

    Raises at construction only for a TLS setting it cannot use (an unreadable `ca_file`).
    """

    def __init__(
        self,
        cfg: MqttConfig,
        queue: ConsumerQueue,
        clock: Clock,
        *,
        account: str,
        snapshots: SnapshotSource | None = None,
        on_command: CommandHandler | None = None,
    ) -> None:
        self._cfg = cfg
        self._queue = queue
        self._clock = clock
        self._snapshots = snapshots
        self._on_command = on_command
        self.client_id = cfg.client_id or f"kiwoom-engine-{account}"
        self.topics = Topics(cfg.prefix or f"kiwoom/{account}")
        self._tls = ssl.create_default_context(cafile=cfg.ca_file) if cfg.tls else None
        self._started_ns = clock.time_ns()
        self._seq: dict[str, int] = {}
        self._ended_topics: dict[str, None] = {}
        """The topics of ended orders, oldest first (see ENDED_TOPICS_KEPT)."""
        self.ended_topics_kept = ENDED_TOPICS_KEPT
        self._spool: deque[_Spooled] = deque()
        self._sent = 0
        """The first `_sent` entries of the spool went out on the current connection."""
        self._spool_filled = asyncio.Event()
        self._paho: paho.Client | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._held: list[Event] = []
        """The batch the pump took off the queue and has not published yet (it lingers for
        more): a stop publishes or counts it with what is still queued."""
        self._online_seq = 0
        self._stopping = False
        self._snap_last: dict[str, bytes] = {}
        self._sessions: dict[str, bytes] = {}
        """The last retained session payload per venue topic (see `_session`)."""
        self._topic_lanes: dict[str, _Lane] = {}
        self._lanes: dict[str, dict[Any, _Lane]] = {r.name: {} for r in ROUTES.values()}
        """Per market-data route, the lanes of its topics by the event's topic attributes."""
        self._snap_due = 0.0
        self._snap_wanted = False
        self.connections = 0
        self.connect_failures = 0
        self.published_market = 0
        self.published_account = 0
        """QoS 1 messages the broker acknowledged."""
        self.dropped_offline = 0
        self.spool_dropped = 0
        self.commands_accepted = 0
        self.commands_rejected = 0
        self.snapshots_published = 0
        self.encode_errors = 0
        self.snapshot_errors = 0
        self.errors = 0
        _PAHO_LOG.setLevel(max(logging.INFO, logging.getLogger().level))

    @staticmethod
    def queue(max_market: int = 10_000, max_account: int = 100_000) -> ConsumerQueue:
        """The mirror's inbox, to attach to the bus before events flow. Market data beyond
        `max_market` (trades) drops oldest and quotes/books coalesce per symbol, counted in
        its `dropped` / `coalesced`. Account events are held up to `max_account` (give it
        `mqtt.spool_size`: the pump moves them into the spool, which has that bound too); past
        it, only if the pump stalls, the oldest goes and is counted in `account_dropped`. A
        broker outage never stops trading: the journal keeps every one of them."""
        return ConsumerQueue(
            "mirror",
            max_market=max_market,
            max_account=max_account,
            account_overflow=AccountOverflow.DROP_OLDEST,
        )

    @property
    def connected(self) -> bool:
        return self._paho is not None

    def stats(self) -> dict[str, int]:
        """Counters for metrics and status. `published_account` counts acknowledged QoS 1
        messages; `dropped_offline` market data that arrived with no broker; `spooled` QoS 1
        messages waiting for the broker, `in_flight` of them sent on this connection;
        `spool_dropped` those lost to a full spool."""
        q = self._queue
        return {
            "connected": int(self.connected),
            "connections": self.connections,
            "reconnects": max(0, self.connections - 1),
            "connect_failures": self.connect_failures,
            "published_market": self.published_market,
            "published_account": self.published_account,
            "dropped_offline": self.dropped_offline,
            "queue_depth": q.depth,
            "queue_dropped": q.dropped,
            "queue_account_dropped": q.account_dropped,
            "queue_coalesced": q.coalesced,
            "spooled": len(self._spool),
            "in_flight": self._sent,
            "spool_dropped": self.spool_dropped,
            "commands_accepted": self.commands_accepted,
            "commands_rejected": self.commands_rejected,
            "snapshots_published": self.snapshots_published,
            "encode_errors": self.encode_errors,
            "errors": self.errors,
        }

    # --- the life of it ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (retrying with backoff) and publish until cancelled. Never raises for the
        broker's sake: refusals and lost connections are logged, counted and retried.

        Cancelled while connected, it publishes what its queue holds, waits up to
        `cfg.flush_timeout_s` for the spool's acknowledgements, sets `status` offline and
        disconnects; the spool it could not deliver is logged (the journal has all of it).
        """
        self._pump_task = asyncio.create_task(self._pump(), name="mirror-pump")
        try:
            await self._connect_forever()
        finally:
            self._pump_task.cancel()
            self._disconnected()
            # Account events still queued (or held by the pump) never reached the spool: lost
            # as much as it is.
            queued = self._queue.critical_depth + sum(
                isinstance(ev, ACCOUNT_EVENTS) for ev in self._held
            )
            if self._spool or queued or self.spool_dropped:
                log.warning(
                    "mirror_stopped_with_spool",
                    undelivered=len(self._spool) + queued,
                    spooled=len(self._spool),
                    queued=queued,
                    dropped_earlier=self.spool_dropped,
                    kept="the journal has every one",
                )
            log.info("mirror_stopped", **self.stats())

    async def _connect_forever(self) -> None:
        failures = 0
        while True:
            try:
                client = self._client()
                async with client:
                    failures = 0
                    await self._serve(client)
            except aiomqtt.MqttError as e:
                if self._stopping:
                    # The disconnect after _goodbye failed (a broker that stopped answering):
                    # the cancellation stands.
                    raise asyncio.CancelledError from None
                lost = self.connected
                self._disconnected()
                failures += 1
                self.connect_failures += not lost
                delay = min(
                    self._cfg.reconnect_max_s, self._cfg.reconnect_min_s * 2 ** (failures - 1)
                )
                log.warning(
                    "mirror_connection_lost" if lost else "mirror_broker_unreachable",
                    host=self._cfg.host,
                    port=self._cfg.port,
                    error=str(e),
                    attempt=failures,
                    retry_in_s=delay,
                    spooled=len(self._spool),
                )
                await self._clock.sleep(delay)
            except Exception:
                # A bug, not the broker: trading must not stop for the mirror's sake.
                self._disconnected()
                log.exception("mirror_failed")
                await self._clock.sleep(self._cfg.reconnect_max_s)

    def _client(self) -> aiomqtt.Client:
        # The will's seq comes after the "online" this connection will publish.
        self._online_seq = self._next_seq(self.topics.status)
        lost = self._status(
            "offline", "lost", self._next_seq(self.topics.status), next_connection=True
        )
        will = aiomqtt.Will(self.topics.status, lost, qos=QOS_ACCOUNT, retain=True)
        password = self._cfg.password.reveal() if self._cfg.password else None
        client = aiomqtt.Client(
            self._cfg.host,
            self._cfg.port,
            username=self._cfg.username,
            password=password,
            identifier=self.client_id,
            logger=_PAHO_LOG,
            will=will,
            keepalive=self._cfg.keepalive_s,
            timeout=self._cfg.connect_timeout_s,
            tls_context=self._tls,
            # 0 = no limit in paho: WINDOW bounds what is in flight, and paho's own limit
            # rescans every message in flight at each acknowledgement.
            max_inflight_messages=0,
        )
        client._client.connect_timeout = self._cfg.connect_timeout_s
        return client

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Publish on this connection until it is lost (MqttError) or the task is cancelled."""
        conn = client._client  # see the module docstring: publishing without waiting
        conn.on_publish = None
        self.connections += 1
        self._paho = conn
        self._publish_retained(
            self.topics.status, self._status("online", "connected", self._online_seq)
        )
        self._snap_last.clear()
        self._publish_snapshots()
        for topic, payload in self._sessions.items():
            self._publish_retained(topic, payload)
        log.info(
            "mirror_connected",
            host=self._cfg.host,
            port=self._cfg.port,
            prefix=self.topics.prefix,
            connection=self.connections,
            spooled=len(self._spool),
            dropped_offline=self.dropped_offline,
        )
        acker = asyncio.create_task(self._ack_loop(), name="mirror-acks")
        try:
            if self._cfg.commands_enabled:
                await client.subscribe([(t, QOS_ACCOUNT) for t in self.topics.commands])
            self._settle_spool()
            async for message in client.messages:
                self._command(message)
        except asyncio.CancelledError:
            self._stopping = True
            acker.cancel()
            await self._goodbye(client)
            raise
        finally:
            acker.cancel()

    def _disconnected(self) -> None:
        if self._paho is None:
            return
        self._paho = None
        self._settle_spool()  # keep what was acknowledged out of the resend
        for item in self._spool:
            if item.info is None:
                break
            item.info = None
        self._sent = 0

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Publish what is queued, wait for the spool's acknowledgements, set status offline;
        all within `flush_timeout_s`, then let the client disconnect (no last will)."""
        if self._pump_task is not None:
            self._pump_task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cfg.flush_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                # What the pump took and held first (it came before what is still queued).
                held, self._held = self._held, []
                if held:
                    self._publish(held)
                    self._settle_spool()
                while batch := self._queue.take(BATCH):
                    self._publish(batch)
                    self._settle_spool()
                    await self._drained()
                self._publish_snapshots()
                while self._spool and client._client.is_connected():
                    # real time: paho's acknowledgements arrive on its socket, whatever the
                    # engine's clock; the flush's budget is the loop's time too.
                    await asyncio.sleep(ACK_POLL_S)
                    self._settle_spool()
                offline = self._publish_retained(
                    self.topics.status, self._status("offline", "stopped")
                )
                # paho sets the flag in its read callback: there is no event to wait on.
                while (  # noqa: ASYNC110
                    offline is not None
                    and not offline.is_published()
                    and client._client.is_connected()
                ):
                    # real time: the broker's answer comes on paho's socket (as above).
                    await asyncio.sleep(ACK_POLL_S)
        except TimeoutError:
            log.warning("mirror_flush_timeout", spooled=len(self._spool))
        # The disconnect that follows waits for the broker at most what is left.
        client.timeout = max(0.1, deadline - loop.time())

    # --- publishing --------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Take batches from the queue and publish them, for the mirror's whole life."""
        queue = self._queue
        while True:
            batch = self._held = await queue.get(BATCH)
            if len(batch) < BATCH:
                # A quiet feed would cost one wake-up, encode and socket write per event, each
                # a turn of the loop the order path waits behind: linger a moment and take
                # what came meanwhile in the same write.
                # real time: it paces writes to a real socket; a simulated clock, which
                # moves only when told, would hold events that are due to go out.
                await asyncio.sleep(LINGER_S)
                await queue.yield_to_orders()
                batch += queue.take(BATCH - len(batch))
            self._held = []
            try:
                self._publish(batch)
                self._settle_spool()
                if self._snap_wanted or self._clock.monotonic() >= self._snap_due:
                    self._publish_snapshots()
            except Exception:
                # A bug must not end the mirror silently, nor flood the log.
                self.errors += 1
                if self.errors == 1 or self.errors % 1000 == 0:
                    log.exception("mirror_publish_failed", errors=self.errors)
            await self._drained()

    def _publish(self, batch: list[Event]) -> None:
        conn = self._paho
        lanes = self._lanes
        market = bytearray()
        count = 0
        for ev in batch:
            route = ROUTES[type(ev)]
            if type(ev) is SessionChanged:
                self._session(route, ev)
                continue
            if route.qos == QOS_MARKET:
                if conn is None:
                    self.dropped_offline += 1
                    continue
                # Market data, most of what passes here: the topic's packet header and seq
                # come from its lane, found by the event's topic attributes; the packet goes
                # straight into the batch's buffer.
                by_args = lanes[route.name]
                args = route.args(ev)
                lane = by_args.get(args)
                if lane is None:
                    lane = by_args[args] = self._lane(self.topics.of(route, ev))
                lane.seq += 1
                try:
                    payload = route.encode(ev, lane.seq)
                except (TypeError, ValueError):
                    self._encode_failed(ev)
                    continue
                market += fixed_header(len(lane.header) + len(payload))
                market += lane.header
                market += payload
                count += 1
            else:
                self._snap_wanted = True
                topic = self.topics.of(route, ev)
                try:
                    payload = encode_event(route, ev, self._next_seq(topic))
                except (TypeError, ValueError):
                    self._encode_failed(ev)
                    continue
                if isinstance(ev, OrderUpdate) and ev.state in TERMINAL:
                    self._order_ended(topic)
                self._spool_append(_Spooled(topic, payload))
        if count and conn is not None:
            self._send_market(conn, market, count)

    def _session(self, route: Route, ev: SessionChanged) -> None:
        """A venue's session notice, retained at `session/<venue>` (QoS 1): a subscriber that
        comes later hears where each venue stands. Kept and sent again on every connection
        (a broker restarted without persistence forgets retained messages)."""
        topic = self.topics.of(route, ev)
        try:
            payload = encode_event(route, ev, self._next_seq(topic))
        except (TypeError, ValueError):
            self._encode_failed(ev)
            return
        self._sessions[topic] = payload
        self._publish_retained(topic, payload)
        # And all venues in one retained message at `session`: what a subscriber that wants
        # "the market's session" reads without knowing which venues there are.
        venues = {
            t.rsplit("/", 1)[-1]: orjson.loads(p)
            for t, p in self._sessions.items()
            if t != self.topics.session
        }
        combined = orjson.dumps(
            {"seq": self._next_seq(self.topics.session), "venues": dict(sorted(venues.items()))}
        )
        self._sessions[self.topics.session] = combined
        self._publish_retained(self.topics.session, combined)

    def _lane(self, topic: str) -> _Lane:
        # One per topic, not per route: quotes and books share md/quote/<symbol>, and its seq.
        lane = self._topic_lanes.get(topic)
        if lane is None:
            lane = self._topic_lanes[topic] = _Lane(topic_header(topic))
        return lane

    def _send_market(self, conn: paho.Client, packets: bytearray, count: int) -> None:
        if conn.socket() is None:
            self.dropped_offline += count  # lost under our feet; _serve hears it too
            return
        if _RAW_QUEUE:
            conn._packet_queue(_PUBLISH, packets, 0, 0, paho.MQTTMessageInfo(0))
        else:
            for topic, payload in parse_publish_packets(bytes(packets)):
                conn.publish(topic, payload, QOS_MARKET)
        self.published_market += count

    def _encode_failed(self, ev: Event) -> None:
        self.encode_errors += 1
        log.exception("mirror_encode_failed", event_type=type(ev).__name__)

    def _spool_append(self, item: _Spooled) -> None:
        spool = self._spool
        if len(spool) >= self._cfg.spool_size:
            # Oldest first, as the queue drops market data: subscribers see the gap in the
            # topic's seq, and the journal keeps every event.
            spool.popleft()
            if self._sent:
                self._sent -= 1
            self.spool_dropped += 1
            if self.spool_dropped == 1 or self.spool_dropped % 1000 == 0:
                log.warning(
                    "mirror_spool_full", spool_size=self._cfg.spool_size, dropped=self.spool_dropped
                )
        spool.append(item)
        self._spool_filled.set()

    def _settle_spool(self) -> None:
        """Forget what the broker acknowledged (in order), then send the spool's next
        messages up to WINDOW in flight."""
        spool = self._spool
        while self._sent and spool[0].info is not None and spool[0].info.is_published():
            spool.popleft()
            self._sent -= 1
            self.published_account += 1
        conn = self._paho
        if conn is None:
            return
        while self._sent < len(spool) and self._sent < WINDOW:
            item = spool[self._sent]
            info = conn.publish(item.topic, item.payload, QOS_ACCOUNT)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return  # lost; everything unacknowledged goes again on the next connection
            item.info = info
            self._sent += 1

    async def _ack_loop(self) -> None:
        while True:
            await self._spool_filled.wait()
            while self._spool:
                # real time: polling paho's acknowledgement flags, set from its socket.
                await asyncio.sleep(ACK_POLL_S)
                self._settle_spool()
            self._spool_filled.clear()

    async def _drained(self) -> None:
        """Yield to the loop, and hold the next batch back while the socket has not taken the
        last one: paho's buffer stays at one batch, the queue absorbs the rest by its
        policy."""
        await asyncio.sleep(0)
        pause = 0.0
        conn = self._paho
        while conn is not None and conn is self._paho and conn.want_write():
            # real time: waiting for the socket to take paho's buffer.
            await asyncio.sleep(pause)
            pause = min(DRAIN_POLL_MAX_S, pause * 2 or 0.001)

    def _order_ended(self, topic: str) -> None:
        ended = self._ended_topics
        ended.pop(topic, None)  # a late update (a fill after a cancel) makes it the newest
        ended[topic] = None
        if len(ended) > self.ended_topics_kept:
            oldest = next(iter(ended))
            del ended[oldest]
            self._seq.pop(oldest, None)

    def _next_seq(self, topic: str) -> int:
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        return seq

    def _publish_retained(self, topic: str, payload: bytes) -> paho.MQTTMessageInfo | None:
        conn = self._paho
        if conn is None:
            return None
        info = conn.publish(topic, payload, QOS_ACCOUNT, retain=True)
        return info if info.rc == paho.MQTT_ERR_SUCCESS else None

    def _status(
        self, state: str, reason: str, seq: int | None = None, *, next_connection: bool = False
    ) -> bytes:
        return encode_status(
            state,
            reason,
            seq if seq is not None else self._next_seq(self.topics.status),
            self._clock.time_ns(),
            started_ns=self._started_ns,
            connection=self.connections + next_connection,
        )

    def _publish_snapshots(self) -> None:
        """Publish `positions` and `risk_state` (retained) where they changed."""
        self._snap_wanted = False
        self._snap_due = self._clock.monotonic() + self._cfg.snapshot_s
        if self._snapshots is None or self._paho is None:
            return
        try:
            data = self._snapshots()
            for name in SNAPSHOTS:
                part = data.get(name)
                if part is None:
                    continue
                body = orjson.dumps(part, option=orjson.OPT_SORT_KEYS)
                if self._snap_last.get(name) == body:
                    continue
                topic = getattr(self.topics, name)
                ts = self._clock.time_ns()
                payload = encode_snapshot(name, part, self._next_seq(topic), ts)
                if self._publish_retained(topic, payload) is not None:
                    self._snap_last[name] = body
                    self.snapshots_published += 1
        except Exception:
            self.snapshot_errors += 1
            log.exception("mirror_snapshot_failed")

    # --- commands ----------------------------------------------------------------------------

    def _command(self, message: aiomqtt.Message) -> None:
        name = self.topics.commands.get(message.topic.value)
        if name is None:
            return
        payload = message.payload
        raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b"\xff"
        try:
            args = parse_command(raw, retained=message.retain)
        except CommandRejected as e:
            self.commands_rejected += 1
            log.warning("mirror_command_rejected", command=name, code=e.code, size=len(raw))
            return
        self.commands_accepted += 1
        log.warning("mirror_command", command=name, reason=args["reason"])
        if self._on_command is None:
            return
        try:
            self._on_command(name, args)
        except Exception:
            log.exception("mirror_command_failed", command=name)


def engine_snapshots(trader: Trader) -> SnapshotSource:
    """The `snapshots` of a running engine: its positions and its risk state, as README.md
    "MQTT mirror" documents them."""

    def read() -> Mapping[str, Any]:
        risk = trader.risk
        risk.roll_day()  # past midnight: the new day's PnL, not yesterday's
        return {
            "positions": trader.portfolio.snapshot(),
            "risk_state": {
                "state": risk.state.value,
                "reasons": {k.value: v for k, v in risk.halts.items()},
                "reconciling": risk.reconciling,
                "feed_live": risk.feed_live,
                "counters": risk.counters(),
            },
        }

    return read


# --- MQTT 3.1.1 PUBLISH packets (sans I/O) ----------------------------------------------------


def topic_header(topic: str) -> bytes:
    """A topic as a PUBLISH packet carries it: two bytes of length, then UTF-8."""
    raw = topic.encode()
    return len(raw).to_bytes(2, "big") + raw


def publish_packet(topic_header: bytes, payload: bytes) -> bytes:
    """One QoS 0 PUBLISH packet (MQTT 3.1.1 section 3.3): the fixed header, the topic, the
    payload."""
    return fixed_header(len(topic_header) + len(payload)) + topic_header + payload


def fixed_header(n: int) -> bytes:
    """A QoS 0 PUBLISH packet's fixed header for `n` bytes after it: the packet type, then
    the remaining length (1 to 4 bytes, 7 bits each, low first)."""
    if n < 0x80:
        return bytes((_PUBLISH, n))
    if n < 0x4000:
        return bytes((_PUBLISH, 0x80 | (n & 0x7F), n >> 7))
    return bytes((_PUBLISH, *remaining_length(n)))


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer; at most 268,435,455 (four bytes)."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"remaining length out of range: {n}")
    out = bytearray()
    while True:
        digit, n = n & 0x7F, n >> 7
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def parse_publish_packets(data: bytes) -> list[tuple[str, bytes]]:
    """The (topic, payload) of each QoS 0 PUBLISH packet in `data`; the inverse of
    `publish_packet`, for the fallback path and for tests."""
    out = []
    i = 0
    while i < len(data):
        if data[i] != _PUBLISH:
            raise ValueError(f"not a QoS 0 PUBLISH at offset {i}")
        n, shift, i = 0, 0, i + 1
        while True:
            byte = data[i]
            i += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        end = i + n
        tlen = int.from_bytes(data[i : i + 2], "big")
        out.append((data[i + 2 : i + 2 + tlen].decode(), data[i + 2 + tlen : end]))
        i = end
    return out
