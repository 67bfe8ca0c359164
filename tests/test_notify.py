"""sd_notify over a real unix datagram socket, as systemd's end of NOTIFY_SOCKET sees it."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from engine.notify import Notifier


def test_messages_reach_an_abstract_socket_one_datagram_each() -> None:
    name = f"kiwoom-notify-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.enabled
        assert n.ready("trading active\nREADY=0")  # a newline cannot smuggle a field in
        assert n.watchdog()
        assert n.stopping("bye")
        n.close()
        got = [server.recv(4096).decode() for _ in range(3)]
    assert got == [
        "READY=1\nSTATUS=trading active READY=0",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=bye",
    ]


def test_a_path_socket_works_and_a_missing_one_is_counted_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.status("starting")
        assert server.recv(4096) == b"STATUS=starting"
    path.unlink()
    assert not n.watchdog()
    assert not n.watchdog()
    assert n.failures == 2
    n.close()


def test_without_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready("x")
    assert n.watchdog_interval_s is None
    assert n.failures == 0


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15.0
    mine = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}).watchdog_interval_s == 1.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval_s is None
