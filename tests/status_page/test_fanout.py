"""The status page's fan-out: every browser gets the newest snapshots, a browser that does not
read holds at most `depth` of them, and one that reads nothing for `max_skips` snapshots is
dropped, also over a real socket that stopped draining, while the others go on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from engine.status_page.fanout import Fanout, Subscriber, stream
from tests.support import until


async def joined(fanout: Fanout) -> tuple[Subscriber, asyncio.Task[None]]:
    """A subscriber whose task idles (as a stream handler blocked on its socket)."""
    ready: asyncio.Future[Subscriber] = asyncio.get_running_loop().create_future()

    async def handler() -> None:
        sub = fanout.join()
        assert sub is not None
        ready.set_result(sub)
        await asyncio.Event().wait()

    task = asyncio.create_task(handler())
    return await ready, task


async def test_a_reading_browser_gets_every_snapshot_in_order() -> None:
    fanout = Fanout(depth=2, max_skips=3)
    sub, task = await joined(fanout)
    got = []
    for i in range(10):
        fanout.publish(b"%d" % i)
        got.append(await sub.next())
    assert got == [b"%d" % i for i in range(10)]
    assert (sub.skipped, fanout.stats.dropped, fanout.clients) == (0, 0, 1)
    task.cancel()


async def test_a_browser_that_does_not_read_holds_the_newest_depth_snapshots_then_is_dropped() -> (
    None
):
    fanout = Fanout(depth=2, max_skips=5)
    slow, slow_task = await joined(fanout)
    reader, reader_task = await joined(fanout)
    got = []
    for i in range(6):
        fanout.publish(b"%d" % i)
        got.append(await reader.next())
        assert len(slow.queue) <= 2  # bounded: never more than depth
    # 0 and 1 filled its queue; 2, 3, 4 and 5 each pushed the oldest out: four skipped.
    assert list(slow.queue) == [b"4", b"5"]
    assert (slow.skipped, slow.skip_run, slow.dropped) == (4, 4, False)
    fanout.publish(b"6")  # the fifth in a row that finds it full: dropped
    got.append(await reader.next())
    assert (slow.dropped, slow.why) == (True, "slow")
    assert await slow.next() is None
    await asyncio.sleep(0)
    assert slow_task.cancelled()  # the task serving it (stuck on its socket) is cancelled
    assert fanout.stats.dropped == 1
    assert fanout.stats.skipped == 5
    assert fanout.clients == 1
    # The reader saw everything, before and after.
    fanout.publish(b"7")
    got.append(await reader.next())
    assert got == [b"%d" % i for i in range(8)]
    reader_task.cancel()


async def test_a_browser_that_reads_again_is_not_dropped() -> None:
    fanout = Fanout(depth=1, max_skips=3)
    sub, task = await joined(fanout)
    for round_ in range(5):
        fanout.publish(b"a")
        fanout.publish(b"b")  # one skipped
        fanout.publish(b"c")  # two in a row
        assert await sub.next() == b"c"
        assert not sub.dropped, round_
    assert sub.skipped == 10
    task.cancel()


async def test_browsers_past_max_clients_are_refused_and_a_newcomer_gets_the_last_snapshot() -> (
    None
):
    fanout = Fanout(max_clients=2)
    fanout.publish(b"old")  # nobody watching: not kept for later
    first, t1 = await joined(fanout)
    fanout.publish(b"now")
    second, t2 = await joined(fanout)
    assert await second.next() == b"now"
    assert fanout.join() is None
    assert fanout.stats.refused == 1
    assert await first.next() == b"now"
    t1.cancel()
    t2.cancel()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Fanout, int]]:
    fanout = Fanout(depth=2, max_skips=4)

    async def events(request: web.Request) -> web.StreamResponse:
        return await stream(request, fanout)

    app = web.Application()
    app.router.add_get("/events", events)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fanout, port
    finally:
        fanout.close()
        await runner.cleanup()


async def test_over_http_a_stuck_socket_is_dropped_and_a_live_browser_reads_on(
    server: tuple[Fanout, int],
) -> None:
    fanout, port = server
    # A browser whose socket stopped draining: it sends the request and never reads. Its
    # receive buffer is small, so the server's writes back up within a few snapshots.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(stuck, ("127.0.0.1", port))
    await loop.sock_sendall(stuck, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/events") as live,
    ):
        assert live.headers["Content-Type"] == "text/event-stream"
        assert (await live.content.readline()).startswith(b"retry: ")
        await live.content.readline()
        await until(lambda: fanout.clients == 2)
        payload = b"x" * 200_000  # far past what the stuck socket's buffers hold
        for i in range(40):
            fanout.publish(b"%d " % i + payload)
            line = await live.content.readuntil(b"\n\n")
            assert line.startswith(b"data: %d " % i)
            if fanout.stats.dropped:
                break
        assert fanout.stats.dropped == 1, fanout.stats
        assert fanout.clients == 1  # the live one stays
        fanout.publish(b"after")
        assert await live.content.readuntil(b"\n\n") == b"data: after\n\n"
    # The server closed the stuck socket (aborted): reading it ends, as soon as the bytes
    # already delivered are drained.
    async with asyncio.timeout(5):
        while await loop.sock_recv(stuck, 1 << 20):
            pass
    stuck.close()
