"""Issue 15: the market session is retained per venue on a real Mosquitto (`session/<venue>`,
QoS 1) and for all venues at once (`session`): a subscriber that comes after the notice hears where each venue stands, and the
mirror sends it again on a new connection to a broker that forgot it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from engine.bus import EventBus
from engine.clock import SYSTEM_CLOCK
from engine.config import MqttConfig
from engine.events import Exchange, SessionChanged, SessionState
from engine.mirror import Mirror
from tests.mirror.conftest import Broker, subscribed
from tests.mirror.test_mirror import running
from tests.support import until

PREFIX = "kiwoom/session-test"


@contextlib.asynccontextmanager
async def mirrored(broker: Broker) -> AsyncIterator[tuple[EventBus, Mirror]]:
    bus = EventBus(SYSTEM_CLOCK)
    queue = bus.attach(Mirror.queue())
    cfg = MqttConfig(host=broker.host, port=broker.port, prefix=PREFIX, reconnect_min_s=0.05)
    mirror = Mirror(cfg, queue, SYSTEM_CLOCK, account="x")
    async with running(mirror):
        await until(lambda: mirror.connected, 10)
        yield bus, mirror


async def test_the_session_is_retained_per_venue_for_a_later_subscriber(broker: Broker) -> None:
    krx, nxt = f"{PREFIX}/session/KRX", f"{PREFIX}/session/NXT"
    async with mirrored(broker) as (bus, mirror), subscribed(broker, f"{PREFIX}/#") as early:
        bus.publish(SessionChanged(Exchange.KRX, SessionState.OPENING_AUCTION, 84000, 1200))
        bus.publish(SessionChanged(Exchange.NXT, SessionState.NXT_PRE, 80000, 0))
        bus.publish(SessionChanged(Exchange.KRX, SessionState.REGULAR, 90000, 0))
        # Once a subscriber heard the last of them, the broker holds them.
        await until(lambda: [b["state"] for b in early.on(krx)] == ["opening_auction", "regular"])
        await until(lambda: bool(early.on(nxt)))
        async with subscribed(broker, f"{PREFIX}/session/#") as late:
            await until(lambda: bool(late.on(krx)) and bool(late.on(nxt)), 10)
            heard = {h.topic: h for h in late.heard}
            assert heard[krx].retain
            assert heard[nxt].retain
            assert (heard[krx].body["state"], heard[krx].body["seq"]) == ("regular", 2)
            assert heard[krx].body["exchange"] == "KRX"
            assert heard[nxt].body["state"] == "nxt_pre"
            assert len(late.on(krx)) == 1  # only the last, retained
        # All venues in one retained message at `session`, for a subscriber that wants the
        # market's session without knowing which venues there are.
        async with subscribed(broker, f"{PREFIX}/session") as whole:
            await until(lambda: bool(whole.on(f"{PREFIX}/session")), 10)
            (one,) = [h for h in whole.heard if h.topic == f"{PREFIX}/session"]
            assert one.retain
            venues = one.body["venues"]
            assert sorted(venues) == ["KRX", "NXT"]
            assert (venues["KRX"]["state"], venues["NXT"]["state"]) == ("regular", "nxt_pre")

        # A broker restarted without persistence forgets retained messages: the mirror
        # sends the last of each venue again on its new connection.
        connections = mirror.connections
        broker.kill()
        await broker.start()
        await until(lambda: mirror.connections > connections, 10)
        async with subscribed(broker, f"{PREFIX}/session/#") as again:
            await until(lambda: bool(again.on(krx)) and bool(again.on(nxt)), 10)
            assert again.on(krx)[-1]["state"] == "regular"
        async with subscribed(broker, f"{PREFIX}/session") as whole:
            await until(lambda: bool(whole.on(f"{PREFIX}/session")), 10)
            assert whole.on(f"{PREFIX}/session")[-1]["venues"]["KRX"]["state"] == "regular"
