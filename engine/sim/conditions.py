"""The simulator's condition search (조건검색): the login's conditions, their members, and the
CNSRLST / CNSRREQ / CNSRCLR answers and 02 pushes as Kiwoom shapes them.

Membership is a pure function of the generated market (`members`); what each connection has
asked for (CNSRLST done, its realtime searches and the members it was last told) lives in a
`ConnConditions` per connection, so one connection's searches never leak into another's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from engine.config import SimConditionConfig

PUSH_TYPE: Final = "02"
PUSH_NAME: Final = "조건검색"
NOT_LISTED_MSG: Final = "조건검색 목록조회(CNSRLST)를 먼저 요청해야 합니다"
UNKNOWN_SEQ_MSG: Final = "조건검색식이 존재하지 않습니다"
LIMIT_MSG: Final = "실시간 조건검색 요청 한도를 초과했습니다"
BAD_REQUEST_MSG: Final = "조건검색 요청 형식 오류"


def padded(seq: str) -> str:
    """`seq` as Kiwoom may send it back: padded with spaces ("2  ")."""
    return f"{seq:<3}"


@dataclass
class ConnConditions:
    """One connection's condition-search state."""

    listed: bool = False
    realtime: dict[str, list[str]] = field(default_factory=dict)
    """seq -> the members this connection was last told, in order."""

    def tell(self, seq: str, code: str, entered: bool) -> None:
        """The connection was pushed a hit of its realtime search `seq` (a replayed one)."""
        told = self.realtime.get(seq)
        if told is None:
            return
        if entered and code not in told:
            told.append(code)
        elif not entered and code in told:
            told.remove(code)


def hit_of(entry: dict[str, Any]) -> tuple[str, str, bool] | None:
    """(seq without its padding, symbol, entered) of a 02 entry; None when it is not one."""
    values = entry.get("values")
    if not isinstance(values, dict):
        return None
    seq, change = values.get("841"), values.get("843")
    code = values.get("9001", entry.get("item"))
    if not (isinstance(seq, str) and isinstance(code, str) and change in ("I", "D")):
        return None
    return seq.strip(), code.strip().removeprefix("A"), change == "I"


class SimConditions:
    """Conditions over the simulated symbols. `price_of(code)` and `base_of(code)` read the
    generated market; `manual` holds the members of "manual" conditions (tests, control)."""

    def __init__(
        self,
        conditions: Sequence[SimConditionConfig],
        symbols: Sequence[str],
        price_of: Callable[[str], int],
        base_of: Callable[[str], int],
        name_of: Callable[[str], str],
        *,
        page_size: int = 100,
        max_realtime: int = 10,
    ) -> None:
        self.conditions = {c.seq: c for c in conditions}
        self.symbols = list(symbols)
        self.price_of = price_of
        self.base_of = base_of
        self.name_of = name_of
        self.page_size = page_size
        self.max_realtime = max_realtime
        self.manual: dict[str, list[str]] = {}

    def set_members(self, seq: str, symbols: Sequence[str]) -> None:
        """The members of the "manual" condition `seq` from now on."""
        if seq not in self.conditions:
            raise KeyError(f"no condition with seq {seq!r}")
        self.manual[seq] = list(symbols)

    def replayed(self, seq: str, code: str, entered: bool) -> None:
        """A replayed 02 hit moves a "manual" condition's members, so a search started later
        (or again, after a reconnect) answers what the recording says they now are."""
        c = self.conditions.get(seq)
        if c is None or c.rule != "manual":
            return
        now = self.manual.setdefault(seq, [])
        if entered and code not in now:
            now.append(code)
        elif not entered and code in now:
            now.remove(code)

    def members(self, seq: str) -> list[str]:
        c = self.conditions[seq]
        if c.rule == "manual":
            return list(self.manual.get(seq, ()))
        if c.rule == "all":
            return list(self.symbols)
        out = []
        for code in self.symbols:
            base = self.base_of(code)
            price = self.price_of(code)
            # Integer cross-multiplication: no float rounding at the threshold.
            if (c.rule == "up" and price * 10_000 >= base * (10_000 + round(c.pct * 100))) or (
                c.rule == "down" and price * 10_000 <= base * (10_000 - round(c.pct * 100))
            ):
                out.append(code)
        return out

    # --- answers -------------------------------------------------------------------------

    def on_request(self, conn: ConnConditions, frame: dict[str, Any]) -> dict[str, Any]:
        """The answer to a CNSRLST / CNSRREQ / CNSRCLR frame."""
        trnm = frame.get("trnm")
        if trnm == "CNSRLST":
            conn.listed = True
            return {
                "trnm": "CNSRLST",
                "return_code": 0,
                "return_msg": "",
                "data": [[c.seq, c.name] for c in self.conditions.values()],
            }
        seq = frame.get("seq")
        if not isinstance(seq, str) or not seq.strip():
            return _fail(str(trnm), "", BAD_REQUEST_MSG)
        seq = seq.strip()
        if trnm == "CNSRCLR":
            conn.realtime.pop(seq, None)
            return {"trnm": "CNSRCLR", "seq": seq, "return_code": 0, "return_msg": ""}
        if not conn.listed:
            return _fail("CNSRREQ", seq, NOT_LISTED_MSG)
        if seq not in self.conditions:
            return _fail("CNSRREQ", seq, UNKNOWN_SEQ_MSG)
        search_type = frame.get("search_type")
        if search_type == "1":
            if seq not in conn.realtime and len(conn.realtime) >= self.max_realtime:
                return _fail("CNSRREQ", seq, LIMIT_MSG)
            members = self.members(seq)
            conn.realtime[seq] = members
            return {
                "trnm": "CNSRREQ",
                "seq": padded(seq),
                "return_code": 0,
                "return_msg": "",
                "data": [{"jmcode": "A" + code} for code in members],
            }
        if search_type != "0":
            return _fail("CNSRREQ", seq, BAD_REQUEST_MSG)
        return self._page(seq, frame)

    def _page(self, seq: str, frame: dict[str, Any]) -> dict[str, Any]:
        members = self.members(seq)
        key = frame.get("next_key") if frame.get("cont_yn") == "Y" else ""
        start = int(key) if isinstance(key, str) and key.isdigit() else 0
        rows = members[start : start + self.page_size]
        end = start + len(rows)
        more = end < len(members)
        return {
            "trnm": "CNSRREQ",
            "seq": padded(seq),
            "cont_yn": "Y" if more else "N",
            "next_key": str(end) if more else "",
            "return_code": 0,
            "return_msg": "",
            "data": [self._row(code) for code in rows],
        }

    def _row(self, code: str) -> dict[str, str]:
        price = self.price_of(code)
        base = self.base_of(code)
        change = price - base
        rate = change * 10_000 // base if base else 0
        return {
            "9001": "A" + code,
            "302": self.name_of(code),
            "10": f"{price:09d}",
            "25": "2" if change > 0 else "5" if change < 0 else "3",
            "11": f"{change:09d}" if change >= 0 else f"-{-change:08d}",
            "12": f"{rate:09d}" if rate >= 0 else f"-{-rate:08d}",
        }

    # --- pushes --------------------------------------------------------------------------

    def changes(self, conn: ConnConditions, hms: str) -> list[dict[str, Any]]:
        """The 02 entries that bring `conn` up to date with every one of its realtime
        searches (its record of the members moves with them)."""
        out: list[dict[str, Any]] = []
        for seq, told in conn.realtime.items():
            now = self.members(seq)
            if now == told:
                continue
            before = set(told)
            after = set(now)
            out.extend(_push(seq, code, "I", hms) for code in now if code not in before)
            out.extend(_push(seq, code, "D", hms) for code in told if code not in after)
            conn.realtime[seq] = now
        return out


def _push(seq: str, code: str, change: str, hms: str) -> dict[str, Any]:
    return {
        "type": PUSH_TYPE,
        "name": PUSH_NAME,
        "item": code,
        "values": {"841": seq, "9001": code, "843": change, "20": hms, "907": "2"},
    }


def _fail(trnm: str, seq: str, msg: str) -> dict[str, Any]:
    out: dict[str, Any] = {"trnm": trnm, "return_code": 1, "return_msg": msg}
    if seq:
        out["seq"] = seq
    return out
