"""The simulator's fault-control endpoint, for a harness in another process (`make chaos`).

Off unless `sim.control = true`, and only on a loopback host (the simulator refuses to start
otherwise). It owns three routes on the simulator's own port:
- POST /_sim/faults: a JSON object setting knobs of engine/sim/faults.py by name, plus a few
  of the simulator's own (`token_ttl_s`, `expire_tokens`, `rest_rate_per_s` / `rest_burst`,
  `clear`); answers the knobs as they now are, or 400 naming the bad key;
- POST /_sim/drop: every WebSocket session drops its connection now;
- POST /_sim/market: market state for a harness: {"session": state} / {"nxt_session":
  state} move the notional KRX / NXT session (a 0s push), {"vi": symbol, "kind": "static"|"dynamic"} starts a VI, {"condition":
  seq, "members": [...]} sets a "manual" condition's members;
- GET /_sim/book: the exchange's side of the account (orders, fills, holdings, cash) and the
  tokens issued, so the harness can check the daemon against the broker and search its logs
  for the tokens.
When off, the routes are not mounted: a POST there meets Kiwoom's own error envelope.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from engine.events import SessionState

if TYPE_CHECKING:
    from engine.sim.simulator import Simulator

FAULTS_PATH = "/_sim/faults"
DROP_PATH = "/_sim/drop"
BOOK_PATH = "/_sim/book"
MARKET_PATH = "/_sim/market"
PATHS = (FAULTS_PATH, DROP_PATH, BOOK_PATH, MARKET_PATH)

_NOT_SETTABLE = frozenset({"ws_drops"})
"""A counter, not a knob."""


class ControlError(ValueError):
    """A knob that does not exist or a value of the wrong shape; the message names the key."""


def _knob_names(sim: Simulator) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(sim.state.faults)
        if not f.name.startswith("_") and f.name not in _NOT_SETTABLE
    ]


def _coerce(key: str, current: Any, value: Any) -> Any:
    """`value` (from JSON) in the shape of the knob's current value, or ControlError."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ControlError(f"{key}: expected true or false")
        return value
    if isinstance(current, int) and not isinstance(current, bool):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ControlError(f"{key}: expected an integer >= 0")
        return value
    if isinstance(current, set):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ControlError(f"{key}: expected a list of api-ids")
        return set(value)
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise ControlError(f"{key}: expected an object keyed by api-id")
        return dict(value)
    # float | None knobs (ws_frame_delay_s, ws_pong_timeout_s)
    if value is None and key == "ws_pong_timeout_s":
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ControlError(f"{key}: expected a number >= 0")
    return float(value)


def apply(sim: Simulator, body: Any) -> dict[str, Any]:
    """Set the knobs named in `body`; all or nothing. Returns `knobs(sim)`."""
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object of knob names")
    faults = sim.state.faults
    names = set(_knob_names(sim))
    extra = {"clear", "expire_tokens", "token_ttl_s", "rest_rate_per_s", "rest_burst"}
    unknown = sorted(set(body) - names - extra)
    if unknown:
        raise ControlError(f"{unknown[0]}: no such knob")
    staged = {k: _coerce(k, getattr(faults, k), v) for k, v in body.items() if k in names}
    for key in ("clear", "expire_tokens"):
        if key in body and not isinstance(body[key], bool):
            raise ControlError(f"{key}: expected true or false")
    ttl = body.get("token_ttl_s")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
        raise ControlError("token_ttl_s: expected a number > 0")
    rate = body.get("rest_rate_per_s", sim.state.rest_rate_per_s)
    burst = body.get("rest_burst", sim.state.rest_burst)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
        raise ControlError("rest_rate_per_s: expected a number > 0")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ControlError("rest_burst: expected an integer >= 1")
    # Everything checked: apply in a fixed order (clear first, so the rest lands after it).
    if body.get("clear"):
        faults.clear()
    for key, value in staged.items():
        setattr(faults, key, value)
    if ttl is not None:
        sim.state.tokens.ttl_s = float(ttl)
    if "rest_rate_per_s" in body or "rest_burst" in body:
        sim.state.set_rate(float(rate), burst)
    if body.get("expire_tokens"):
        sim.state.expire_tokens()
    return knobs(sim)


def knobs(sim: Simulator) -> dict[str, Any]:
    faults = sim.state.faults
    out: dict[str, Any] = {}
    for name in [*_knob_names(sim), "ws_drops"]:
        value = getattr(faults, name)
        out[name] = sorted(value) if isinstance(value, set) else value
    out["token_ttl_s"] = sim.state.tokens.ttl_s
    out["rest_rate_per_s"] = sim.state.rest_rate_per_s
    out["rest_burst"] = sim.state.rest_burst
    return out


def book(sim: Simulator) -> dict[str, Any]:
    ex = sim.exchange
    return {
        "account_no": ex.account_no,
        "cash": ex.cash,
        "orderable_cash": ex.orderable_cash(),
        "holdings": {h.symbol: h.qty for h in ex.holdings()},
        "orders": [
            {
                "ord_no": o.ord_no,
                "orig_ord_no": o.orig_ord_no,
                "symbol": o.symbol,
                "side": o.side,
                "action": o.action,
                "qty": o.qty,
                "price": o.price,
                "status": o.status,
                "open_qty": o.open_qty,
                "filled_qty": o.filled_qty,
            }
            for o in ex.orders()
        ],
        "fills": len(ex.fills()),
        "handled": dict(sim.state.handled_counts),
        "tokens": list(sim.state.tokens.history),
    }


_SESSION_STATES = frozenset(s.value for s in SessionState if not s.value.startswith("nxt"))
_NXT_STATES = frozenset({"nxt_pre", "regular", "nxt_after", "closed"})


def apply_market(sim: Simulator, body: Any) -> dict[str, Any]:
    """Apply a POST /_sim/market body; ControlError names what is wrong."""
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    if "session" in body:
        state = body["session"]
        if not isinstance(state, str) or state not in _SESSION_STATES:
            raise ControlError(f"session: expected one of {', '.join(sorted(_SESSION_STATES))}")
        sim.set_session(state)
    if "nxt_session" in body:
        state = body["nxt_session"]
        if state not in _NXT_STATES:
            raise ControlError(f"nxt_session: expected one of {', '.join(sorted(_NXT_STATES))}")
        sim.set_session(state, "NXT")
    if "vi" in body:
        code = body["vi"]
        kind = body.get("kind", "static")
        if not isinstance(code, str) or not sim.market.has(code):
            raise ControlError("vi: expected a simulated symbol")
        if kind not in ("static", "dynamic"):
            raise ControlError("kind: expected static or dynamic")
        sim.trigger_vi(code, kind)
    if "condition" in body:
        seq = body["condition"]
        members = body.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ControlError("members: expected a list of symbols")
        try:
            sim.conditions.set_members(str(seq), members)
        except KeyError as e:
            raise ControlError(f"condition: {e.args[0]}") from None
    return {
        "session": sim.session,
        "nxt_session": sim.nxt_session,
        "vi": sorted(sim.vi.halted_codes()),
    }


def routes(sim: Simulator) -> list[web.RouteDef]:
    """The control routes, to mount before the catch-all POST of engine/sim/server.py."""

    async def set_faults(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        try:
            return web.json_response(apply(sim, body))
        except ControlError as e:
            return web.json_response({"error": str(e)}, status=400)

    async def drop(_request: web.Request) -> web.Response:
        sim.state.faults.ws_drop_now()
        return web.json_response({"ws_drops": sim.state.faults.ws_drops})

    async def set_market(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        try:
            return web.json_response(apply_market(sim, body))
        except ControlError as e:
            return web.json_response({"error": str(e)}, status=400)

    async def get_book(_request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(book(sim)), content_type="application/json")

    return [
        web.post(FAULTS_PATH, set_faults),
        web.post(DROP_PATH, drop),
        web.get(BOOK_PATH, get_book),
        web.post(MARKET_PATH, set_market),
    ]
