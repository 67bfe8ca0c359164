"""The simulator's order and account REST handlers, one module per job, in Kiwoom's wire format.

`exchange_handlers` maps each api-id to its handler over one `SimExchange`: order entry
(orders.py), the account (account.py) and the day's orders and fills (history.py); fields.py
reads request bodies. Every value answered is a string.
"""

from __future__ import annotations

from engine.sim.exchange import SimExchange
from engine.sim.handlers import account, history, orders
from engine.sim.reply import RestHandler


def exchange_handlers(ex: SimExchange) -> dict[str, RestHandler]:
    """Handlers for kt10000-kt10003, ka00001, kt00001, kt00018, ka10075, ka10076 and kt00007."""
    return {
        "kt10000": orders.place(ex, "buy"),
        "kt10001": orders.place(ex, "sell"),
        "kt10002": orders.modify(ex),
        "kt10003": orders.cancel(ex),
        "ka00001": account.account_number(ex),
        "kt00001": account.deposit(ex),
        "kt00018": account.balance(ex),
        "ka10075": history.open_orders(ex),
        "ka10076": history.executions(ex),
        "kt00007": history.order_history(ex),
    }
