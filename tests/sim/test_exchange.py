"""SimExchange: matching against the generated book, 00/04 pushes, modify/cancel, rejections,
and account invariants under random order sequences."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import ManualClock
from engine.sim.exchange import (
    E_CASH,
    E_NO_ORDER,
    E_NO_SYMBOL,
    E_NOTHING_OPEN,
    E_PRICE_LIMIT,
    E_QTY_EXCEEDS,
    E_SHARES,
    E_SYMBOL_MISMATCH,
    E_TICK,
    E_TRADE_TYPE,
    FIDS_00,
    FIDS_04,
    OrderRejected,
    SimExchange,
)
from engine.sim.market import MarketGenerator
from engine.trading.krx import tick_size

SYM = "005930"  # prev close 70,000 -> ticks of 100, limits 49,000 / 91,000


def make(
    cash: int = 100_000_000, **kw: Any
) -> tuple[SimExchange, MarketGenerator, list[dict[str, Any]]]:
    clock = ManualClock()
    market = MarketGenerator([SYM, "000660"], 42, clock)
    pushed: list[dict[str, Any]] = []
    ex = SimExchange(market, cash, clock, pushed.append, **kw)
    return ex, market, pushed


def statuses(pushed: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(type, 9203 order no or "", 913 status or 930 qty) per entry."""
    out = []
    for e in pushed:
        v = e["values"]
        if e["type"] == "00":
            out.append(("00", v["9203"], v["913"]))
        else:
            out.append(("04", "", v["930"]))
    return out


def test_crossing_limit_buy_fills_and_pushes_00_then_04() -> None:
    ex, market, pushed = make()
    _bid, ask = market.best(SYM)
    order = ex.place("buy", SYM, 3, ask)
    assert order.ord_no == "0000001"
    assert order.filled_qty == 3
    assert order.open_qty == 0
    assert statuses(pushed) == [
        ("00", "0000001", "접수"),
        ("00", "0000001", "체결"),
        ("04", "", "3"),
    ]
    acc, fill, bal = (e["values"] for e in pushed)
    assert tuple(acc) == FIDS_00
    assert tuple(bal) == FIDS_04
    assert pushed[0]["name"] == "주문체결"
    assert pushed[2]["name"] == "현물잔고"
    assert acc["902"] == "3"
    assert acc["903"] == "0"
    assert acc["904"] == "0000000"
    assert acc["905"] == "+매수"
    assert acc["906"] == "보통"
    assert acc["907"] == "2"
    assert acc["9001"] == "A005930"
    assert acc["302"] == "삼성전자"
    assert acc["901"] == str(ask)
    assert acc["900"] == "3"
    assert fill["910"] == fill["914"] == str(ask)
    assert fill["911"] == fill["915"] == "3"
    assert fill["902"] == "0"
    assert fill["903"] == str(3 * ask)
    assert fill["909"] == "1"
    assert bal["931"] == str(ask)
    assert bal["932"] == str(3 * ask)
    assert bal["933"] == "3"
    assert bal["945"] == "3"
    assert bal["307"] == "70000"
    assert ex.cash == 100_000_000 - 3 * ask
    assert ex.holding(SYM).qty == 3


def test_partial_fill_across_levels_then_rest() -> None:
    ex, market, pushed = make()
    book = market.book(SYM)
    (p1, q1), (p2, q2) = book.asks[0], book.asks[1]
    order = ex.place("buy", SYM, q1 + q2 + 5, p2)
    assert [(f.price, f.qty) for f in ex.fills()] == [(p1, q1), (p2, q2)]
    assert order.open_qty == 5
    assert order.filled_qty == q1 + q2
    assert [s for s in statuses(pushed) if s[0] == "00"] == [
        ("00", "0000001", "접수"),
        ("00", "0000001", "체결"),
        ("00", "0000001", "체결"),
    ]
    assert pushed[-1]["type"] == "04"
    last_fill = [e for e in pushed if e["type"] == "00"][-1]["values"]
    assert last_fill["902"] == "5"
    assert last_fill["903"] == str(p1 * q1 + p2 * q2)
    assert ex.open_orders() == [order]
    spent = p1 * q1 + p2 * q2
    assert ex.cash == 100_000_000 - spent
    assert ex.orderable_cash() == ex.cash - 5 * p2


def test_resting_order_fills_when_market_reaches_it() -> None:
    ex, market, pushed = make()
    bid, _ask = market.best(SYM)
    target = bid - 5 * tick_size(bid)
    order = ex.place("buy", SYM, 2, target)
    assert order.open_qty == 2
    assert not ex.fills()
    ex.on_market_tick()
    assert not ex.fills()  # market has not moved yet
    # Other sellers hit the bids down to one tick below our price.
    market.take(SYM, False, 10**9, target - tick_size(target))
    assert market.best(SYM)[1] <= target
    pushed.clear()
    ex.on_market_tick()
    assert order.open_qty == 0
    (fill,) = ex.fills()
    assert fill.price <= target
    assert statuses(pushed) == [("00", "0000001", "체결"), ("04", "", "2")]


def test_market_order_fills_at_book_and_reserves_at_upper_limit() -> None:
    _lower, upper = price_limits_of()
    ex, market, _pushed = make(cash=upper * 10)
    _bid, ask = market.best(SYM)
    order = ex.place("buy", SYM, 10, 0, "3")
    assert order.price == 0
    assert order.filled_qty == 10
    assert ex.fills()[0].price == ask
    with pytest.raises(OrderRejected) as exc:
        ex.place("buy", SYM, 10, 0, "3")  # needs upper x 10 of orderable cash
    assert exc.value.code == E_CASH


def price_limits_of() -> tuple[int, int]:
    return MarketGenerator([SYM], 1, ManualClock()).limits(SYM)


def test_modify_creates_new_order_and_pushes_confirmations() -> None:
    ex, market, pushed = make()
    bid, _ = market.best(SYM)
    low = bid - 10 * tick_size(bid)
    orig = ex.place("buy", SYM, 10, low)
    pushed.clear()
    new = ex.modify(orig.ord_no, SYM, 4, low - tick_size(low))
    assert new.ord_no == "0000002"
    assert new.orig_ord_no == "0000001"
    assert new.base_ord_no == "0000001"
    assert (orig.open_qty, new.open_qty) == (6, 4)
    assert statuses(pushed) == [
        ("00", "0000002", "접수"),
        ("00", "0000002", "확인"),
        ("00", "0000001", "확인"),
    ]
    v_new, _, v_orig = (e["values"] for e in pushed)
    assert v_new["905"] == "+매수정정"
    assert v_new["904"] == "0000001"
    assert v_new["900"] == "4"
    assert v_new["901"] == str(low - tick_size(low))
    assert v_orig["902"] == "6"
    # mdfy_qty 0 = all remaining, and the chain keeps its root
    again = ex.modify(new.ord_no, SYM, 0, low)
    assert again.qty == 4
    assert new.open_qty == 0
    assert again.base_ord_no == "0000001"
    assert {o.ord_no for o in ex.open_orders()} == {"0000001", "0000003"}


def test_modify_to_crossing_price_fills() -> None:
    ex, market, pushed = make()
    bid, ask = market.best(SYM)
    orig = ex.place("buy", SYM, 2, bid)
    new = ex.modify(orig.ord_no, SYM, 0, ask)
    assert new.filled_qty == 2
    assert orig.open_qty == 0
    assert statuses(pushed)[-2:] == [("00", new.ord_no, "체결"), ("04", "", "2")]


def test_cancel_creates_new_order_and_pushes_cancel() -> None:
    ex, market, pushed = make()
    bid, _ = market.best(SYM)
    low = bid - 3 * tick_size(bid)
    orig = ex.place("buy", SYM, 10, low)
    mod = ex.modify(orig.ord_no, SYM, 0, low)
    pushed.clear()
    cxl = ex.cancel(mod.ord_no, SYM, 4)
    assert cxl.ord_no == "0000003"
    assert cxl.orig_ord_no == mod.ord_no
    assert cxl.base_ord_no == orig.ord_no  # base_orig_ord_no is the root of the chain
    assert mod.open_qty == 6
    assert cxl.open_qty == 0
    assert statuses(pushed) == [
        ("00", "0000003", "접수"),
        ("00", "0000003", "확인"),
        ("00", "0000002", "취소"),
    ]
    assert pushed[0]["values"]["905"] == "매수취소"
    assert pushed[0]["values"]["900"] == "4"
    assert pushed[2]["values"]["902"] == "6"
    rest = ex.cancel(mod.ord_no, SYM, 0)
    assert rest.qty == 6
    assert ex.open_orders() == []
    assert ex.orderable_cash() == ex.cash == 100_000_000


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda ex, bid: ex.place("buy", SYM, 1, bid + 1), E_TICK),
        (lambda ex, bid: ex.place("buy", SYM, 1, 0), E_TICK),
        (lambda ex, bid: ex.place("buy", SYM, 1, 91_100), E_PRICE_LIMIT),
        (lambda ex, bid: ex.place("sell", SYM, 1, 48_900), E_PRICE_LIMIT),
        (lambda ex, bid: ex.place("buy", SYM, 10_000, bid), E_CASH),
        (lambda ex, bid: ex.place("sell", SYM, 1, bid), E_SHARES),
        (lambda ex, bid: ex.place("buy", SYM, 1, bid, "5"), E_TRADE_TYPE),
        (lambda ex, bid: ex.place("buy", "999999", 1, bid), E_NO_SYMBOL),
        (lambda ex, bid: ex.modify("0000042", SYM, 0, bid), E_NO_ORDER),
        (lambda ex, bid: ex.cancel("0000042", SYM, 0), E_NO_ORDER),
    ],
)
def test_rejections_raise_and_change_nothing(call: Any, code: int) -> None:
    ex, market, pushed = make(cash=1_000_000)
    bid, _ = market.best(SYM)
    with pytest.raises(OrderRejected) as exc:
        call(ex, bid)
    assert exc.value.code == code
    assert f"[{code}:" in str(exc.value)
    assert pushed == []
    assert ex.orders() == []
    assert ex.cash == 1_000_000
    assert ex.place("buy", SYM, 1, bid).ord_no == "0000001"  # no number was used


def test_modify_cancel_rejections() -> None:
    ex, market, _ = make()
    bid, ask = market.best(SYM)
    done = ex.place("buy", SYM, 1, ask)
    with pytest.raises(OrderRejected) as e1:
        ex.cancel(done.ord_no, SYM, 0)
    assert e1.value.code == E_NOTHING_OPEN
    rest = ex.place("buy", SYM, 5, bid - 1000)
    with pytest.raises(OrderRejected) as e2:
        ex.cancel(rest.ord_no, SYM, 6)
    assert e2.value.code == E_QTY_EXCEEDS
    with pytest.raises(OrderRejected) as e3:
        ex.modify(rest.ord_no, "000660", 0, bid)
    assert e3.value.code == E_SYMBOL_MISMATCH
    with pytest.raises(OrderRejected) as e4:
        ex.modify(rest.ord_no, SYM, 0, bid + 50)
    assert e4.value.code == E_TICK
    cxl = ex.cancel(rest.ord_no, SYM, 0)
    with pytest.raises(OrderRejected) as e5:
        ex.cancel(cxl.ord_no, SYM, 0)  # a cancel order cannot itself be cancelled
    assert e5.value.code == E_NO_ORDER


def test_sell_locks_shares_no_short_selling() -> None:
    ex, market, _ = make()
    _, ask = market.best(SYM)
    ex.place("buy", SYM, 5, ask)
    high = ask + 20 * tick_size(ask)
    ex.place("sell", SYM, 3, high)
    assert ex.orderable_qty(SYM) == 2
    with pytest.raises(OrderRejected) as exc:
        ex.place("sell", SYM, 3, high)
    assert exc.value.code == E_SHARES


def test_push_mode_rejection_is_accepted_then_rejected() -> None:
    ex, market, pushed = make(cash=1_000_000, reject_mode="push")
    bid, _ = market.best(SYM)
    order = ex.place("buy", SYM, 1_000, bid)
    assert order.ord_no == "0000001"
    assert order.status == "거부"
    assert order.open_qty == 0
    assert statuses(pushed) == [("00", "0000001", "접수"), ("00", "0000001", "거부")]
    assert pushed[1]["values"]["919"] == "주문가능금액을 초과합니다"
    assert pushed[1]["values"]["902"] == "0"
    assert ex.open_orders() == []
    assert ex.cash == 1_000_000


def test_fees_and_tax_and_realized_pnl() -> None:
    ex, market, pushed = make(commission_bp=15, sell_tax_bp=18)
    _, ask = market.best(SYM)
    ex.place("buy", SYM, 100, ask)
    buy_fills = ex.fills()
    cost = sum(f.price * f.qty for f in buy_fills)
    fee_b = sum(f.fee for f in buy_fills)
    assert fee_b == sum(f.price * f.qty * 15 // 10_000 for f in buy_fills)
    bid, _ = market.best(SYM)
    ex.place("sell", SYM, 100, bid - 10 * tick_size(bid))
    sells = [f for f in ex.fills() if f.side == "sell"]
    proceeds = sum(f.price * f.qty for f in sells)
    assert sum(f.qty for f in sells) == 100
    fee_s = sum(f.fee for f in sells)
    tax = sum(f.tax for f in sells)
    # Fee and tax round once together per fill (33 bp), as the portfolio's estimate does.
    assert fee_s == sum(f.price * f.qty * 15 // 10_000 for f in sells)
    assert fee_s + tax == sum(f.price * f.qty * 33 // 10_000 for f in sells)
    assert tax > 0
    assert ex.cash == 100_000_000 - cost - fee_b + proceeds - fee_s - tax
    h = ex.holding(SYM)
    assert h.qty == 0
    assert h.cost == 0
    assert h.realized_pnl == proceeds - cost - fee_s - tax
    last_04 = [e for e in pushed if e["type"] == "04"][-1]["values"]
    assert last_04["930"] == "0"
    assert last_04["950"] == str(h.realized_pnl)
    assert last_04["946"] == "1"


# ---- property: account invariants under random sequences -------------------------------------

action = st.one_of(
    st.tuples(
        st.just("place"),
        st.sampled_from(["buy", "sell"]),
        st.sampled_from([SYM, "000660"]),
        st.integers(1, 120),
        st.integers(-6, 6),
        st.sampled_from(["0", "0", "0", "3"]),
    ),
    st.tuples(st.just("modify"), st.integers(0, 30), st.integers(0, 20), st.integers(-6, 6)),
    st.tuples(st.just("cancel"), st.integers(0, 30), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(1, 300)),
)


def run_actions(ex: SimExchange, market: MarketGenerator, actions: list[tuple[Any, ...]]) -> None:
    for a in actions:
        try:
            if a[0] == "place":
                _, side, sym, qty, off, tp = a
                bid, ask = market.best(sym)
                base = ask if side == "buy" else bid
                price = base + off * tick_size(base)
                ex.place(side, sym, qty, price, tp)
            elif a[0] == "modify":
                _, idx, qty, off = a
                opens = ex.open_orders()
                if opens:
                    o = opens[idx % len(opens)]
                    bid, ask = market.best(o.symbol)
                    ex.modify(o.ord_no, o.symbol, qty, bid + off * tick_size(bid))
            elif a[0] == "cancel":
                _, idx, qty = a
                opens = ex.open_orders()
                if opens:
                    o = opens[idx % len(opens)]
                    ex.cancel(o.ord_no, o.symbol, qty)
            else:
                market.next_entries(a[1])
                ex.on_market_tick()
        except OrderRejected:
            pass


def check_invariants(ex: SimExchange, pushed: list[dict[str, Any]], initial: int) -> None:
    fills = ex.fills()
    buys = sum(f.price * f.qty + f.fee for f in fills if f.side == "buy")
    sells = sum(f.price * f.qty - f.fee - f.tax for f in fills if f.side == "sell")
    assert ex.cash == initial - buys + sells
    assert ex.cash >= 0
    assert ex.orderable_cash() >= 0
    for sym in (SYM, "000660"):
        net = sum(f.qty if f.side == "buy" else -f.qty for f in fills if f.symbol == sym)
        assert ex.holding(sym).qty == net >= 0
        assert 0 <= ex.orderable_qty(sym) <= net
    by_no = {o.ord_no: o for o in ex.orders()}
    assert list(by_no) == [f"{i:07d}" for i in range(1, len(by_no) + 1)]
    for o in ex.orders():
        assert o.open_qty >= 0
        assert o.filled_qty + o.open_qty <= o.qty
        assert o.filled_qty == sum(f.qty for f in fills if f.ord_no == o.ord_no)
        assert o.base_ord_no in by_no
        assert by_no[o.base_ord_no].orig_ord_no == "0000000"
    # conservation per new order chain: qty == filled + open + cancelled
    for root in (o for o in ex.orders() if o.action == "new"):
        chain = [o for o in ex.orders() if o.base_ord_no == root.ord_no]
        filled = sum(o.filled_qty for o in chain if o.action != "cancel")
        open_ = sum(o.open_qty for o in chain)
        cancelled = sum(o.qty for o in chain if o.action == "cancel")
        if root.status != "거부":
            assert filled + open_ + cancelled == root.qty
    # the last 04 per symbol matches the holding
    last04: dict[str, dict[str, str]] = {}
    for e in pushed:
        if e["type"] == "04":
            last04[e["item"]] = e["values"]
        else:
            assert int(e["values"]["902"]) >= 0
    for sym, v in last04.items():
        h = ex.holding(sym)
        assert int(v["930"]) == h.qty
        assert int(v["931"]) == h.avg_price


@settings(max_examples=80, deadline=None)
@given(st.lists(action, max_size=40), st.sampled_from([0, 15]), st.sampled_from([0, 18]))
def test_account_invariants(actions: list[tuple[Any, ...]], fee_bp: int, tax_bp: int) -> None:
    initial = 50_000_000
    ex, market, pushed = make(cash=initial, commission_bp=fee_bp, sell_tax_bp=tax_bp)
    # start with shares so sells can happen
    _, ask = market.best(SYM)
    ex.place("buy", SYM, 50, ask + 5 * tick_size(ask))
    run_actions(ex, market, actions)
    check_invariants(ex, pushed, initial)


def test_pushes_decode_with_the_engine_codec() -> None:
    """Every 00 status kind and the 04 entries go through engine.kiwoom.codec cleanly."""
    import orjson

    from engine.kiwoom.codec import CodecStats, decode_frame

    ex, market, pushed = make()
    bid, ask = market.best(SYM)
    ex.place("buy", SYM, 5, ask)
    o = ex.place("buy", SYM, 5, bid - 5 * tick_size(bid))
    n = ex.modify(o.ord_no, SYM, 2, bid - 6 * tick_size(bid))
    ex.cancel(n.ord_no, SYM, 0)
    rej, _m, rej_pushed = make(cash=1_000, reject_mode="push")
    rej.place("buy", SYM, 5, bid)
    stats = CodecStats()
    frame = orjson.dumps({"trnm": "REAL", "data": pushed + rej_pushed})
    decode_frame(frame, stats)
    assert stats.bad_entries == 0
    assert stats.events == len(pushed) + len(rej_pushed)
    kinds = {e["values"]["913"] for e in pushed + rej_pushed if e["type"] == "00"}
    assert kinds == {"접수", "체결", "확인", "취소", "거부"}


# ---- IOC and FOK: the push sequences ---------------------------------------------------------


def test_ioc_limit_pushes_its_fill_then_cancels_the_rest() -> None:
    ex, market, pushed = make()
    ask_price, ask_qty = market.book(SYM).asks[0]
    order = ex.place("buy", SYM, ask_qty + 5, ask_price, "10")
    assert (order.filled_qty, order.open_qty, order.status) == (ask_qty, 0, "취소")
    assert statuses(pushed) == [
        ("00", order.ord_no, "접수"),
        ("00", order.ord_no, "체결"),
        ("04", "", str(ask_qty)),
        ("00", order.ord_no, "취소"),
    ]
    cancelled = pushed[-1]["values"]
    assert (cancelled["902"], cancelled["906"], cancelled["901"]) == (
        "0",
        "보통(IOC)",
        str(ask_price),
    )
    assert ex.open_orders() == []
    assert ex.orderable_cash() == ex.cash


def test_fok_limit_that_cannot_fill_whole_is_taken_then_cancelled_untouched() -> None:
    ex, market, pushed = make()
    book = market.book(SYM)
    ask_price, ask_qty = book.asks[0]
    order = ex.place("buy", SYM, ask_qty + 1, ask_price, "20")
    assert (order.filled_qty, order.open_qty, order.status) == (0, 0, "취소")
    assert statuses(pushed) == [("00", order.ord_no, "접수"), ("00", order.ord_no, "취소")]
    assert pushed[-1]["values"]["902"] == "0"
    assert ex.fills() == []
    assert ex.cash == 100_000_000
    assert market.book(SYM) == book


def test_fok_sell_fills_whole_across_levels() -> None:
    ex, market, pushed = make()
    ex.place("buy", SYM, 500, 0, "3")
    bids = market.book(SYM).bids
    qty = min(bids[0][1] + bids[1][1], 500)
    order = ex.place("sell", SYM, qty, bids[1][0], "20")
    assert (order.filled_qty, order.open_qty, order.status) == (qty, 0, "체결")
    assert [s for s in statuses(pushed) if s[1] == order.ord_no][-1] == ("00", order.ord_no, "체결")


def test_an_immediate_order_is_checked_like_a_day_order() -> None:
    ex, market, _ = make()
    bid, _ask = market.best(SYM)
    with pytest.raises(OrderRejected) as exc:
        ex.place("buy", SYM, 1, bid + 1, "10")
    assert exc.value.code == E_TICK
    with pytest.raises(OrderRejected) as exc:
        ex.place("sell", SYM, 1, bid, "20")
    assert exc.value.code == E_SHARES
