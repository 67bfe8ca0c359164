"""Generate engine/kiwoom/catalog.json from the shared Kiwoom API catalogue.

Usage: ``uv run python tools/gen_catalog.py [SOURCE] [DEST]``. The output is compact package
data read by engine/kiwoom/catalog.py (client) and engine/sim/schema.py (simulator).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# shared/ sits beside the checkout (as on CI: a fresh clone with shared/ next to it).
DEFAULT_SOURCE = ROOT.parent / "shared" / "kiwoom" / "kiwoom_api_catalog.json"
DEFAULT_DEST = ROOT / "engine" / "kiwoom" / "catalog.json"

# Order-placing TRs: never retried blindly (a duplicate is a real-money mistake).
# Domestic cash, credit and gold-spot orders, US orders, and the FX application ust31302
# (it moves money just like an order, so it gets the same no-retry treatment).
ORDER_IDS = frozenset(
    {f"kt1000{i}" for i in (0, 1, 2, 3, 6, 7, 8, 9)}
    | {f"kt5000{i}" for i in range(4)}
    | {"ust31302"}
)
# List fields that older doc revisions (and so possibly the live server) name differently;
# the client accepts either and hands callers the catalogue's name. Facts sheet, disagreement 2.
LIST_FIELD_ALIASES: dict[str, list[str]] = {"ka10082": ["stk_wk_pole_chart_qry"]}
ORDER_NAME_HINTS = ("매수", "매도", "정정", "취소")
# Code tables the engine decodes realtime values with (engine/kiwoom/fids.py reads them from
# catalog.json rather than retyping them).
CODE_TABLES = ("fid_215_장운영구분_0s", "fid_843_조건검색_삽입삭제", "fid_290_장구분")


def is_order(api_id: str, api: dict[str, Any]) -> bool:
    """True for TRs that place, amend or cancel an order (or otherwise move money)."""
    if api_id in ORDER_IDS:
        return True
    # US orders: ust2000x under 미국주식/주문 (ust31490 there is a quantity *query*).
    return api["category"] == "미국주식/주문" and any(h in api["name"] for h in ORDER_NAME_HINTS)


def convert(src: dict[str, Any]) -> dict[str, Any]:
    apis: dict[str, Any] = {}
    for api_id in sorted(src["apis"]):
        a = src["apis"][api_id]
        entry: dict[str, Any] = {
            "name": a["name"],
            "category": a["category"],
            "path": a["path"],
            "method": a["method"],
            "transport": a["transport"],
            "request": [
                {
                    "name": f["name"],
                    "required": f.get("required") is True,  # null (older docs) -> optional
                    "desc": f.get("desc") or "",
                }
                for f in a["request"]
            ],
            "response": list(a["response"]),
            "list_field": a.get("list_field"),
            "list_item_fields": list(a.get("list_item_fields") or []),
            "list_field_aliases": LIST_FIELD_ALIASES.get(api_id, []),
            "response_desc": dict(a.get("response_desc") or {}),
            "is_order": is_order(api_id, a),
        }
        if "ws_trnm" in a:
            entry["ws_trnm"] = a["ws_trnm"]
        if a.get("note"):
            entry["note"] = a["note"]
        apis[api_id] = entry
    realtime = {
        rtype: {"name": info["name"], "fids": dict(src["fids"][rtype])}
        for rtype, info in sorted(src["realtime_types"].items())
    }
    # The condition-search push (02) is not a REG type, so the realtime table lacks it; its
    # FIDs are those of the documented push example.
    push = src["ws_protocol"]["condition_search"]["realtime"]["push"]["data"][0]
    condition_push = {"type": push["type"], "name": push["name"], "fids": sorted(push["values"])}
    return {
        "format": 1,
        "source": "kiwoom_api_catalog.json (official 키움 REST API 문서.xlsx export)",
        "apis": apis,
        "realtime": realtime,
        "code_tables": {name: src["code_tables"][name] for name in CODE_TABLES},
        "condition_push": condition_push,
    }


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    dest = Path(argv[2]) if len(argv) > 2 else DEFAULT_DEST
    out = convert(json.loads(source.read_text(encoding="utf-8")))
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    dest.write_text(text + "\n", encoding="utf-8")
    rest = sum(1 for a in out["apis"].values() if a["transport"] == "REST")
    orders = sorted(k for k, a in out["apis"].items() if a["is_order"])
    print(f"wrote {dest}: {len(out['apis'])} api-ids ({rest} REST); orders: {', '.join(orders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
