"""The Kiwoom WebSocket session protocol without I/O.

Builds LOGIN/REG/REMOVE and condition-search (CNSRLST/CNSRREQ/CNSRCLR) frames, runs the login
handshake as a small state machine over decoded frames, and keeps the books a new connection
restores from: the registrations, who wants them (`Interests`), and the realtime condition
searches with their members (`ConditionBook`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Final

import orjson
import structlog

from engine.events import ConditionHit, Event
from engine.kiwoom.codec import FrameKind, FrameResult
from engine.kiwoom.errors import AuthError, BrokerError
from engine.kiwoom.fids import ITEMLESS_TYPES
from engine.universe.rules import resolve_condition as resolve_condition

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

    Account types (00, 04) and the session notices (0s) are kept under item "", as Kiwoom
    wants account types registered (0s likewise: an assumption, see fids.ITEMLESS_TYPES).
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
        account = [t for t in tset if t in ITEMLESS_TYPES]
        market = [t for t in tset if t not in ITEMLESS_TYPES]
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
        if tset & ITEMLESS_TYPES:
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


# --- condition search (조건검색) ---------------------------------------------------------------

STEX_KRX: Final = "K"
"""`stex_tp` of CNSRREQ: K = KRX, the only value the docs give."""
MAX_SEARCH_PAGES: Final = 1000
"""A one-shot search that pages this often is a server loop, not a result."""


class ConditionError(BrokerError):
    """A condition-search request was refused (by Kiwoom, or by the realtime limit)."""


def cnsr_list_frame() -> str:
    return _dumps({"trnm": "CNSRLST"})


def cnsr_search_frame(seq: str, *, realtime: bool, next_key: str = "") -> str:
    """CNSRREQ: search_type 1 (members now, then 02 pushes) or 0 (one shot, paged by
    cont_yn/next_key; `next_key` "" asks for the first page)."""
    if realtime:
        return _dumps({"trnm": "CNSRREQ", "seq": seq, "search_type": "1", "stex_tp": STEX_KRX})
    return _dumps(
        {
            "trnm": "CNSRREQ",
            "seq": seq,
            "search_type": "0",
            "stex_tp": STEX_KRX,
            "cont_yn": "Y" if next_key else "N",
            "next_key": next_key,
        }
    )


def cnsr_clear_frame(seq: str) -> str:
    return _dumps({"trnm": "CNSRCLR", "seq": seq})


def answer_seq(msg: dict[str, Any]) -> str:
    """The `seq` of a CNSR answer without the spaces Kiwoom may pad it with ("2  ")."""
    seq = msg.get("seq")
    return seq.strip() if isinstance(seq, str) else ("" if seq is None else str(seq).strip())


def parse_condition_list(msg: dict[str, Any]) -> list[tuple[str, str]]:
    """CNSRLST's rows -> [(seq, name)], seq stripped. Rows that are not a [seq, name] pair are
    skipped and logged."""
    out: list[tuple[str, str]] = []
    data = msg.get("data")
    for row in data if isinstance(data, list) else ():
        if (
            isinstance(row, list | tuple)
            and len(row) >= 2
            and isinstance(row[0], str)
            and isinstance(row[1], str)
            and row[0].strip()
        ):
            out.append((row[0].strip(), row[1]))
        else:
            log.warning("cnsr_list_row_bad", row=str(row)[:100])
    return out


def _row_symbol(row: Any) -> str | None:
    if not isinstance(row, dict):
        return None
    code = row.get("9001", row.get("jmcode"))  # search_type 0 rows / search_type 1 rows
    if not isinstance(code, str):
        return None
    code = code.strip()
    # "A005930": the instrument prefix of condition-search data (facts, number formatting).
    if len(code) == 7 and code[0].isalpha() and code[1:].isdigit():
        code = code[1:]
    return code or None


def parse_search_page(msg: dict[str, Any]) -> tuple[list[str], str | None]:
    """A CNSRREQ answer -> (symbols in order, the next page's key or None when it is the last).
    Rows without a symbol are skipped and logged."""
    symbols: list[str] = []
    data = msg.get("data")
    for row in data if isinstance(data, list) else ():
        sym = _row_symbol(row)
        if sym is None:
            log.warning("cnsr_search_row_bad", row=str(row)[:100])
        else:
            symbols.append(sym)
    more = msg.get("cont_yn") == "Y"
    key = msg.get("next_key")
    return symbols, (key if more and isinstance(key, str) and key else None)


class ConditionBook:
    """The conditions of the login and the members of every realtime search (sans-I/O).

    The feed records what the server says here; after a reconnect `restored` compares the
    members a repeated search returns with those known before the drop, so the difference is
    published and a strategy never misses a leave.
    """

    def __init__(self, max_realtime: int = 10) -> None:
        self.max_realtime = max_realtime
        self.names: dict[str, str] = {}
        """seq -> name, from the latest CNSRLST."""
        self._members: dict[str, dict[str, None]] = {}  # realtime seq -> members, in order
        # The name each realtime search started under: a list that no longer has it (deleted
        # in the HTS while the connection was down) must not leave its last hits unnamed.
        self._search_names: dict[str, str] = {}
        self.duplicates = 0
        """Pushes that changed nothing (an entry for a member, a leave for a non-member)."""

    @property
    def active(self) -> bool:
        """True while a realtime search runs (cheap: asked once per REAL frame)."""
        return bool(self._members)

    @property
    def realtime(self) -> list[str]:
        """The seqs of the realtime searches, in the order they were started."""
        return list(self._members)

    def members(self, seq: str) -> list[str]:
        return list(self._members.get(seq, ()))

    def set_list(self, rows: list[tuple[str, str]]) -> None:
        self.names = dict(rows)

    def name_of(self, seq: str) -> str:
        return self.names.get(seq) or self._search_names.get(seq, "")

    def check_room(self, seq: str) -> None:
        """Raise ConditionError unless a realtime search of `seq` may start."""
        if seq in self._members or len(self._members) < self.max_realtime:
            return
        raise ConditionError(
            "CNSRREQ",
            -1,
            f"realtime condition limit reached: {len(self._members)} of "
            f"{self.max_realtime} in use (seq {', '.join(self._members)}); "
            "clear one first or raise kiwoom.max_realtime_conditions",
        )

    def started(self, seq: str, symbols: list[str]) -> list[ConditionHit]:
        """A realtime search of `seq` answered `symbols`: they become its members. Returns an
        `entered` hit for each symbol not a member before and a `left` hit for each member no
        longer listed (for a first search: every symbol entered)."""
        before = self._members.get(seq, {})
        now = dict.fromkeys(symbols)
        self._members[seq] = now
        name = self.name_of(seq)
        self._search_names[seq] = name
        hits = [ConditionHit(s, seq, name, True, 0) for s in now if s not in before]
        hits.extend(ConditionHit(s, seq, name, False, 0) for s in before if s not in now)
        return hits

    def cleared(self, seq: str) -> None:
        self._members.pop(seq, None)
        self._search_names.pop(seq, None)

    def lost(self, seq: str) -> list[ConditionHit]:
        """The realtime search of `seq` is gone (refused on restore): every member left."""
        name = self.name_of(seq)
        self._search_names.pop(seq, None)
        return [ConditionHit(s, seq, name, False, 0) for s in self._members.pop(seq, {})]

    def pushed(self, hit: ConditionHit) -> ConditionHit | None:
        """A 02 push: its name filled in and the members updated; None when it changes
        nothing (counted in `duplicates`) or its search is not ours (logged)."""
        members = self._members.get(hit.condition_seq)
        if members is None:
            log.warning("cnsr_push_unknown_seq", seq=hit.condition_seq, symbol=hit.symbol)
            return None
        if hit.entered == (hit.symbol in members):
            self.duplicates += 1
            return None
        if hit.entered:
            members[hit.symbol] = None
        else:
            del members[hit.symbol]
        return replace(hit, condition=self.name_of(hit.condition_seq))


# --- run-time subscriptions with owners ------------------------------------------------------


class Interests:
    """Who wants which realtime types of which symbol: owner -> symbol -> types (sans-I/O).

    A symbol is registered once for the union of its owners' types and its types are removed
    when the last owner that wanted them leaves. `change` returns what to add and remove."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, dict[str, frozenset[str]]] = {}

    def types_of(self, symbol: str) -> frozenset[str]:
        owners = self._by_symbol.get(symbol, {})
        return frozenset().union(*owners.values()) if owners else frozenset()

    def types_for(self, owner: str, symbol: str) -> frozenset[str]:
        return self._by_symbol.get(symbol, {}).get(owner, frozenset())

    def owners_of(self, symbol: str) -> list[str]:
        return list(self._by_symbol.get(symbol, {}))

    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    def change(
        self, owner: str, symbol: str, types: Iterable[str]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Set `owner`'s types for `symbol` (none: the owner leaves it). Returns (types to
        register, types to remove) for the symbol as a whole."""
        before = self.types_of(symbol)
        owners = self._by_symbol.setdefault(symbol, {})
        wanted = frozenset(types)
        if wanted:
            owners[owner] = wanted
        else:
            owners.pop(owner, None)
            if not owners:
                del self._by_symbol[symbol]
        after = self.types_of(symbol)
        return after - before, before - after
