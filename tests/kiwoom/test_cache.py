"""TTL response cache (engine.kiwoom.cache)."""

from __future__ import annotations

from engine.clock import ManualClock
from engine.kiwoom.cache import ResponseCache
from engine.kiwoom.protocol import RestResult


def test_ttl_and_bounds() -> None:
    clock = ManualClock()
    c = ResponseCache({"ka10001": 5.0, "ka10099": 0.0}, clock, max_entries=2)
    r = RestResult({"a": 1}, False, "")
    assert c.enabled("ka10001")
    assert not c.enabled("ka10099")  # a TTL of 0 disables it
    k = ("ka10001", b'{"stk_cd":"005930"}', None)
    assert c.get(k) is None
    c.put(k, r)
    assert c.get(k) is r
    clock.advance(5.0)
    assert c.get(k) is None
    c.put(("ka10099", b"{}", None), r)
    assert c.get(("ka10099", b"{}", None)) is None
    for i in range(3):
        c.put(("ka10001", str(i).encode(), None), r)
    assert c.get(("ka10001", b"0", None)) is None  # oldest evicted
    assert c.get(("ka10001", b"2", None)) is r
    assert c.hits == 2
