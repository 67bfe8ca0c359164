"""The history port on Kiwoom's chart APIs (engine.kiwoom.history) against the simulator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from engine.clock import KST, ManualClock
from engine.events import Bar
from engine.history import HistoryPort, HistoryUnavailable
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.history import KiwoomHistory
from engine.kiwoom.rest import KiwoomRest
from engine.sim.rest import SimReply, input_error

from .conftest import SimEnv

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2026, 1, 5, 9, 12, 30, tzinfo=KST)


def _row(hhmm: str, o: int, h: int, low: int, c: int, v: int) -> dict[str, str]:
    return {
        "cntr_tm": f"20260105{hhmm}00",
        "open_pric": str(o),
        "high_pric": str(h),
        "low_pric": str(low),
        "cur_prc": f"-{c}",  # Kiwoom signs prices by direction; a bar's price is its size
        "trde_qty": str(v),
    }


# Newest first, as Kiwoom lists them; 09:10 is still open at NOW (09:12:30) for 5m bars.
MINUTE_ROWS = [
    _row("0910", 70100, 70300, 70000, 70200, 9),
    _row("0905", 70000, 70100, 69900, 70100, 7),
    _row("0900", 69800, 70000, 69700, 70000, 5),
    _row("0855", 69900, 69900, 69800, 69800, 3),
]


def _serve(sim: SimEnv, api_id: str, rows: list[dict[str, str]], list_field: str) -> None:
    async def handler(body: dict[str, Any], next_key: str) -> SimReply:
        return SimReply({"stk_cd": body["stk_cd"], list_field: rows})

    sim.state.rest_handlers[api_id] = handler


async def test_closed_bars_oldest_first_and_the_open_one_left_out(sim: SimEnv) -> None:
    _serve(sim, "ka10080", MINUTE_ROWS, "stk_min_pole_chart_qry")
    async with KiwoomRest.from_config(sim.config()) as rest:
        port: HistoryPort = KiwoomHistory(KiwoomApi(rest), ManualClock(NOW))
        bars = await port.bars("005930", "5m", 2)
    assert bars == [
        Bar("005930", "5m", datetime(2026, 1, 5, 9, 0, tzinfo=KST), 69800, 70000, 69700, 70000, 5),
        Bar("005930", "5m", datetime(2026, 1, 5, 9, 5, tzinfo=KST), 70000, 70100, 69900, 70100, 7),
    ]


async def test_fewer_bars_than_asked_are_all_given(sim: SimEnv) -> None:
    _serve(sim, "ka10080", MINUTE_ROWS, "stk_min_pole_chart_qry")
    async with KiwoomRest.from_config(sim.config()) as rest:
        bars = await KiwoomHistory(KiwoomApi(rest), ManualClock(NOW)).bars("005930", "5m", 50)
    assert [b.start.strftime("%H%M") for b in bars] == ["0855", "0900", "0905"]


async def test_daily_bars_leave_today_out(sim: SimEnv) -> None:
    rows = [
        {"dt": d, "open_pric": "100", "high_pric": "120", "low_pric": "90", "cur_prc": "110"}
        | {"trde_qty": "1000", "trde_prica": "1"}
        for d in ("20260105", "20260102", "20251230")
    ]
    _serve(sim, "ka10081", rows, "stk_dt_pole_chart_qry")
    async with KiwoomRest.from_config(sim.config()) as rest:
        bars = await KiwoomHistory(KiwoomApi(rest), ManualClock(NOW)).bars("005930", "1d", 5)
    assert [b.start for b in bars] == [
        datetime(2025, 12, 30, tzinfo=KST),
        datetime(2026, 1, 2, tzinfo=KST),
    ]
    assert all(b.interval == "1d" for b in bars)


async def test_a_broker_refusal_or_an_interval_without_a_chart_is_history_unavailable(
    sim: SimEnv,
) -> None:
    async def refuse(body: dict[str, Any], next_key: str) -> SimReply:
        raise input_error(1511, "필수 입력값에 값이 존재하지 않습니다")

    sim.state.rest_handlers["ka10080"] = refuse
    async with KiwoomRest.from_config(sim.config()) as rest:
        port = KiwoomHistory(KiwoomApi(rest), ManualClock(NOW))
        with pytest.raises(HistoryUnavailable, match="ka10080"):
            await port.bars("005930", "1m", 10)
        with pytest.raises(HistoryUnavailable, match="interval '2h'"):
            await port.bars("005930", "2h", 10)
        assert await port.bars("005930", "1m", 0) == []
