"""The Kiwoom WebSocket session protocol without I/O.

Builds LOGIN/REG/REMOVE frames, runs the login handshake as a small state machine over decoded
frames, and keeps the book of registrations so a new connection can restore them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import orjson
import structlog

from engine.events import Event
from engine.kiwoom.codec import FrameKind, FrameResult
from engine.kiwoom.errors import AuthError, BrokerError
from engine.kiwoom.fids import ACCOUNT_TYPES

log = structlog.get_logger(__name__)

MAX_ITEMS_PER_GROUP: Final = 100
"""Kiwoom accepts at most 100 items per registration group (kiwoom-restful)."""
MAX_GROUP_NO: Final = 9999  # grp_no is a string of up to 4 characters
TOKEN_ERROR_CODES: Final = frozenset({8003, 8005})
TOKEN_ERROR_RETURN_CODES: Final = frozenset({805004})


class LoginError(AuthError):
    """The server refused LOGIN. `code` is the 4-digit code from the message (e.g. 8005)."""

    def __init__(self, return_code: int, return_msg: str) -> None:
        super().__init__("LOGIN", return_code, return_msg)

    @property
    def token_error(self) -> bool:
        """True when a fresh token may fix it (invalid or expired token)."""
        return self.code in TOKEN_ERROR_CODES or self.return_code in TOKEN_ERROR_RETURN_CODES


class RegistrationError(BrokerError):
    """A REG or REMOVE was answered with return_code != 0."""


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def login_frame(token: str) -> str:
    """The LOGIN text frame. `token` is the raw access token, without "Bearer"."""
    return _dumps({"trnm": "LOGIN", "token": token})


def reg_frame(grp_no: str, items: Sequence[str], types: Sequence[str], refresh: str = "1") -> str:
    """A REG text frame; refresh "1" keeps what the group already holds."""
    data = [{"item": list(items), "type": list(types)}]
    return _dumps({"trnm": "REG", "grp_no": grp_no, "refresh": refresh, "data": data})


def remove_frame(grp_no: str, items: Sequence[str], types: Sequence[str]) -> str:
    data = [{"item": list(items), "type": list(types)}]
    return _dumps({"trnm": "REMOVE", "grp_no": grp_no, "data": data})


# --- handshake -------------------------------------------------------------------------------


class HandshakeState(Enum):
    WAITING = "waiting"
    DONE = "done"


@dataclass(slots=True)
class Handshake:
    """Waits for the LOGIN ack. Feed it every decoded frame after sending `login_frame`.

    SYSTEM frames are recorded and skipped, REAL events arriving before the ack are buffered
    (`buffered`), PING is left to the caller (it must be echoed in every state).
    """

    state: HandshakeState = HandshakeState.WAITING
    buffered: list[Event] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    sor: bool | None = None

    def feed(self, result: FrameResult) -> bool:
        """Return True once logged in. Raises LoginError when the server refused LOGIN."""
        kind = result.kind
        if self.state is HandshakeState.DONE:
            return True
        if kind is FrameKind.LOGIN:
            if result.return_code == 0:
                self.state = HandshakeState.DONE
                msg = result.message or {}
                sor = msg.get("sor_yn")
                self.sor = sor == "Y" if isinstance(sor, str) else None
                return True
            code = result.return_code if result.return_code is not None else -1
            raise LoginError(code, result.return_msg or "LOGIN refused without a message")
        if kind is FrameKind.SYSTEM:
            msg = result.message or {}
            self.system.append(msg)
            log.info("ws_system_frame", code=msg.get("code"), message=msg.get("message"))
        elif kind is FrameKind.REAL:
            self.buffered.extend(result.events)
        return False


# --- registrations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegRequest:
    """One REG or REMOVE to send; `commit` it to the book once its ack says return_code 0."""

    trnm: str
    grp_no: str
    items: tuple[str, ...]
    types: tuple[str, ...]
    frame: str


class Subscriptions:
    """What is registered, by group: grp_no -> item -> types.

    Account types (00, 04) are kept under item "" as Kiwoom wants them registered.
    Not thread-safe; one per connection owner.
    """

    def __init__(self, max_items_per_group: int = MAX_ITEMS_PER_GROUP) -> None:
        self._max = max_items_per_group
        self._groups: dict[str, dict[str, set[str]]] = {}

    # queries

    def pairs(self) -> set[tuple[str, str]]:
        """Every registered (type, item)."""
        return {(t, item) for g in self._groups.values() for item, ts in g.items() for t in ts}

    def groups(self) -> dict[str, dict[str, frozenset[str]]]:
        return {
            gno: {item: frozenset(ts) for item, ts in g.items()} for gno, g in self._groups.items()
        }

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    # planning

    def plan_add(self, types: Iterable[str], items: Iterable[str]) -> list[RegRequest]:
        """The REG requests that register every (type, item) not registered yet.

        Items go to the group that already holds them, else to a group with room, else to a
        new group: no group ever holds more than `max_items_per_group` items.
        """
        tset = list(dict.fromkeys(types))
        account = [t for t in tset if t in ACCOUNT_TYPES]
        market = [t for t in tset if t not in ACCOUNT_TYPES]
        wanted: list[tuple[str, list[str]]] = []
        if account:
            wanted.append(("", account))
        if market:
            wanted.extend((item, market) for item in dict.fromkeys(items) if item != "")
        planned: dict[str, int] = defaultdict(int)  # items newly planned per group
        buckets: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
        for item, ts in wanted:
            have = self._types_of(item)
            need = tuple(t for t in ts if t not in have)
            if not need:
                continue
            gno = self._group_of(item)
            if gno is None:
                gno = self._group_with_room(planned)
                planned[gno] += 1
            buckets[(gno, need)].append(item)
        return [
            RegRequest("REG", gno, tuple(its), need, reg_frame(gno, its, need))
            for (gno, need), its in buckets.items()
        ]

    def plan_remove(self, types: Iterable[str], items: Iterable[str]) -> list[RegRequest]:
        """The REMOVE requests that drop every registered (type, item) of these."""
        tset = set(types)
        iset = set(items)
        if tset & ACCOUNT_TYPES:
            iset.add("")
        buckets: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
        for gno, g in self._groups.items():
            for item, ts in g.items():
                if item in iset:
                    drop = tuple(sorted(ts & tset))
                    if drop:
                        buckets[(gno, drop)].append(item)
        return [
            RegRequest("REMOVE", gno, tuple(its), drop, remove_frame(gno, its, drop))
            for (gno, drop), its in buckets.items()
        ]

    def restore(self) -> list[RegRequest]:
        """REG requests that rebuild every group on a fresh connection (nothing registered)."""
        out: list[RegRequest] = []
        for gno, g in self._groups.items():
            by_types: dict[tuple[str, ...], list[str]] = defaultdict(list)
            for item, ts in g.items():
                by_types[tuple(sorted(ts))].append(item)
            for ts_key, its in by_types.items():
                out.append(RegRequest("REG", gno, tuple(its), ts_key, reg_frame(gno, its, ts_key)))
        return out

    def commit(self, req: RegRequest) -> None:
        """Record an acknowledged request."""
        if req.trnm == "REG":
            g = self._groups.setdefault(req.grp_no, {})
            for item in req.items:
                g.setdefault(item, set()).update(req.types)
        else:
            g = self._groups.get(req.grp_no, {})
            for item in req.items:
                ts = g.get(item)
                if ts is not None:
                    ts.difference_update(req.types)
                    if not ts:
                        del g[item]
            if not g:
                self._groups.pop(req.grp_no, None)

    # helpers

    def _types_of(self, item: str) -> set[str]:
        out: set[str] = set()
        for g in self._groups.values():
            ts = g.get(item)
            if ts:
                out |= ts
        return out

    def _group_of(self, item: str) -> str | None:
        for gno, g in self._groups.items():
            if item in g:
                return gno
        return None

    def _group_with_room(self, planned: dict[str, int]) -> str:
        for gno, g in self._groups.items():
            if len(g) + planned.get(gno, 0) < self._max:
                return gno
        for gno, n in planned.items():
            if gno not in self._groups and n < self._max:
                return gno
        used = set(self._groups) | set(planned)
        for n in range(1, MAX_GROUP_NO + 1):
            if str(n) not in used:
                return str(n)
        raise OverflowError("no free registration group number")
