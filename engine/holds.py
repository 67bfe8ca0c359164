"""Strategies held disabled across restarts: the watchdog puts one here when its handler hung
the daemon and could not be broken, so that a restart (systemd's Restart=on-failure) does not
run into the same hang; `kiwoom-engine enable NAME` lets it run again.

One small JSON file in `daemon.state_dir` (not in the journal: the built-in simulator's runs
start their journal afresh, and the CLI must be able to change it while no daemon runs). It is
replaced atomically (written aside, fsynced, renamed), so a crash leaves the old or the new.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

FILE_NAME = "held_strategies.json"


class Holds:
    """The held strategies of one state directory: name -> {"reason": str}."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / FILE_NAME

    def load(self) -> dict[str, dict[str, Any]]:
        """The held strategies; {} when there is no file. Raises OSError or ValueError for a
        file that cannot be read or is not what this module writes."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"{self.path}: not JSON ({e})") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ValueError(f"{self.path}: not a table of held strategies")
        return data

    def hold(self, name: str, reason: str) -> None:
        """Hold `name` disabled. May block on the disk; raises OSError."""
        held = self.load()
        held[name] = {"reason": reason}
        self._write(held)

    def release(self, name: str) -> bool:
        """Let `name` run again at the next start. False when it was not held."""
        held = self.load()
        if held.pop(name, None) is None:
            return False
        self._write(held)
        return True

    def _write(self, held: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(held, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
