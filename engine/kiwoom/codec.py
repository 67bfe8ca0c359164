"""Kiwoom WebSocket frames -> typed results and engine events (sans-I/O, the hot path).

`decode_frame` never raises: bad JSON, missing keys, non-numeric values and odd shapes are
counted in `CodecStats`, logged (rate-limited) and skipped one entry at a time, so a bad entry
never costs the other entries of its frame.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Any, Final, TypeVar

import orjson
import structlog

from engine.events import (
    Balance,
    ConditionHit,
    Event,
    Exchange,
    OrderBook,
    OrderExecution,
    OrderKind,
    OrderStatus,
    Quote,
    RealtimeEvent,
    RealtimeGeneric,
    SessionChanged,
    SessionState,
    Side,
    StockInfo,
    Trade,
    ViEvent,
    ViKind,
)
from engine.kiwoom import catalog, numbers
from engine.kiwoom import fids as F

log = structlog.get_logger(__name__)


class FrameKind(StrEnum):
    LOGIN = "LOGIN"
    SYSTEM = "SYSTEM"
    PING = "PING"
    REG = "REG"
    REMOVE = "REMOVE"
    REAL = "REAL"
    CNSR = "CNSR"  # CNSRLST / CNSRREQ / CNSRCLR answers; `message` holds the frame
    UNKNOWN = "UNKNOWN"  # valid JSON object with a trnm we do not know
    INVALID = "INVALID"  # not JSON, not an object, or a REAL frame without a data list


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What one server frame meant.

    `events` only for REAL; `return_code`/`return_msg` for LOGIN/REG/REMOVE/CNSR acks (None
    when the frame had none or a non-numeric one); `message` is the parsed frame for every kind
    but REAL and INVALID; `error` says why a frame was INVALID.
    """

    kind: FrameKind
    trnm: str = ""
    events: list[Event] = field(default_factory=list)
    return_code: int | None = None
    return_msg: str = ""
    message: dict[str, Any] | None = None
    bad_entries: int = 0
    error: str | None = None
    stream: Iterator[Event] | None = None
    """A lazily decoded REAL frame's events (decode_frame(lazy=True)); None otherwise."""


@dataclass(slots=True)
class CodecStats:
    """Counters of one decoding stream; `reasons` counts bad frames/entries by cause."""

    frames: int = 0
    real_frames: int = 0
    entries: int = 0
    events: int = 0
    generic: int = 0
    bad_frames: int = 0
    bad_entries: int = 0
    reparsed_frames: int = 0
    """Frames read entry by entry that had to be parsed whole after all (see _iter_pieces)."""
    reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "real_frames": self.real_frames,
            "entries": self.entries,
            "events": self.events,
            "generic": self.generic,
            "bad_frames": self.bad_frames,
            "bad_entries": self.bad_entries,
            "reparsed_frames": self.reparsed_frames,
            "reasons": dict(self.reasons),
        }


class _BadEntry(Exception):
    """A REAL entry whose shape or values make no sense (internal)."""


# --- number and code helpers ----------------------------------------------------------------
#
# The rules for Kiwoom numbers live in engine/kiwoom/numbers.py (optional surrounding spaces,
# one optional sign, ASCII digits; "" is an unused field). These private twins enforce the same
# rules for the hot path: int() does the parse and rejects " ", "+", "1 2", and we refuse the
# two things int() would take but Kiwoom never sends ("1_000", non-ASCII digits such as "٣").
# They are never looser than numbers.py (tests/kiwoom/test_codec.py checks it with hypothesis);
# they are stricter on one point: a value of only spaces is an error here, not 0.


def _strict_int(s: str) -> int:
    """int() without underscores or non-ASCII digits. Raises ValueError (also on "")."""
    if s.isascii() and "_" not in s:
        return int(s)
    raise ValueError(f"not a Kiwoom number: {s!r}")


def _digits(s: str) -> int:
    """A required number, fast for the common plain digits ("091512"); else `_strict_int`."""
    if s.isdigit() and s.isascii():
        return int(s)
    return _strict_int(s)


def _price(s: str) -> int:
    """Direction-signed price ("+70000", "-69800", " 67300") -> 70000; "" -> 0."""
    return abs(_strict_int(s)) if s else 0


def _int0(s: str) -> int:
    """Truly signed number ("-00000000196888" -> -196888); "" -> 0."""
    return _strict_int(s) if s else 0


def _required_price(s: str) -> int:
    raise _BadEntry(f"no price in {s!r}")


def _rate(s: str) -> float:
    """A percentage ("+1.81"); "" -> 0.0. Not on the hot path: numbers.rate's rules as is."""
    if s and not s.strip():
        raise ValueError("blank rate")
    return numbers.rate(s)


def _text(v: Any) -> str:
    if type(v) is not str:
        raise _BadEntry("non-string value")
    return v.strip()


def _order_no(s: str) -> str | None:
    s = s.strip()
    if not s or s.strip("0") == "":
        return None
    return s


def _symbol(code: str) -> str:
    """Strip the instrument prefix Kiwoom puts on account data: "A005930" -> "005930"."""
    code = code.strip()
    if len(code) == 7 and code.isascii() and code[0].isalpha() and code[1:].isdigit():
        return code[1:]
    return code


class _PriceMemo(dict[str, int]):
    """Direction-signed price text -> int, memoised.

    int() of a short string costs about four dict lookups, and a symbol trades at a few
    hundred distinct price strings a day, so the hot decoders look prices up here. Bounded:
    cleared when it grows past `limit` (values are recomputed, never wrong).
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int = 200_000) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, key: str) -> int:
        value = self._convert(key)
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value

    @staticmethod
    def _convert(key: str) -> int:
        return _price(key)


class _SignedMemo(_PriceMemo):
    """Truly signed small numbers (FID 11 change, FID 15 signed qty), memoised."""

    __slots__ = ()

    @staticmethod
    def _convert(key: str) -> int:
        return _int0(key)


class _DigitsMemo(_PriceMemo):
    """Required plain numbers that repeat, such as the HHmmss time of a print, memoised."""

    __slots__ = ()

    @staticmethod
    def _convert(key: str) -> int:
        return _digits(key)


_PX: Final = _PriceMemo()
_SG: Final = _SignedMemo()
_DG: Final = _DigitsMemo()


_ITEM_CACHE: dict[str, tuple[str, Exchange]] = {}
_ITEM_CACHE_MAX: Final = 20_000


def split_item(item: str) -> tuple[str, Exchange]:
    """A WS item -> (plain code, exchange): "005930_NX" -> ("005930", NXT), "A005930" -> KRX."""
    hit = _ITEM_CACHE.get(item)
    if hit is not None:
        return hit
    if type(item) is not str:
        raise _BadEntry("item not a string")
    code, exchange = item, Exchange.KRX
    if item.endswith(F.ITEM_SUFFIX_NXT):
        code, exchange = item[:-3], Exchange.NXT
    elif item.endswith(F.ITEM_SUFFIX_SOR):
        code, exchange = item[:-3], Exchange.SOR
    result = (_symbol(code), exchange)
    if len(_ITEM_CACHE) >= _ITEM_CACHE_MAX:
        _ITEM_CACHE.clear()
    _ITEM_CACHE[item] = result
    return result


_STATUS: Final = dict(
    zip(
        F.ORDER_STATUS_CODES,
        (
            OrderStatus.ACCEPTED,
            OrderStatus.FILLED,
            OrderStatus.CONFIRMED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
        ),
        strict=True,
    )
)
_EXCHANGE: Final = {k: Exchange(v) for k, v in F.EXCHANGE_CODES.items()}
_SESSION: Final = {k: SessionState(v) for k, v in F.SESSION_CODES.items()}


def _order_kind(s: str) -> OrderKind:
    if "정정" in s:
        return OrderKind.AMEND
    if "취소" in s:
        return OrderKind.CANCEL
    return OrderKind.NEW


def _side(code: str, kind_text: str) -> Side:
    if code == F.SIDE_BUY:
        return Side.BUY
    if code == F.SIDE_SELL:
        return Side.SELL
    # 907 missing: fall back on the words in 905 ("+매수", "매도취소", ...)
    if "매수" in kind_text:
        return Side.BUY
    if "매도" in kind_text:
        return Side.SELL
    raise _BadEntry("no side")


def _fast_constructor(cls: type[_E]) -> Callable[..., _E]:
    """A positional constructor for a frozen slotted dataclass, 4x faster than its __init__.

    A frozen dataclass sets each field through object.__setattr__; on the hot path that costs
    more than the JSON parse. We build a mutable twin with the same slots in the same order
    (so the same memory layout), construct that, and retag the instance as `cls`; CPython
    allows `__class__` assignment only between classes of identical layout, and the result
    is an ordinary `cls` instance (eq, hash, pickle, copy and dataclasses.replace all go
    through `cls`). It skips `cls.__init__`, so it refuses classes whose __init__ does more
    than store its arguments, and it builds one probe instance here so a layout CPython would
    refuse fails at import instead of on every entry of the feed. Raises TypeError.
    """
    fs = fields(cls)  # type: ignore[arg-type]
    slots = getattr(cls, "__slots__", None)
    if not getattr(cls, "__dataclass_params__", None) or slots is None:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__") or any(not f.init for f in fs):
        raise TypeError(f"{cls.__name__}.__init__ does more than store its fields")
    twin = make_dataclass(
        f"_{cls.__name__}Builder",
        # Defaults carried over, so trailing fields the codec does not know (the bus's stamps)
        # start at their defaults.
        [
            (f.name, Any) if f.default is MISSING else (f.name, Any, field(default=f.default))
            for f in fs
        ],
        slots=True,
    )
    if tuple(getattr(twin, "__slots__", ())) != tuple(slots):
        raise TypeError(f"{cls.__name__}: slots differ from its fields")

    def build(*args: Any) -> _E:
        obj = twin(*args)
        obj.__class__ = cls
        return obj  # type: ignore[no-any-return]

    if type(build(*[None] * len(fs))) is not cls:
        raise TypeError(f"{cls.__name__}: retagging failed")
    return build


# --- per-type decoders: a precomputed itemgetter plan, then ints ----------------------------

_E = TypeVar("_E")
Values = dict[str, Any]
Decoder = Callable[[Values, str, int, int], Event]
"""(values, item, ts_recv, seq) -> event: the stamps are set at construction, so the bus
need not touch the frozen event again on the hot path."""

_new_trade: Final = _fast_constructor(Trade)
_new_quote: Final = _fast_constructor(Quote)
_new_book: Final = _fast_constructor(OrderBook)

_T = F.TRADE_FIDS
_TRADE_GET_FIDS: Final = (
    _T["time"],
    _T["price"],
    _T["qty"],
    _T["cum_volume"],
    _T["change"],
    _T["best_ask"],
    _T["best_bid"],
    _T["open"],
    _T["high"],
    _T["low"],
)

_TRADE_GET: Final = itemgetter(*_TRADE_GET_FIDS)
_TRADE_SESSION: Final = _T["session"]
_TRADE_OPTIONAL: Final = frozenset(
    (_T["best_ask"], _T["best_bid"], _T["open"], _T["high"], _T["low"], _T["change"])
)


def _trade(v: Values, item: str, ts: int, seq: int) -> Trade:
    try:
        t, p, q, cv, ch, a, b, o, h, lo = _TRADE_GET(v)
    except KeyError:
        # Tolerate missing optional FIDs (some feeds send a subset); the required ones still
        # raise KeyError -> bad entry.
        t, p, q, cv, ch, a, b, o, h, lo = (
            v.get(f, "") if f in _TRADE_OPTIONAL else v[f] for f in _TRADE_GET_FIDS
        )
    symbol, exchange = split_item(item)
    return _new_trade(
        symbol,
        exchange,
        _DG[t],
        _PX[p] or _required_price(p),
        _SG[q],
        int(cv) if cv.isdigit() and cv.isascii() else _int0(cv),
        _SG[ch],
        _PX[a],
        _PX[b],
        _PX[o],
        _PX[h],
        _PX[lo],
        _SESSION.get(v.get(_TRADE_SESSION)),  # type: ignore[arg-type]
        ts,
        seq,
    )


_Q_ASK: Final = F.QUOTE_FIDS["best_ask"]
_Q_BID: Final = F.QUOTE_FIDS["best_bid"]


def _quote(v: Values, item: str, ts: int, seq: int) -> Quote:
    symbol, exchange = split_item(item)
    return _new_quote(symbol, exchange, _PX[v[_Q_ASK]], _PX[v[_Q_BID]], ts, seq)


_BOOK_FIDS: Final = F.BOOK_ASK_PRICES + F.BOOK_ASK_QTYS + F.BOOK_BID_PRICES + F.BOOK_BID_QTYS
_BOOK_GET: Final = itemgetter(*_BOOK_FIDS)


def _book(v: Values, item: str, ts: int, seq: int) -> OrderBook:
    try:
        raw = _BOOK_GET(v)
    except KeyError:
        raw = tuple(v.get(f, "") for f in _BOOK_FIDS)
    # map over the memo's own __getitem__ (C, with __missing__ on a miss), not a comprehension.
    n = list(map(_PX.__getitem__, raw))
    symbol, exchange = split_item(item)
    return _new_book(
        symbol,
        exchange,
        _digits(v[F.BOOK_TIME]),
        tuple(zip(n[0:10], n[10:20], strict=True)),
        tuple(zip(n[20:30], n[30:40], strict=True)),
        _int0(v.get(F.BOOK_TOTAL_ASK, "")),
        _int0(v.get(F.BOOK_TOTAL_BID, "")),
        ts,
        seq,
    )


_O = F.ORDER_EXECUTION_FIDS


def _order(v: Values, item: str, ts: int, seq: int) -> OrderExecution:
    g = v.get
    status_text = _text(v[_O["status"]])
    status = _STATUS.get(status_text)
    if status is None:
        raise _BadEntry(f"unknown order status {status_text!r}")
    kind_text = _text(g(_O["kind"], ""))
    symbol = _symbol(_text(g(_O["symbol"], ""))) or split_item(item)[0]
    order_no = _order_no(_text(v[_O["order_no"]]))
    if order_no is None:
        raise _BadEntry("no order number")
    exchange_code = _text(g(_O["exchange"], ""))
    return OrderExecution(
        account=_text(g(_O["account"], "")),
        order_no=order_no,
        orig_order_no=_order_no(_text(g(_O["orig_order_no"], ""))),
        symbol=symbol,
        name=_text(g(_O["name"], "")),
        side=_side(_text(g(_O["side"], "")), kind_text),
        kind=_order_kind(kind_text),
        status=status,
        order_type=_text(g(_O["order_type"], "")),
        order_qty=_int0(g(_O["order_qty"], "")),
        order_price=_price(g(_O["order_price"], "")),
        unfilled_qty=_int0(g(_O["unfilled_qty"], "")),
        cum_fill_amount=_int0(g(_O["cum_fill_amount"], "")),
        fill_no=_order_no(_text(g(_O["fill_no"], ""))),
        fill_price=_price(g(_O["fill_price"], "")),
        fill_qty=_int0(g(_O["fill_qty"], "")),
        unit_fill_price=_price(g(_O["unit_fill_price"], "")),
        unit_fill_qty=_int0(g(_O["unit_fill_qty"], "")),
        fee=_int0(g(_O["fee"], "")),
        tax=_int0(g(_O["tax"], "")),
        reject_reason=_text(g(_O["reject_reason"], "")),
        exchange=_EXCHANGE.get(exchange_code),
        sor=_text(g(_O["sor"], "")) == "Y",
        time=_int0(g(_O["time"], "")),
        ts_recv=ts,
        seq=seq,
    )


_B = F.BALANCE_FIDS


def _balance(v: Values, item: str, ts: int, seq: int) -> Balance:
    g = v.get

    def n(key: str) -> int:
        return _int0(g(_B[key], ""))

    def p(key: str) -> int:
        return _price(g(_B[key], ""))

    def r(key: str) -> float:
        return _rate(g(_B[key], ""))

    def s(key: str) -> str:
        return _text(g(_B[key], ""))

    symbol = _symbol(s("symbol")) or split_item(item)[0]
    if not symbol:
        raise _BadEntry("no symbol")
    return Balance(
        account=s("account"),
        symbol=symbol,
        name=s("name"),
        qty=n("qty"),
        avg_price=p("avg_price"),
        total_cost=n("total_cost"),
        orderable_qty=n("orderable_qty"),
        today_net_buy_qty=n("today_net_buy_qty"),
        price=p("price"),
        best_ask=p("best_ask"),
        best_bid=p("best_bid"),
        base_price=p("base_price"),
        today_sell_pnl=n("today_sell_pnl"),
        today_realized_pnl=n("today_realized_pnl"),
        today_realized_pnl_rate=r("today_realized_pnl_rate"),
        today_credit_realized_pnl=n("today_credit_realized_pnl"),
        today_credit_realized_pnl_rate=r("today_credit_realized_pnl_rate"),
        realized_pnl_rate=r("realized_pnl_rate"),
        credit_amount=n("credit_amount"),
        credit_interest=n("credit_interest"),
        collateral_loan_qty=n("collateral_loan_qty"),
        credit_kind=s("credit_kind"),
        loan_date=s("loan_date"),
        maturity_date=s("maturity_date"),
        side_kind=s("side_kind"),
        ts_recv=ts,
        seq=seq,
    )


# --- market state: condition hits, VI, session, stock info (rare frames, not the hot path) --

_unknown_codes: set[tuple[str, str]] = set()


def _unknown_code(field: str, value: str) -> None:
    """Log a code value we have no meaning for, once per (field, value) per process."""
    if (field, value) not in _unknown_codes and len(_unknown_codes) < 1000:
        _unknown_codes.add((field, value))
        log.warning("realtime_unknown_code", field=field, value=value)


def _hhmmss(s: str) -> int:
    """An HHmmss time; "" -> 0. Raises ValueError for anything but 6 or fewer digits."""
    s = s.strip()
    if not s:
        return 0
    if len(s) > 6 or not (s.isdigit() and s.isascii()):
        raise ValueError(f"not an HHmmss time: {s!r}")
    return int(s)


def _hhmmss_seconds(s: str) -> int:
    t = _hhmmss(s)
    return t // 10000 * 3600 + t // 100 % 100 * 60 + t % 100


_C = F.CONDITION_FIDS


def _condition(v: Values, item: str, ts: int, seq: int) -> ConditionHit:
    """A 02 push. The name of the condition is not on the wire: the feed, which knows the
    list, fills it in."""
    change = _text(v[_C["change"]])
    if change == F.CONDITION_ENTERED:
        entered = True
    elif change == F.CONDITION_LEFT:
        entered = False
    else:
        raise _BadEntry(f"condition change {change!r} is neither I nor D")
    symbol = _symbol(_text(v.get(_C["symbol"]) or item))
    if not symbol:
        raise _BadEntry("condition hit without a symbol")
    cseq = _text(v[_C["condition_seq"]])
    if not cseq:
        raise _BadEntry("condition hit without a seq")
    return ConditionHit(symbol, cseq, "", entered, _hhmmss(_text(v.get(_C["time"], ""))), ts, seq)


_V = F.VI_FIDS
_VI_KIND: Final = {k: ViKind(v) for k, v in F.VI_KIND_CODES.items()}


def _vi(v: Values, item: str, ts: int, seq: int) -> ViEvent:
    code = _text(v.get(_V["symbol"]) or item)
    symbol, exchange = split_item(code)
    if not symbol:
        raise _BadEntry("VI notice without a symbol")
    release = _hhmmss(_text(v.get(_V["release_time"], "")))
    trigger = _text(v.get(_V["trigger"], ""))
    active = F.VI_TRIGGER_CODES.get(trigger)
    if active is None:
        _unknown_code("vi_trigger", trigger)
        active = release == 0
    kind_text = _text(v.get(_V["kind"], ""))
    kind = _VI_KIND.get(kind_text)
    if kind is None and kind_text:
        _unknown_code("vi_kind", kind_text)
    count = _text(v.get(_V["count"], ""))
    return ViEvent(
        symbol,
        exchange,
        active,
        kind,
        _price(_text(v.get(_V["trigger_price"], ""))),
        _price(_text(v.get(_V["static_ref"], ""))),
        _price(_text(v.get(_V["dynamic_ref"], ""))),
        _hhmmss(_text(v.get(_V["time"], ""))),
        release,
        _int0(count),
        ts,
        seq,
    )


_S = F.SESSION_FIDS
_SESSION_STATES: Final = {
    code: (Exchange(venue), SessionState(state))
    for code, (venue, state) in F.SESSION_STATES.items()
}


class _Skip(Exception):
    """An entry that is well formed but means nothing to the engine (not counted as bad)."""


def _session(v: Values, item: str, ts: int, seq: int) -> SessionChanged:
    code = _text(v[_S["code"]])
    hit = _SESSION_STATES.get(code)
    if hit is None:
        if code not in F.SESSION_IGNORED:
            _unknown_code("session", code)
            raise _BadEntry(f"unknown session code {code!r}")
        raise _Skip(code)
    exchange, state = hit
    return SessionChanged(
        exchange,
        state,
        _hhmmss(_text(v.get(_S["time"], ""))),
        _hhmmss_seconds(_text(v.get(_S["remaining"], ""))),
        ts,
        seq,
    )


_G = F.STOCK_INFO_FIDS


def _stock_info(v: Values, item: str, ts: int, seq: int) -> StockInfo:
    symbol, exchange = split_item(item)
    if not symbol:
        raise _BadEntry("stock info without an item")

    def text(key: str) -> str:
        return _text(v.get(_G[key], ""))

    return StockInfo(
        symbol,
        exchange,
        _price(text("upper_limit")),
        _price(text("lower_limit")),
        _price(text("base_price")),
        text("extension"),
        text("pre_extension"),
        text("post_extension"),
        text("info"),
        ts,
        seq,
    )


DECODERS: Final[dict[str, Decoder]] = {
    F.TRADE: _trade,
    F.QUOTE: _quote,
    F.ORDER_BOOK: _book,
    F.ORDER_EXECUTION: _order,
    F.BALANCE: _balance,
    F.CONDITION: _condition,
    F.VI: _vi,
    F.SESSION: _session,
    F.STOCK_INFO: _stock_info,
}

_FIELD_NAMES: Final[dict[str, dict[str, str]]] = {
    rtype: dict(catalog.realtime_fids(rtype)) for rtype in catalog.realtime_types()
}
"""Realtime type -> FID -> the catalogue's field name, for RealtimeEvent."""

_ENTRY_ERRORS: Final = (
    _BadEntry,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
)


def _merge_values(values: list[Any]) -> dict[str, Any]:
    """kiwoom-cli saw `values` as a list of dicts; accept {fid: v} and {"fid":, "value":}."""
    merged: dict[str, Any] = {}
    for part in values:
        if type(part) is not dict:
            raise _BadEntry("values list holds a non-object")
        if len(part) == 2 and "fid" in part and "value" in part:
            merged[str(part["fid"])] = part["value"]
        else:
            merged.update(part)
    return merged


def _coerce_values(values: Any) -> dict[str, Any]:
    if type(values) is list:
        return _merge_values(values)
    raise _BadEntry("values not an object")


def _generic(
    rtype: Any, entry: dict[str, Any], values: dict[str, Any], ts: int, seq: int
) -> RealtimeEvent | RealtimeGeneric:
    """A type the catalogue documents becomes a RealtimeEvent keyed by its field names (a FID
    the catalogue does not name keeps its number); any other type a RealtimeGeneric."""
    if type(rtype) is not str:
        raise _BadEntry("type not a string")
    name = entry.get("name", "")
    item = entry.get("item", "")
    name_s = name if type(name) is str else ""
    item_s = item if type(item) is str else ("" if item is None else str(item))
    names = _FIELD_NAMES.get(rtype)
    if names is None:
        return RealtimeGeneric(rtype, name_s, item_s, values, ts, seq)
    named = {names.get(k, k): v if type(v) is str else str(v) for k, v in values.items()}
    return RealtimeEvent(rtype, name_s, item_s, named, ts, seq)


def _bad(stats: CodecStats, reason: str, frame: bool, **kw: Any) -> None:
    if frame:
        stats.bad_frames += 1
        n = stats.bad_frames
    else:
        stats.bad_entries += 1
        n = stats.bad_entries
    stats.reasons[reason] += 1
    # Log the first few and then one in a thousand: a broken feed must not flood the logs.
    if n <= 10 or n % 1000 == 0:
        log.warning(
            "realtime_frame_bad" if frame else "realtime_entry_bad", reason=reason, n=n, **kw
        )


def _return_code(v: Any) -> int | None:
    if type(v) is int:
        return v
    if type(v) is str:
        try:
            return _strict_int(v)
        except ValueError:
            return None
    return None


def _real_data(msg: dict[str, Any], stats: CodecStats) -> list[Any] | None:
    """A REAL frame's entry list, counted; None (and a bad frame counted) without one."""
    data = msg.get("data")
    if type(data) is not list:
        _bad(stats, "real_without_data", True)
        return None
    stats.real_frames += 1
    stats.entries += len(data)
    return data


def _no_data() -> FrameResult:
    return FrameResult(FrameKind.INVALID, "REAL", error="REAL frame without a data list")


def _decode_entry(
    entry: Any, stats: CodecStats, ts: int, next_seq: Callable[[], int] | None
) -> Event | None:
    """One REAL entry's event; None (counted in `stats`) when it cannot be decoded."""
    # Hot path: shapes are checked by the operations themselves (a non-dict entry or an
    # unhashable type raises TypeError/AttributeError, counted below).
    try:
        values = entry["values"]
        if type(values) is not dict:
            values = _coerce_values(values)
        rtype = entry["type"]
        seq = next_seq() if next_seq is not None else 0
        decoder = DECODERS.get(rtype)
        if decoder is not None:
            ev = decoder(values, entry.get("item", ""), ts, seq)
        else:
            ev = _generic(rtype, entry, values, ts, seq)
            stats.generic += 1
    except _Skip:
        stats.reasons["skipped"] += 1
        return None
    except _ENTRY_ERRORS as exc:
        rt = entry.get("type") if type(entry) is dict else None
        _bad(
            stats,
            type(exc).__name__,
            False,
            type=rt if type(rt) is str else None,
            error=str(exc)[:200],
        )
        return None
    stats.events += 1
    return ev


def iter_real_events(
    data: list[Any], stats: CodecStats, ts: int, next_seq: Callable[[], int] | None
) -> Iterator[Event]:
    """The events of a REAL frame's entries, each decoded when asked for: the consumer can act
    on the first before the rest are decoded (an order on a trade need not wait for the books
    that came with it). A bad entry is counted in `stats` and skipped."""
    for entry in data:
        ev = _decode_entry(entry, stats, ts, next_seq)
        if ev is not None:
            yield ev


# --- a REAL frame parsed one entry at a time ------------------------------------------------
#
# orjson parses a whole frame before its first entry can be read: ~50 us for a 10 KB frame of
# eleven entries, ~250 us for the fifty of a busy second. Kiwoom (and the simulator) write the
# compact form `{"trnm":"REAL","data":[{"type":...},{"type":...}]}`, where the text `},{"type":`
# separates two entries. It can appear nowhere else at that depth, and not inside a string,
# where a quote is always escaped; inside a nested value it cuts a piece that is not whole
# JSON, which orjson refuses. So the pieces are parsed one by one; the first piece that does
# not parse hands the rest of the frame to a full parse (the pieces before it were whole
# entries, and are exactly its first entries), counted in `CodecStats.reparsed_frames`. Any
# other form is parsed whole. Each entry is cut out with one find and one slice as its turn
# comes: nothing is split or copied ahead of the entry being dispatched.

_REAL_HEAD: Final = '{"trnm":"REAL","data":['
_REAL_TAIL: Final = "}]}"
_ENTRY_HEAD: Final = '{"type":'
_ENTRY_SEP: Final = '},{"type":'


def _is_compact_real(raw: str) -> bool:
    return (
        raw.startswith(_REAL_HEAD)
        and raw.endswith(_REAL_TAIL)
        and raw.startswith(_ENTRY_HEAD, len(_REAL_HEAD))
    )


def _iter_pieces(
    raw: str, stats: CodecStats, ts: int, next_seq: Callable[[], int] | None
) -> Iterator[Event]:
    """The events of a compact REAL frame, each entry cut out (one slice, braces included)
    and parsed only when its turn comes."""
    stats.real_frames += 1
    loads = orjson.loads
    find = raw.find
    start = len(_REAL_HEAD)  # at the first entry's "{"
    stop = len(raw) - 2  # after the last entry's "}"
    index = 0
    while start < stop:
        cut = find(_ENTRY_SEP, start, stop)
        end = stop if cut < 0 else cut + 1
        stats.entries += 1
        try:
            entry = loads(raw[start:end])
        except orjson.JSONDecodeError:
            stats.entries -= 1  # counted again from the whole frame's list
            yield from _iter_rest_of(raw, index, stats, ts, next_seq)
            return
        ev = _decode_entry(entry, stats, ts, next_seq)
        if ev is not None:
            yield ev
        start = end + 1  # past the ","
        index += 1


def _iter_rest_of(
    raw: str, start: int, stats: CodecStats, ts: int, next_seq: Callable[[], int] | None
) -> Iterator[Event]:
    """The entries of `raw` from index `start` on, from a parse of the whole frame."""
    stats.reparsed_frames += 1
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _bad(stats, "bad_json", True, error=str(exc)[:200])
        return
    data = msg.get("data") if type(msg) is dict else None
    if type(data) is not list:
        _bad(stats, "real_without_data", True)
        return
    stats.entries += max(0, len(data) - start)
    yield from iter_real_events(data[start:], stats, ts, next_seq)


def _decode_real(
    msg: dict[str, Any], stats: CodecStats, ts: int, next_seq: Callable[[], int] | None
) -> FrameResult:
    data = _real_data(msg, stats)
    if data is None:
        return _no_data()
    bad_before = stats.bad_entries
    events = list(iter_real_events(data, stats, ts, next_seq))
    return FrameResult(FrameKind.REAL, "REAL", events, bad_entries=stats.bad_entries - bad_before)


def decode_frame(
    raw: bytes | str,
    stats: CodecStats | None = None,
    ts_recv: int = 0,
    next_seq: Callable[[], int] | None = None,
    *,
    lazy: bool = False,
) -> FrameResult:
    """Decode one server frame. Never raises; counts into `stats` when given.

    Non-REAL frames return their parsed object in `message`. A REAL frame's entries become
    events in order; an entry that cannot be decoded is skipped and counted. Each event is
    built stamped: `ts_recv` (the frame's receive time) and a `seq` from `next_seq` (the bus's
    sequence; 0 when None).

    `lazy`: a REAL frame's `events` stay empty and `stream` yields them, each parsed and
    decoded when asked for; `bad_entries` is then not known up front (see `stats`). A
    compact frame whose JSON breaks part-way yields the entries before the break, then counts
    a bad frame.
    """
    st = stats if stats is not None else CodecStats()
    st.frames += 1
    if lazy and type(raw) is str and _is_compact_real(raw):
        return FrameResult(FrameKind.REAL, "REAL", stream=_iter_pieces(raw, st, ts_recv, next_seq))
    try:
        msg = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        _bad(st, "bad_json", True, error=str(exc)[:200])
        return FrameResult(FrameKind.INVALID, error="not JSON")
    if type(msg) is not dict:
        _bad(st, "not_an_object", True)
        return FrameResult(FrameKind.INVALID, error="frame is not a JSON object")
    trnm = msg.get("trnm")
    if trnm == "REAL":
        if not lazy:
            return _decode_real(msg, st, ts_recv, next_seq)
        data = _real_data(msg, st)
        if data is None:
            return _no_data()
        return FrameResult(
            FrameKind.REAL, "REAL", stream=iter_real_events(data, st, ts_recv, next_seq)
        )
    if trnm == "PING":
        return FrameResult(FrameKind.PING, "PING", message=msg)
    if type(trnm) is not str:
        _bad(st, "no_trnm", True)
        return FrameResult(FrameKind.INVALID, error="frame without trnm")
    rmsg = msg.get("return_msg", "")
    code = _return_code(msg.get("return_code"))
    rmsg_s = rmsg if type(rmsg) is str else str(rmsg)
    if trnm in ("LOGIN", "REG", "REMOVE", "SYSTEM"):
        return FrameResult(FrameKind(trnm), trnm, return_code=code, return_msg=rmsg_s, message=msg)
    if trnm.startswith(("CNSR", "GCNSR")):
        return FrameResult(FrameKind.CNSR, trnm, return_code=code, return_msg=rmsg_s, message=msg)
    st.reasons["unknown_trnm"] += 1
    return FrameResult(FrameKind.UNKNOWN, trnm, return_code=code, return_msg=rmsg_s, message=msg)
