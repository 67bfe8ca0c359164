"""The simulator's VI and condition rules at their thresholds (pure logic)."""

from __future__ import annotations

from engine.config import SimConditionConfig
from engine.sim.conditions import ConnConditions, SimConditions
from engine.sim.vi import ViMonitor


def test_static_vi_at_ten_percent_from_the_base_and_not_a_won_before() -> None:
    vi = ViMonitor(static_pct=10.0, dynamic_pct=30.0, window_s=10.0, auction_s=120.0)
    assert vi.on_trade("A", 10_999, 10_000, 0.0, "090000") is None
    entry = vi.on_trade("A", 11_000, 10_000, 1.0, "090001")
    assert entry is not None
    assert entry["values"]["9068"] == "1"
    assert entry["values"]["1225"] == "정적"
    assert vi.halted("A")
    assert vi.on_trade("A", 12_000, 10_000, 2.0, "090002") is None  # in the auction
    assert vi.due(120.9) == []
    assert vi.due(121.0) == ["A"]
    release = vi.release("A", 11_050, 121.0, "091001")
    assert release["values"]["9068"] == "2"
    assert release["values"]["1224"] == "091001"
    assert not vi.halted("A")
    # The static reference is now the auction's price: 10 % from 11,050 is 12,155.
    assert vi.on_trade("A", 12_154, 10_000, 122.0, "091002") is None


def test_dynamic_vi_against_the_price_a_window_ago() -> None:
    vi = ViMonitor(static_pct=30.0, dynamic_pct=3.0, window_s=10.0, auction_s=60.0)
    assert vi.on_trade("A", 10_000, 10_000, 0.0, "") is None
    assert vi.on_trade("A", 10_299, 10_000, 5.0, "") is None
    # A new window: the reference becomes 10,299; 3 % of it is 308.97.
    assert vi.on_trade("A", 10_299, 10_000, 10.0, "") is None
    assert vi.on_trade("A", 10_607, 10_000, 11.0, "") is None
    entry = vi.on_trade("A", 10_608, 10_000, 12.0, "")
    assert entry is not None
    assert entry["values"]["1225"] == "동적"


def test_up_and_down_conditions_at_their_threshold() -> None:
    prices = {"A": 10_100, "B": 10_099, "C": 9_900}
    conds = SimConditions(
        [SimConditionConfig("0", "up", "up", 1.0), SimConditionConfig("1", "down", "down", 1.0)],
        list(prices),
        prices.__getitem__,
        lambda _c: 10_000,
        lambda c: c,
        page_size=2,
    )
    assert conds.members("0") == ["A"]
    assert conds.members("1") == ["C"]
    conn = ConnConditions()
    conds.on_request(conn, {"trnm": "CNSRLST"})
    conds.on_request(conn, {"trnm": "CNSRREQ", "seq": "0", "search_type": "1", "stex_tp": "K"})
    prices["A"], prices["B"] = 10_099, 10_100
    pushes = conds.changes(conn, "090000")
    assert [(p["item"], p["values"]["843"]) for p in pushes] == [("B", "I"), ("A", "D")]
    assert conds.changes(conn, "090001") == []
