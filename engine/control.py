"""`kiwoom-engine status | halt | resume`: asking the running daemon, through its admin endpoint.

The daemon is found where config.toml's `[admin]` says it listens. Nothing here talks to
Kiwoom or needs the app key. What the daemon answers is printed made inert (engine.terminal):
strategy names and reasons are text from config files and operators.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from engine.config import Config
from engine.terminal import one_line

REQUEST_TIMEOUT_S = 5.0


class NoDaemon(Exception):
    """Nothing answers at the admin endpoint (or the config has none); the text says which."""


class DaemonRefused(Exception):
    """The daemon answered with an error; the text is its reason."""


def admin_url(cfg: Config) -> str:
    """The endpoint's base URL. Raises NoDaemon when the config has none enabled."""
    admin = cfg.admin
    if admin is None or not admin.enabled:
        raise NoDaemon(f"{cfg.source}: no [admin] endpoint enabled, so the daemon cannot be asked")
    if admin.port == 0:
        raise NoDaemon(f"{cfg.source}: admin.port = 0 (any free port): set the daemon's port")
    host = f"[{admin.host}]" if ":" in admin.host else admin.host
    return f"http://{host}:{admin.port}"


def request(cfg: Config, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the daemon; returns its JSON answer. Raises NoDaemon when nothing answers,
    DaemonRefused for an error answer."""
    base = admin_url(cfg)
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    # Loopback: no proxy from the environment may sit in between.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=REQUEST_TIMEOUT_S) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise DaemonRefused(f"{method} {path}: HTTP {e.code}: {_error_text(e.read())}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise NoDaemon(
            f"no daemon answers at {base} ({reason}); is it running? (admin.port in {cfg.source})"
        ) from None
    except orjson.JSONDecodeError:
        raise DaemonRefused(f"{method} {path}: the answer is not JSON") from None


def _error_text(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode(errors="replace")
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)


def render_status(st: dict[str, Any]) -> str:
    """The /status answer for a terminal: mode, connections, strategies, positions, open
    orders, PnL and risk state, one fact per line."""
    lines: list[str] = []
    health = st.get("health", {})
    verdict = "healthy" if st.get("healthy") else "UNHEALTHY"
    failing = [k for k, v in health.items() if v is False and k != "degraded"]
    if failing:
        verdict += f" ({', '.join(failing)})"
    not_started = health.get("strategies_not_started") or []
    if not_started:
        names = ", ".join(str(s.get("name")) for s in not_started if isinstance(s, dict))
        verdict += f", degraded: could not start {names}"
    lines.append(
        f"kiwoom-engine: pid {st.get('pid')}, mode {st.get('mode')}, "
        f"up {_duration(st.get('uptime_s', 0))}, {verdict}"
    )
    stalled = health.get("stalled")
    if isinstance(stalled, dict):
        lines.append(
            f"STALLED: strategy {stalled.get('strategy')}, handler {stalled.get('handler')}, "
            f"running for {stalled.get('running_s')} s (the event loop is held)"
        )
    risk_state = st.get("trading_state", "?")
    reason = st.get("trading_state_reason") or ""
    lines.append(
        f"trading: {risk_state}{f' ({reason})' if reason else ''}"
        f"{'; reconciling' if st.get('reconciling') else ''}"
    )
    conns = st.get("connections", {})
    feed = conns.get("feed", {})
    silent = feed.get("silent_s")
    lines.append(
        f"feed: {'live' if feed.get('live') else 'DOWN'}, {feed.get('reconnects', 0)} "
        f"reconnects{f', silent {silent:.1f}s' if isinstance(silent, float) else ''}  "
        f"{feed.get('url', '')}"
    )
    for name, value in conns.items():
        if name == "feed":
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v}" for k, v in value.items())
        else:
            shown = str(value)
        lines.append(f"{name}: {shown}")
    lines.append("strategies:")
    for s in st.get("strategies", []):
        lines.append(
            f"  {s.get('name')}: {s.get('state')}; calls {s.get('calls', 0)}, errors "
            f"{s.get('errors', 0)}, rejections {s.get('rejections', 0)}, open orders "
            f"{s.get('open_orders', 0)}"
        )
    if not st.get("strategies"):
        lines.append("  (none)")
    pf = st.get("portfolio", {})
    lines.append("positions:")
    positions = pf.get("positions", {})
    for symbol, p in positions.items():
        lines.append(
            f"  {symbol}: {p.get('qty')} shares, avg {_won(p.get('avg_price'))}, last "
            f"{_won(p.get('last'))}, unrealized {_signed(p.get('unrealized'))}, realized "
            f"{_signed(p.get('realized'))}"
        )
    if not positions:
        lines.append("  (none)")
    lines.append("open orders:")
    for o in st.get("open_orders", []):
        price = _won(o.get("price")) if o.get("price") else "market"
        number = f", order {o['order_no']}" if o.get("order_no") else ""
        lines.append(
            f"  {o.get('client_id')} {o.get('strategy') or '(external)'} {o.get('symbol')} "
            f"{o.get('side')} {o.get('qty')} @ {price}: {o.get('state')}, filled "
            f"{o.get('filled_qty', 0)}{number}"
        )
    if not st.get("open_orders"):
        lines.append("  (none)")
    lines.append(
        f"pnl: realized today {_signed(pf.get('realized_today'))}, unrealized "
        f"{_signed(pf.get('unrealized'))}, fees {_won(pf.get('fees_today'))}, cash "
        f"{_won(pf.get('cash'))}"
    )
    counters = st.get("risk", {})
    lines.append(
        f"risk: {risk_state}; orders sent {counters.get('orders_sent', 0)}, rejected "
        f"{counters.get('rejected', 0)}, realized {_signed(counters.get('realized_pnl'))}"
    )
    return "\n".join(one_line(line) for line in lines)


def _won(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _signed(value: Any) -> str:
    return f"{value:+,}" if isinstance(value, int) else str(value)


def _duration(seconds: Any) -> str:
    s = int(seconds) if isinstance(seconds, int | float) else 0
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"
