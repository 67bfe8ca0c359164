"""The daily report read from a journal written through the journal's own API, with numbers
worked by hand (never by the code under test): realised PnL against an earlier day's cost,
fees and tax, fills, orders by final state, rejections by reason, the intraday drawdown of
known equity snapshots; a Hangul strategy name drawn without a missing glyph; bad input."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from engine.clock import KST, ManualClock
from engine.config import PortfolioConfig, load
from engine.events import Fill, OrderState, OrderUpdate, RiskRejected, Side
from engine.journal import FILE_NAME, Journal
from engine.reports.command import report_day
from engine.trading.portfolio import EquityMark, Portfolio, StrategyMark

S = OrderState
DAY = date(2026, 3, 3)
NINE = datetime(2026, 3, 3, 9, 0, tzinfo=KST)
HANGUL = "모멘텀"
ROOT = Path(__file__).resolve().parents[2]


def ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000


def update(
    cid: str, strategy: str, state: OrderState, t: datetime, reason: str = ""
) -> OrderUpdate:
    return OrderUpdate(
        cid, strategy, "005930", Side.BUY, 1, 70_000, state, S.SUBMITTING, None, 0, 0,
        reason, ts_recv=ns(t),
    )  # fmt: skip


def fill(
    no: str, strategy: str, symbol: str, side: Side, qty: int, price: int, fee: int, tax: int,
    t: datetime,
) -> Fill:  # fmt: skip
    return Fill(None, strategy, f"o{no}", no, symbol, side, qty, price, fee, tax, ts_recv=ns(t))


def rejected(cid: str, strategy: str, reason: str, t: datetime) -> RiskRejected:
    return RiskRejected(cid, strategy, "005930", Side.BUY, 100, 70_000, reason, ts_recv=ns(t))


EQUITY = [10_000_000, 10_100_000, 10_050_000, 9_950_000, 10_200_000, 10_020_000]
"""The account's equity at 09:00, 09:01, ...: the largest fall is 10,200,000 -> 10,020,000."""
MOMENTUM_PNL = [0, 5_000, -3_000, 2_000, 1_000, 4_000]
"""momentum's realised + unrealised at the same times: its largest fall 5,000 -> -3,000."""


def write_journal(state: Path) -> None:
    clock = ManualClock(NINE)
    j = Journal(state, clock)
    j.open()
    before = NINE - timedelta(days=1)
    j.write(
        [
            update("c0", "momentum", S.FILLED, before),
            fill("1", "momentum", "005930", Side.BUY, 10, 70_000, 105, 0, before),
        ]
    )
    j.record_equity(EquityMark(9_000_000, 0, 0, 0, 0, {}), ns(before))  # not today's
    t = [NINE + timedelta(minutes=i) for i in range(6)]
    j.write(
        [
            update("c1", "momentum", S.FILLED, t[0]),
            update("c2", "momentum", S.FILLED, t[1]),
            update("c3", "momentum", S.CANCELED, t[1]),
            update("c4", "momentum", S.REJECTED, t[2], "MAX_ORDER_QTY"),
            rejected("c4", "momentum", "MAX_ORDER_QTY", t[2]),
            update("c5", "momentum", S.REJECTED, t[2], "broker: insufficient cash"),
            update("c6", HANGUL, S.FILLED, t[3]),
            update("c7", HANGUL, S.FILLED, t[3]),
            update("c8", HANGUL, S.REJECTED, t[4], "MAX_ORDER_QTY"),
            rejected("c8", HANGUL, "MAX_ORDER_QTY", t[4]),
            fill("2", "momentum", "005930", Side.SELL, 4, 71_000, 42, 511, t[0]),
            fill("3", "momentum", "005930", Side.BUY, 2, 70_500, 21, 0, t[1]),
            fill("4", HANGUL, "000660", Side.BUY, 1, 100_000, 15, 0, t[3]),
            fill("5", HANGUL, "000660", Side.SELL, 1, 99_000, 14, 178, t[3]),
        ]
    )
    for i, (equity, pnl) in enumerate(zip(EQUITY, MOMENTUM_PNL, strict=True)):
        marks = {"momentum": StrategyMark(pnl - 574 if i == 5 else 0, 574 if i == 5 else pnl, 0, 0)}
        marks[HANGUL] = StrategyMark(-1_207 if i >= 3 else 0, 0, 0, 0)
        unrealized = 12_345 if i == 5 else 0
        j.record_equity(
            EquityMark(8_000_000, equity - 8_000_000, 0, unrealized, 0, marks), ns(t[i])
        )
    j.close()


# Worked by hand. momentum: 10 bought the day before at 70,000 (cost 700,000). Sold 4 at
# 71,000: basis 700,000 x 4 // 10 = 280,000; 284,000 - 280,000 - (42 + 511) = 3,447. Bought
# 2 at 70,500: the fee, -21. 3,447 - 21 = 3,426. 모멘텀: bought 1 at 100,000 (-15), sold it
# at 99,000: 99,000 - 100,000 - (14 + 178) = -1,192; -15 - 1,192 = -1,207.
MOMENTUM_REALIZED = 3_426
HANGUL_REALIZED = -1_207


def test_a_day_reads_as_worked_by_hand_and_draws_no_box(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_journal(state)
    cfg = load(None, env={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" is a UserWarning
        files = report_day(cfg, DAY, out=tmp_path / "out", journal=state)
    rep = orjson.loads(files.json.read_bytes())
    assert rep["day"] == "2026-03-03"
    assert rep["snapshots"] == 6
    total = rep["total"]
    assert total["realized_pnl"] == MOMENTUM_REALIZED + HANGUL_REALIZED == 2_219
    assert total["unrealized_pnl"] == 12_345
    assert (total["fees"], total["tax"], total["fills"]) == (42 + 21 + 15 + 14, 511 + 178, 4)
    assert total["orders_by_state"] == {"canceled": 1, "filled": 4, "rejected": 3}
    assert total["rejections_by_reason"] == {"MAX_ORDER_QTY": 2, "broker: insufficient cash": 1}
    assert (total["start_equity"], total["end_equity"]) == (10_000_000, 10_020_000)
    assert total["max_drawdown_won"] == 180_000
    assert total["max_drawdown_pct"] == pytest.approx(180_000 / 10_200_000, abs=1e-6)
    mom = rep["strategies"]["momentum"]
    assert (mom["realized_pnl"], mom["unrealized_pnl"]) == (MOMENTUM_REALIZED, 574)
    assert (mom["fees"], mom["tax"], mom["fills"]) == (63, 511, 2)
    assert mom["orders_by_state"] == {"canceled": 1, "filled": 2, "rejected": 2}
    assert mom["rejections_by_reason"] == {"MAX_ORDER_QTY": 1, "broker: insufficient cash": 1}
    assert mom["max_drawdown_won"] == 8_000
    assert mom["max_drawdown_pct"] == pytest.approx(8_000 / 10_005_000, abs=1e-6)
    han = rep["strategies"][HANGUL]
    assert (han["realized_pnl"], han["fees"], han["tax"], han["fills"]) == (-1_207, 29, 178, 2)
    assert han["orders_by_state"] == {"filled": 2, "rejected": 1}
    assert han["rejections_by_reason"] == {"MAX_ORDER_QTY": 1}
    assert files.png is not None
    assert files.png.read_bytes().startswith(b"\x89PNG")
    assert files.text == files.text_file.read_text(encoding="utf-8")
    assert "realised +2,219" in files.text
    assert HANGUL in files.text


def test_a_mark_is_the_portfolio_at_its_last_prices() -> None:
    p = Portfolio(PortfolioConfig(commission_bp=0, sell_tax_bp=0, sell_tax_table=False))
    p.cash = 1_000_000
    p.on_fill(Fill("a1", "a", "o1", "1", "005930", Side.BUY, 10, 1_000, 2, 0))
    p.on_fill(Fill("a2", "a", "o2", "2", "005930", Side.SELL, 4, 1_200, 1, 9))
    p.on_fill(Fill("b1", "b", "o3", "3", "000660", Side.BUY, 3, 500, 1, 0))
    p.last["005930"] = 1_100  # 000660 has traded nowhere yet: its cost stands for it
    m = p.mark()
    # Cash: 1,000,000 - 10,002 + 4,790 - 1,501 = 993,287. Value: 6 x 1,100 + 3 x 500.
    assert (m.cash, m.positions_value, m.equity) == (993_287, 8_100, 1_001_387)
    # a: -2 at the buy, then 4,800 - 4,000 - 10 = 790; 6 held at 1,100 against 6,000 cost.
    assert m.strategies["a"] == StrategyMark(realized=788, unrealized=600, fees=12, value=6_600)
    assert m.strategies["b"] == StrategyMark(realized=-1, unrealized=0, fees=1, value=1_500)
    assert (m.realized, m.unrealized, m.fees) == (787, 600, 13)


def report_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    return subprocess.run(
        [sys.executable, "-m", "engine", "report", *args],
        capture_output=True, text=True, cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )  # fmt: skip


def test_no_journal_no_day_and_a_torn_journal_are_said_clearly(tmp_path: Path) -> None:
    missing = report_cli("--day", "2026-03-03", "--journal", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 1
    assert f"no journal at {tmp_path / 'none' / FILE_NAME}" in missing.stderr
    bad_day = report_cli("--day", "03/03/2026", cwd=tmp_path)
    assert bad_day.returncode == 2
    assert "expected YYYY-MM-DD" in bad_day.stderr
    state = tmp_path / "state"
    write_journal(state)
    other = report_cli("--day", "2026-03-05", "--journal", str(state), cwd=tmp_path)
    assert other.returncode == 1
    assert "holds nothing for 2026-03-05" in other.stderr
    # A torn tail: the file cut short in the middle of a page, the day's pages lost.
    path = state / FILE_NAME
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2 + 1_000)
    torn = report_cli("--day", "2026-03-03", "--journal", str(state), cwd=tmp_path)
    assert torn.returncode == 1, torn.stderr
    assert f"journal {path} cannot be read" in torn.stderr
    assert "Traceback" not in torn.stderr
    assert path.stat().st_size == size // 2 + 1_000  # nothing written to it


def test_a_journal_of_schema_2_reports_without_an_equity_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_journal(state)
    con = sqlite3.connect(state / FILE_NAME)
    con.execute("DROP TABLE equity")
    con.execute("PRAGMA user_version=2")
    con.close()
    files = report_day(load(None, env={}), DAY, out=tmp_path / "out", journal=state)
    rep = orjson.loads(files.json.read_bytes())
    assert rep["snapshots"] == 0
    assert rep["total"]["end_equity"] is None
    assert rep["total"]["realized_pnl"] == 2_219
    assert files.png is None
    assert not (tmp_path / "out" / "equity.png").exists()


def test_a_torn_wal_tail_reads_what_was_committed_before_it(tmp_path: Path) -> None:
    # A daemon killed mid-write: the journal's files as they were with it open (its WAL holds
    # the newest commits), the WAL's last frame cut short.
    live = tmp_path / "live"
    write_journal(live)
    j = Journal(live, ManualClock(NINE + timedelta(hours=1)))
    j.open()
    for _ in range(20):
        j.record_equity(EquityMark(8_000_000, 2_020_000, 0, 12_345, 0, {}))
    crashed = tmp_path / "crashed"
    shutil.copytree(live, crashed)
    j.close()
    wal = crashed / f"{FILE_NAME}-wal"
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 1_000)
    files = report_day(load(None, env={}), DAY, out=tmp_path / "out", journal=crashed)
    rep = orjson.loads(files.json.read_bytes())
    # SQLite drops the torn commit and keeps every one before it.
    assert 6 <= rep["snapshots"] < 26
    assert rep["total"]["realized_pnl"] == 2_219
    assert rep["total"]["fills"] == 4
