"""What the benchmarks share to run the simulator as a process of its own: a free loopback
port, and `kiwoom-engine sim` started on a config and waited for until it accepts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sim(config: Path, port: int) -> subprocess.Popen[bytes]:
    """`kiwoom-engine -c config sim` in its own process, returned once `port` accepts (or
    after 10 s, for the caller's first request to report why)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "-c", str(config), "sim"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc
