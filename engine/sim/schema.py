"""Schema-shaped answers for catalogue api-ids that have no hand-written simulator handler.

`schema_body()` answers any catalogue api-id (engine.kiwoom.catalog) with deterministic values
in Kiwoom's string formats, chosen from each field's documented format (response_desc) and,
when that says nothing, from the field's name. Also the wire formatters the handlers share.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from engine.kiwoom.catalog import ApiSpec, all_specs
from engine.sim.universe import Universe, is_valid_code
from engine.trading.krx import round_to_tick


def rest_catalog() -> Mapping[str, ApiSpec]:
    """The catalogue api-ids served over HTTP (OAuth, domestic and US REST)."""
    return {k: v for k, v in all_specs().items() if v.is_rest}


# --- Kiwoom string formats (shared by the handlers and the market generator) ----------------


def direction_price(price: int, ref: int) -> str:
    """A price with Kiwoom's direction sign against `ref` (the previous close): "+70000"."""
    if price > ref:
        return f"+{price}"
    if price < ref:
        return f"-{price}"
    return str(price)


def signed(value: int) -> str:
    """A truly signed number: "+600", "-600", "0"."""
    return f"+{value}" if value > 0 else str(value)


def padded(value: int, width: int = 15, *, sign: bool = True) -> str:
    """Left zero-padded to `width` characters, the sign inside the width when negative.

    ``padded(-196888) == "-00000000196888"``, ``padded(17598258) == "000000017598258"``; the
    account TRs use 15 (amounts) and 12 or 10 (prices, order quantities). With ``sign=False``
    the magnitude is written.
    """
    if value < 0 and sign:
        return "-" + str(-value).zfill(width - 1)
    return str(abs(value)).zfill(width)


def decimal(hundredths: int, places: int = 2, *, sign: bool = False) -> str:
    """An integer scaled by 10**places as a decimal string: (181, 2, sign) -> "+1.81"."""
    scale = 10**places
    mag = abs(hundredths)
    text = f"{mag // scale}.{mag % scale:0{places}d}" if places else str(mag)
    if hundredths < 0:
        return "-" + text
    return ("+" + text) if sign and hundredths > 0 else text


def percent(num: int, den: int, *, sign: bool = False) -> str:
    """num/den in percent with 2 decimals, truncated toward zero: (1, 8) -> "12.50".

    A negative ratio carries "-", a positive one "+" only with `sign`; den 0 gives "0.00".
    Integer arithmetic only.
    """
    if den == 0:
        return "0.00"
    mag = abs(num) * 10_000 // abs(den)
    return decimal(-mag if (num < 0) != (den < 0) else mag, 2, sign=sign)


def pre_sig(price: int, ref: int, limits: tuple[int, int] | None = None) -> str:
    """Kiwoom's 대비기호 of `price` against `ref`: 2 up, 3 unchanged, 5 down; with the day's
    (lower, upper) `limits`, 1 at the upper and 4 at the lower limit."""
    if limits is not None:
        if price >= limits[1]:
            return "1"
        if price <= limits[0]:
            return "4"
    return "2" if price > ref else "5" if price < ref else "3"


# --- schema-shaped answers --------------------------------------------------------------------

_US_TICKERS = (
    ("NVDA", "엔비디아"),
    ("AAPL", "애플"),
    ("TSLA", "테슬라"),
    ("MSFT", "마이크로소프트"),
)
_PLACES = {"첫째": 1, "둘째": 2, "셋째": 3, "넷째": 4, "다섯째": 5}
_FIXED = {
    "ord_stt": "접수",
    "trde_tp": "보통",
    "stex_tp_txt": "KRX",
    "tsk_tp": "주식",
    "stk_cls": "0",
    "crnc_code": "USD",
    "crd_tp": "00",
    "upd_stkpc_tp": "0",
    "mang_empno": "",
}
_NAMES = {
    "stex_nm": "KRX",
    "crnc_nm": "미국달러",
    "natn_nm": "미국",
    "inds_nm": "전기전자",
    "upName": "전기전자",
    "io_tp_nm": "+매수",
    "crd_tp_nm": "",
    "marketName": "거래소",
    "upSizeName": "대형주",
    "rmrk_nm": "",
    "mmcm_nm": "키움증권",
}
_ACCOUNT_FIELDS = frozenset({"acnt_no", "acctNo"})
_WIDTH = re.compile(r"(\d+)자리")
_CODES = re.compile(r"([0-9A-Za-z%]+)\s*:")
_DATE_NAMES = re.compile(r"(^|_)(dt|date|day)$|Day$")
_TIME_NAMES = re.compile(r"(^|_)tm$")
_PRICE_NAMES = re.compile(r"(pric|prc|_bid|hgst|lwst|_uv|prica?_)|^(fav|bps|eps)$")
_RATE_NAMES = re.compile(r"(_rt|rate|_wght)$|^(per|pbr|roe|ev)$")
_QTY_NAMES = re.compile(r"(qty|_req|q|_cnt|stk_num|vol)$")
_AMT_NAMES = re.compile(r"(amt|_amt\d*|entra|evlta|cmsn|tax|prica|_pl|_prft|_ls|mac)$")


@dataclass
class _Row:
    code: str
    name: str
    price: int
    ref: int
    index: int


def schema_body(
    api: ApiSpec,
    request: Mapping[str, Any],
    universe: Universe,
    today: date,
    rows: int | None = None,
    *,
    account_no: str = "5012345610",
) -> dict[str, Any]:
    """A deterministic body for `api`: same api-id, request body and day -> same answer.

    Top-level fields echo the request's value for a field of the same name; the list field
    (if any) holds `rows` rows (default 3 to 5, chosen by the seed). Account-number fields
    carry `account_no` (the simulator's one account). Pure; never raises for a catalogue entry.
    """
    seed_src = api.api_id + json.dumps(request, sort_keys=True, ensure_ascii=False, default=str)
    seed = int.from_bytes(hashlib.blake2b(seed_src.encode(), digest_size=8).digest(), "big")
    rng = random.Random(seed ^ universe.seed)
    us = api.path.startswith("/api/us/")
    top = _row_context(api, request, universe, rng, 0, us)
    body: dict[str, Any] = {}
    for name in api.response:
        if name == api.list_field:
            continue
        given = request.get(name)
        if isinstance(given, str) and given:
            body[name] = given
        else:
            body[name] = _value(name, api.response_desc.get(name, ""), rng, top, today, us)
    if api.list_field:
        n = rows if rows is not None else 3 + rng.randrange(3)
        items = []
        for i in range(n):
            ctx = _row_context(api, request, universe, rng, i, us)
            items.append(
                {
                    f: _value(f, api.response_desc.get(f, ""), rng, ctx, today, us)
                    for f in api.list_item_fields
                }
            )
        body[api.list_field] = items
    for row in (body, *(body[api.list_field] if api.list_field else ())):
        for name in _ACCOUNT_FIELDS.intersection(row):
            row[name] = account_no
    return body


def _row_context(
    api: ApiSpec,
    request: Mapping[str, Any],
    universe: Universe,
    rng: random.Random,
    index: int,
    us: bool,
) -> _Row:
    if us:
        code, name = _US_TICKERS[index % len(_US_TICKERS)]
        ref = 100_0000 + rng.randrange(400_0000)  # USD with 4 decimals, as an int
        return _Row(code, name, ref + rng.randrange(-ref // 50, ref // 50 + 1), ref, index)
    asked = str(request.get("stk_cd", ""))[:6]
    symbols = universe.symbols or ("005930",)
    code = asked if index == 0 and is_valid_code(asked) else symbols[index % len(symbols)]
    listing = universe.listing(code)
    ref = listing.prev_close
    move = ref * rng.randrange(-500, 501) // 10_000  # within +-5 %
    return _Row(code, listing.name, round_to_tick(ref + move, "down"), ref, index)


def _value(name: str, desc: str, rng: random.Random, row: _Row, today: date, us: bool) -> str:
    lname = name.lower()
    if name in _FIXED and not desc:
        return _FIXED[name]
    if desc.strip() in ("USD", "KRW"):
        return desc.strip()
    day = today - timedelta(days=row.index)
    hms = f"{9 + rng.randrange(6):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
    # Formats the documentation states outright.
    if "YYYYMMDDHHmmss" in desc:
        return day.strftime("%Y%m%d") + hms
    if "YYYYMMDD" in desc or "YYYMMDD" in desc:
        return day.strftime("%Y%m%d")
    if "HH:mm:ss" in desc:
        return f"{hms[:2]}:{hms[2:4]}:{hms[4:]}"
    if "HH:mm" in desc:
        return f"{hms[:2]}:{hms[2:4]}"
    if "HHmmss" in desc:
        return hms
    if "접두어" in desc and "종목코드" in desc:
        return "A" + row.code
    if "주문번호" in desc or lname in ("ord_no", "orig_ord_no"):
        return f"{rng.randrange(1, 10_000_000):07d}" if "원 주문이 없는" not in desc else "0000000"
    if "상한가" in desc and "하락" in desc:
        return pre_sig(row.price, row.ref)
    width = _WIDTH.search(desc)
    if "0-padding" in desc and width:
        is_signed = "부호" in desc
        value = _magnitude(lname, desc, rng, row)
        if is_signed and _can_be_negative(lname):
            value = -value if rng.random() < 0.4 else value
        return padded(value, int(width.group(1)), sign=is_signed)
    if "USD" in desc or (us and _PRICE_NAMES.search(lname)):
        places = 2 if "둘째" in desc else 4
        amount = row.price if places == 4 else row.price // 100
        text = decimal(amount, places)
        return (("+" if row.price >= row.ref else "-") + text) if "부호" in desc else text
    if "백분율" in desc or "%" in desc:
        p = next((v for k, v in _PLACES.items() if k in desc), 2)
        value = rng.randrange(-3000, 3001) * 10**p // 100
        return decimal(value, p, sign=True) if "부호" in desc else decimal(abs(value), p)
    if "소수점" in desc and "포맷" in desc:
        p = 3 if "셋째" in desc else 4 if "넷째" in desc else 2
        return decimal(rng.randrange(0, 100_000), p, sign="부호" in desc)
    if "100배" in desc or "소수점 제거" in desc:
        return str(rng.randrange(0, 10_000))
    if "원" in desc and "부호" in desc and _PRICE_NAMES.search(lname):
        return direction_price(row.price, row.ref)
    if "부호" in desc:
        return signed(_signed_small(rng, row))
    if desc.strip() in ("Y,N", "Y, N", "Y: 가능") or lname.endswith("_yn"):
        return "Y" if rng.random() < 0.5 else "N"
    if desc.startswith("KRX") or lname in ("dmst_stex_tp",):
        return "KRX"
    codes = _CODES.findall(desc)
    if len(codes) >= 2:
        return str(codes[0])
    # Name-based guesses for fields the documentation leaves undescribed.
    if lname in ("stk_cd", "code", "jmcode", "isu_cd") or lname.endswith("_stk_cd"):
        return row.code
    if lname in ("stk_nm", "name") or lname.endswith("stk_nm"):
        return row.name
    if lname == "stk_enm":
        return row.code
    if name in _NAMES:
        return _NAMES[name]
    if lname.endswith(("mmcm_nm", "ori", "_ori_1", "_ori_2", "_ori_3", "_ori_4", "_ori_5")):
        return "키움증권"
    if lname.endswith("_nm") or lname.endswith("name"):
        return row.name
    if lname == "rank":
        return str(row.index + 1)
    if name in _ACCOUNT_FIELDS:
        return ""  # schema_body writes the account number
    if lname.startswith("crnc") or lname == "crnc_code":
        return "USD"
    if _DATE_NAMES.search(name):
        return day.strftime("%Y%m%d")
    if _TIME_NAMES.search(lname):
        return hms
    if _RATE_NAMES.search(lname):
        return decimal(rng.randrange(-3000, 3001), 2, sign=True)
    if _PRICE_NAMES.search(lname):
        return str(row.price) if not us else decimal(row.price, 4)
    return str(_magnitude(lname, desc, rng, row))


def _magnitude(lname: str, desc: str, rng: random.Random, row: _Row) -> int:
    if _PRICE_NAMES.search(lname) or "pric" in lname:
        return row.price
    if "주" in desc or _QTY_NAMES.search(lname):
        return rng.randrange(1, 100_000)
    if "억" in desc or "백만" in desc or "천" in desc:
        return rng.randrange(1, 1_000_000)
    if "원" in desc or _AMT_NAMES.search(lname):
        return rng.randrange(1, 10_000) * 1_000
    return rng.randrange(0, 1_000)


def _can_be_negative(lname: str) -> bool:
    return any(k in lname for k in ("pl", "prft", "pre", "netprps", "evltv", "chg"))


def _signed_small(rng: random.Random, row: _Row) -> int:
    if row.price != row.ref:
        return row.price - row.ref
    return rng.randrange(-1_000, 1_001)
