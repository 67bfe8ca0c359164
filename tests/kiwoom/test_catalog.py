"""The generated API catalogue (engine.kiwoom.catalog)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.kiwoom import catalog
from engine.kiwoom.errors import ValidationError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "kiwoom" / "kiwoom_api_catalog.json"


def test_every_official_rest_api_is_present() -> None:
    specs = catalog.all_specs()
    rest = [s for s in specs.values() if s.is_rest and s.api_id != "ka10009"]
    assert len(rest) == 306
    assert sum(1 for s in rest if s.is_oauth) == 2
    assert sum(1 for s in rest if s.category.startswith("국내주식")) == 183
    assert sum(1 for s in rest if s.category.startswith("미국주식")) == 121
    assert sum(1 for s in specs.values() if not s.is_rest) == 8


@pytest.mark.skipif(not SHARED.exists(), reason="shared catalogue not mounted")
def test_catalog_matches_the_shared_source() -> None:
    src = json.loads(SHARED.read_text("utf-8"))["apis"]
    specs = catalog.all_specs()
    assert set(specs) == set(src)
    for api_id, raw in src.items():
        s = specs[api_id]
        assert s.path == raw["path"]
        assert s.list_field == raw.get("list_field")
        assert s.required_fields == tuple(
            f["name"] for f in raw["request"] if f["required"] is True
        )


def test_spec_fields() -> None:
    s = catalog.get("ka10081")
    assert s.path == "/api/dostk/chart"
    assert s.method == "POST"
    assert s.list_field == "stk_dt_pole_chart_qry"
    assert "dt" in s.list_item_fields
    assert s.required_fields == ("stk_cd", "base_dt", "upd_stkpc_tp")
    assert not s.is_order
    assert "단위" in s.response_desc["cur_prc"]


def test_order_flags() -> None:
    orders = {s.api_id for s in catalog.all_specs().values() if s.is_order}
    for api_id in [
        "kt10000",
        "kt10001",
        "kt10002",
        "kt10003",
        "kt10006",
        "kt10007",
        "kt10008",
        "kt10009",
        "kt50000",
        "kt50001",
        "kt50002",
        "kt50003",
        "ust20000",
        "ust20001",
        "ust20002",
        "ust20003",
    ]:
        assert api_id in orders
        assert catalog.is_order(api_id)
    for api_id in ["ka10001", "kt00018", "ka10075", "ust31490", "au10001"]:
        assert not catalog.is_order(api_id)


def test_account_and_order_are_uncacheable() -> None:
    assert catalog.get("kt00018").is_account_or_order
    assert catalog.get("kt10000").is_account_or_order
    assert catalog.get("kt10006").is_account_or_order
    assert catalog.get("ust20000").is_account_or_order
    assert not catalog.get("ka10001").is_account_or_order


def test_unknown_api_id_is_named() -> None:
    with pytest.raises(ValidationError, match="ka99999"):
        catalog.get("ka99999")
    with pytest.raises(ValidationError, match="ka99999"):
        catalog.validate_request("ka99999", {})


def test_missing_required_field_is_named() -> None:
    with pytest.raises(ValidationError, match="base_dt"):
        catalog.validate_request("ka10081", {"stk_cd": "005930", "upd_stkpc_tp": "1"})
    with pytest.raises(ValidationError, match="stk_cd"):
        catalog.validate_request("ka10001", {"stk_cd": ""})
    assert catalog.validate_request("ka10001", {"stk_cd": "005930"}).api_id == "ka10001"
    # optional fields may be omitted; null-required (older docs) counts as optional
    catalog.validate_request("ka10075", {"all_stk_tp": "0", "trde_tp": "0", "stex_tp": "0"})
    catalog.validate_request("ka10009", {})


def test_websocket_ids_are_refused_for_rest() -> None:
    with pytest.raises(ValidationError, match="WebSocket"):
        catalog.validate_request("ka10171", {"trnm": "CNSRLST"})


def test_search() -> None:
    ids = {s.api_id for s in catalog.search("ka1008")}
    assert {"ka10080", "ka10081"} <= ids
    assert {s.api_id for s in catalog.search("일봉")} >= {"ka10081"}
    assert all(s.path == "/api/us/ordr" for s in catalog.search("/API/US/ORDR"))
    assert len(catalog.search("")) == len(catalog.all_specs())
    assert catalog.search("no-such-thing-xyz") == []
