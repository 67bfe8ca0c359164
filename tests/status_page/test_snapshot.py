"""The status page's snapshot builder: what it shows of an account, its strategies, orders
and fills, with every expected number worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from engine.clock import KST
from engine.config import PortfolioConfig
from engine.events import Fill, OrderState, Side
from engine.status_page.snapshot import EquityLine, Fills, build, equity
from engine.trading.orders import Order
from engine.trading.portfolio import Portfolio

NOW = datetime(2026, 12, 7, 10, 30, 5, tzinfo=KST)


@dataclass
class Slot:
    name: str
    enabled: bool = True
    disabled_reason: str = ""
    errors: int = 0
    overruns: int = 0
    rejections: int = 0
    symbols: tuple[str, ...] = ("005930",)


def fill(strategy: str | None, side: Side, qty: int, price: int, fee: int = 0) -> Fill:
    return Fill(
        client_id="c1",
        strategy=strategy,
        order_no="0000001",
        fill_no="1",
        symbol="005930",
        side=side,
        qty=qty,
        price=price,
        fee=fee,
        tax=0,
    )


def portfolio() -> Portfolio:
    # No estimated fees: each fill below carries its own.
    p = Portfolio(PortfolioConfig(commission_bp=0.0, sell_tax_bp=0.0, sell_tax_table=False))
    p.cash = 1_000_000
    return p


def snapshot(p: Portfolio, fills: Fills, line: EquityLine, **over: object) -> dict[str, object]:
    args: dict[str, object] = {
        "now": NOW,
        "mode": "sim",
        "trading_state": "ACTIVE",
        "trading_reason": "",
        "halts": {},
        "reconciling": False,
        "feed": {"live": True, "silent_s": 0.1, "reconnects": 0, "loop_lag_ms": 0.4},
        "portfolio": p,
        "strategies": [Slot("alpha"), Slot("beta", enabled=False, disabled_reason="errors: 5")],
        "open_orders": [],
        "fills": fills,
        "equity_line": line,
        "names": {"005930": "삼성전자", "000660": "SK하이닉스"},
        **over,
    }
    return build(**args)  # type: ignore[arg-type]


def test_a_strategy_shows_its_position_and_both_pnls_and_the_account_adds_up() -> None:
    p = portfolio()
    fills = Fills()
    # alpha buys 10 at 70,000 (fee 100), sells 4 at 71,000 (fee 50); the last trade is 72,000.
    for f in (fill("alpha", Side.BUY, 10, 70_000, 100), fill("alpha", Side.SELL, 4, 71_000, 50)):
        p.on_fill(f)
        fills.add(f, NOW)
    p.last["005930"] = 72_000
    s = snapshot(p, fills, EquityLine())

    alpha, beta = s["strategies"]  # type: ignore[misc]
    # Bought 700,000 + 100 fee: cost 700,000, realised -100. Sold 4 of cost 280,000 for
    # 284,000 - 50: realised +3,950, so -100 + 3,950 = 3,850. Held 6 at cost 420,000, worth
    # 432,000 at 72,000: unrealised 12,000.
    assert alpha["positions"] == [
        {"symbol": "005930", "qty": 6, "avg_price": 70_000, "realized": 3_850, "unrealized": 12_000}
    ]
    assert (alpha["realized"], alpha["unrealized"], alpha["state"]) == (3_850, 12_000, "running")
    assert (beta["state"], beta["reason"], beta["positions"]) == ("disabled", "errors: 5", [])
    # Cash: 1,000,000 - 700,000 - 100 + 284,000 - 50 = 583,850; the shares are worth 432,000.
    assert s["account"] == {
        "cash": 583_850,
        "market_value": 432_000,
        "equity": 1_015_850,
        "realized": 3_850,
        "unrealized": 12_000,
        "fees": 150,
    }
    assert s["positions"] == [
        {
            "symbol": "005930",
            "qty": 6,
            "avg_price": 70_000,
            "last": 72_000,
            "value": 432_000,
            "realized": 3_850,
            "unrealized": 12_000,
        }
    ]
    assert equity(p) == 1_015_850


def test_fills_are_todays_newest_first_and_names_travel_only_for_symbols_shown() -> None:
    p = portfolio()
    fills = Fills()
    fills.add(fill("alpha", Side.BUY, 1, 69_000), NOW - timedelta(days=1))  # yesterday's
    fills.add(fill("alpha", Side.BUY, 2, 70_000), NOW.replace(hour=9, minute=1, second=2))
    fills.add(fill(None, Side.SELL, 3, 70_100, 7), NOW.replace(hour=9, minute=5, second=0))
    s = snapshot(p, fills, EquityLine())
    assert s["fills"] == [
        {
            "time": "09:05:00",
            "strategy": None,
            "symbol": "005930",
            "side": "sell",
            "qty": 3,
            "price": 70_100,
            "fee": 7,
        },
        {
            "time": "09:01:02",
            "strategy": "alpha",
            "symbol": "005930",
            "side": "buy",
            "qty": 2,
            "price": 70_000,
            "fee": 0,
        },
    ]
    assert s["fills_today"] == 2
    # 000660 is neither held, ordered, filled nor a strategy's: its name stays home.
    assert s["names"] == {"005930": "삼성전자"}


def test_open_orders_count_per_strategy_and_the_trading_state_carries_its_reason() -> None:
    orders = [
        Order("c1", "alpha", "000660", Side.BUY, 5, 180_000, state=OrderState.ACCEPTED),
        Order("c2", "alpha", "005930", Side.SELL, 1, None, state=OrderState.SUBMITTING),
        Order("c3", None, "005930", Side.BUY, 2, 69_900, external=True),
    ]
    s = snapshot(
        portfolio(),
        Fills(),
        EquityLine(),
        open_orders=orders,
        trading_state="HALTED",
        trading_reason="OPERATOR_HALT: lunch",
        halts={"operator": "OPERATOR_HALT: lunch"},
    )
    assert s["trading"] == {
        "state": "HALTED",
        "reason": "OPERATOR_HALT: lunch",
        "halts": {"operator": "OPERATOR_HALT: lunch"},
        "reconciling": False,
    }
    assert [o["client_id"] for o in s["open_orders"]] == ["c1", "c2", "c3"]  # type: ignore[index]
    first = s["open_orders"][0]  # type: ignore[index]
    assert (first["symbol"], first["side"], first["price"], first["state"]) == (
        "000660",
        "buy",
        180_000,
        "accepted",
    )
    assert s["open_orders"][1]["price"] == 0  # type: ignore[index]  # a market order
    assert [r["open_orders"] for r in s["strategies"]] == [2, 0]  # type: ignore[attr-defined]
    assert s["names"] == {"005930": "삼성전자", "000660": "SK하이닉스"}
    # It is what goes on the wire: JSON, Korean text as UTF-8.
    assert "삼성전자".encode() in orjson.dumps(s)


def test_the_equity_line_is_bounded_keeps_its_first_point_and_starts_anew_each_day() -> None:
    line = EquityLine(maxlen=4)
    for i in range(9):
        line.add(NOW + timedelta(seconds=i), 1_000 + i)
    assert len(line.points) <= 4
    assert line.points[0][1] == 1_000  # the day's first point stays
    assert line.points[-1][1] == 1_008  # and the newest is there
    line.add(NOW + timedelta(days=1), 5)
    assert [v for _, v in line.points] == [5]
    s = snapshot(portfolio(), Fills(), line)  # NOW's day: the line is another day's
    assert s["equity"] == []


def test_a_restored_line_is_the_days_snapshots_thinned_evenly_to_its_bound() -> None:
    base_ns = int(NOW.timestamp()) * 1_000_000_000
    snaps = [(base_ns + i * 60_000_000_000, 1_000 + i) for i in range(10)]
    line = EquityLine(maxlen=4)
    line.restore(NOW, snaps)
    # Indices 0, 3, 6, 9 of ten: evenly spaced, the first and the last kept.
    base_ms = base_ns // 1_000_000
    assert line.points == [(base_ms + i * 60_000, 1_000 + i) for i in (0, 3, 6, 9)]
    assert snapshot(portfolio(), Fills(), line)["equity"] == line.points
    line.add(NOW + timedelta(minutes=10), 2_000)  # a live point after them halves the line
    assert line.points[0] == (base_ms, 1_000)
    assert line.points[-1][1] == 2_000
    assert len(line.points) <= 4
    few = EquityLine(maxlen=4)
    few.restore(NOW, snaps[:3])
    assert [v for _, v in few.points] == [1_000, 1_001, 1_002]
    few.restore(NOW, [])
    assert few.points == []
    assert snapshot(portfolio(), Fills(), few)["equity"] == []


def test_fills_kept_are_bounded() -> None:
    fills = Fills(maxlen=3)
    for qty in range(1, 6):
        fills.add(fill("alpha", Side.BUY, qty, 70_000), NOW)
    assert [r.qty for r in fills.today(NOW.date().isoformat())] == [5, 4, 3]


def test_the_count_of_todays_fills_includes_those_no_longer_kept() -> None:
    fills = Fills(maxlen=2)
    fills.add(fill("alpha", Side.BUY, 1, 70_000), NOW - timedelta(days=1))
    for _ in range(5):
        fills.add(fill("alpha", Side.BUY, 1, 70_000), NOW)
    s = snapshot(portfolio(), fills, EquityLine())
    assert s["fills_today"] == 5
    assert len(s["fills"]) == 2  # type: ignore[arg-type]
