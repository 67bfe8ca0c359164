"""sd_notify: telling systemd what the daemon is doing, over the $NOTIFY_SOCKET datagram.

The protocol (sd_notify(3)) is newline-separated KEY=VALUE lines in one datagram to a unix
socket, so a dozen lines of socket code do it and nothing links libsystemd. Outside systemd
(no NOTIFY_SOCKET: a terminal, Type=simple, most tests) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 for the service manager.

    `send` never raises and never blocks: a datagram the manager cannot take is dropped, the
    first failure is logged and every one is counted in `failures` (systemd then sees no
    watchdog ping and restarts us, which is the right outcome for a manager we cannot reach).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace, written with a leading NUL on the wire.
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        self._sock: socket.socket | None = None
        self.watchdog_interval_s = _watchdog_interval_s(env)
        """How often to ping: half of WatchdogSec, None when no watchdog is asked of us."""
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def send(self, *lines: str) -> bool:
        """Send `lines` as one notification; True when the manager's socket took it."""
        if not self._addr:
            return False
        # STATUS= is one line: a newline would start a field systemd would obey.
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._addr)
        except OSError as e:
            self.failures += 1
            if self.failures == 1:
                log.warning("sd_notify_failed", error=type(e).__name__, detail=str(e))
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC (systemd's advice), when the watchdog is meant for this process
    (WATCHDOG_PID, if set, is ours)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000
