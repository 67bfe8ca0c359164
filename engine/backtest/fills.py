"""The backtest's fill model: how a resting order meets recorded data. Pure functions; the
in-process broker (engine/backtest/broker.py) calls them. This table is the one place the
model is written down; `[backtest]` in config.toml sets its knobs.

| data seen                       | what happens                                                   |
|---------------------------------|----------------------------------------------------------------|
| any order, cancel or amend      | reaches the book `latency_ms` after the call (the broker's     |
|                                 | clock); before that it cannot fill, cancel or move             |
| limit order arrives, a quote    | marketable against the best opposite price (buy >= ask, sell   |
| (0C/0D, a book, or a trade's    | <= bid): fills whole at that price at arrival (no depth is     |
| best ask/bid) is known          | known behind a quote)                                          |
| a later trade prints THROUGH    | fills at the order's price, capped by the printed volume       |
| the limit (buy: below it)       | (partial fills); the first print after arrival, when no quote  |
|                                 | was known, fills at the print's price if better (the order     |
|                                 | would have been marketable when it arrived)                    |
| a later trade prints AT the     | the volume ahead of the order at that level trades first (from |
| limit (touch)                   | the last book at arrival when the data has books, else none);  |
|                                 | what the print has left fills, capped by the order's open qty  |
| market order                    | arrives after the latency: fills whole at the best opposite    |
|                                 | price when a quote is known, else at the next trade's price,   |
|                                 | capped by its volume (the rest waits for the next prints)      |
| bar data                        | each bar is walked open -> high -> low -> close (open -> low -> |
|                                 | high -> close when the low is nearer the open), each point a   |
|                                 | print of a quarter of the volume (the remainder on the close). |
|                                 | The walk runs at the bar's close, before a strategy sees the   |
|                                 | bar, against orders sent by the bar's start: an order placed   |
|                                 | on a bar's close (the next bar's start) meets the whole next   |
|                                 | bar, its open first (a market order fills there), never the    |
|                                 | bar it saw. An order sent inside a bar (a timer) meets only    |
|                                 | that bar's close print. Walk fills are stamped at the close.   |
| daily bars                      | walked at 15:30 of their day against orders sent by 09:00;    |
|                                 | strategies see a daily bar at the next data day's start        |
|                                 | (08:00), so its orders meet the next day's bar, open first     |
| end of the day's last session   | what is still open is ended as KRX ends it (CANCELED)          |
| a VI starts (1h, `ViEvent`      | the symbol's continuous matching stops, as the simulator's     |
| active)                         | (engine/sim/vi.py): orders are taken and rest, none takes a    |
|                                 | quote on arrival, no print fills anything; an IOC/FOK order    |
|                                 | finds nothing to take and ends                                 |
| the VI ends (`ViEvent` not      | the next print of the symbol is the auction's uncross: every   |
| active)                         | resting order that crosses its price (buy >= it, sell <= it,   |
|                                 | market orders always) fills AT that price, best limit first    |
|                                 | then time, capped by its volume; continuous matching resumes   |

Fees and tax are `engine.trading.fees.FeeRates` on the portfolio's rates (with
`portfolio.sell_tax_table`, the sell tax of the day and the symbol's market), rounded once per
fill; reservations, tick and price-limit checks are the exchange core's
(engine/trading/account.py over engine/trading/krx.py), the simulator's too.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.events import Side


@dataclass(frozen=True, slots=True)
class Print:
    """One point of the tape the model matches against: a trade, or a point of a bar walk."""

    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class Match:
    """What a print did to one order: `qty` filled at `price`, `ahead` left before it."""

    qty: int
    price: int
    ahead: int


NO_MATCH = Match(0, 0, 0)


def bar_walk(open_: int, high: int, low: int, close: int, volume: int) -> tuple[Print, ...]:
    """The four prints a bar is walked as (see the table). A low exactly as near the open as
    the high goes high first."""
    q = volume // 4
    last = volume - 3 * q
    path = (open_, low, high, close) if open_ - low < high - open_ else (open_, high, low, close)
    return (Print(path[0], q), Print(path[1], q), Print(path[2], q), Print(path[3], last))


def marketable(side: Side, limit: int | None, best_ask: int, best_bid: int) -> int:
    """The price an arriving order takes from a known quote, or 0 when it rests (no quote on
    its opposite side, or its limit does not reach it)."""
    if side is Side.BUY:
        if best_ask > 0 and (limit is None or limit >= best_ask):
            return best_ask
        return 0
    if best_bid > 0 and (limit is None or limit <= best_bid):
        return best_bid
    return 0


def match_print(
    side: Side, limit: int | None, open_qty: int, ahead: int, pr: Print, *, first: bool
) -> Match:
    """What print `pr` fills of an order resting with `open_qty` open and `ahead` shares
    before it at its price (`limit` None: a market order). `first`: the first print since the
    order arrived with no quote known (see the table)."""
    vol = abs(pr.qty)
    if open_qty <= 0 or vol <= 0 or pr.price <= 0:
        return Match(0, 0, ahead)
    if limit is None:
        return Match(min(open_qty, vol), pr.price, 0)
    through = pr.price < limit if side is Side.BUY else pr.price > limit
    if through:
        price = pr.price if first else limit
        return Match(min(open_qty, vol), price, 0)
    if pr.price != limit:
        return Match(0, 0, ahead)
    if vol <= ahead:
        return Match(0, 0, ahead - vol)
    return Match(min(open_qty, vol - ahead), limit, 0)


def uncross(side: Side, limit: int | None, open_qty: int, pr: Print) -> Match:
    """What an auction's uncross print `pr` fills of an order that waited in it: all it can
    at the print's price when the order crosses it (no queue: the single price clears every
    crossing order, capped only by the volume left)."""
    vol = abs(pr.qty)
    if open_qty <= 0 or vol <= 0 or pr.price <= 0:
        return NO_MATCH
    if limit is not None and (pr.price > limit if side is Side.BUY else pr.price < limit):
        return NO_MATCH
    return Match(min(open_qty, vol), pr.price, 0)


def auction_priority(side: Side, limit: int | None) -> int:
    """Sort key of orders in an auction, lowest first: market orders, then the best limit
    (a buy's highest, a sell's lowest); ties keep time order (a stable sort)."""
    if limit is None:
        return -(2**62)
    return -limit if side is Side.BUY else limit


def queue_ahead(
    side: Side, limit: int, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]
) -> int:
    """Shares ahead of a new order at `limit`: the book's quantity at that price on the
    order's own side (0 when the level is not shown)."""
    for price, qty in bids if side is Side.BUY else asks:
        if price == limit:
            return qty
    return 0
