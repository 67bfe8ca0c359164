"""config.toml -> frozen dataclasses.

The loader refuses nonsense before anything connects: a file that cannot be read or is not
UTF-8 TOML, an unknown key, a wrong type, a number outside its documented range or a missing
value is a `ConfigError` naming the file and the key path, in one line. Secrets are never read
from the file; they come from the environment (`KIWOOM_APPKEY`, `KIWOOM_SECRETKEY`,
`KIWOOM_MQTT_PASSWORD`, `KIWOOM_TELEGRAM_TOKEN`, `KIWOOM_WEBHOOK_URL`) or from systemd
credentials (`$CREDENTIALS_DIRECTORY/appkey`, `.../secretkey`, `.../mqtt_password`,
`.../telegram_token`, `.../webhook_url`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.clock import parse_day
from engine.kiwoom import catalog, fids
from engine.secrets import Secret

Mode = Literal["sim", "mock", "live"]

HOSTS: Mapping[str, tuple[str, str]] = {
    "live": ("https://api.kiwoom.com", "wss://api.kiwoom.com:10000"),
    "mock": ("https://mockapi.kiwoom.com", "wss://mockapi.kiwoom.com:10000"),
}
WS_PATH = "/api/dostk/websocket"
KIWOOM_PING_INTERVAL_S = 20.0
"""Kiwoom documents no PING interval; the simulator's default imitates this one. Measure it
(daemon.record stamps every frame) and set kiwoom.ws_stale_s if it differs."""
STALE_AFTER_PINGS = 2.25
"""A PING missed and the next one late, plus a quarter interval of jitter: the feed is stale."""


class ConfigError(Exception):
    """The configuration is unusable; the message names the file and the key path.

    Always one printable line: keys and values come from the file, so control characters
    (newlines, terminal escapes) are shown escaped and long values are cut.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_printable(message))


# Every number has a range, checked at load time so the error names the key instead of
# surfacing hours later. The lower ends: a zero rate divides by zero in the governor, a zero
# timeout means *no* timeout to aiohttp (an order POST that never ends), a zero ping interval
# spins. The upper ends: past them a value is a typo, not a setting, and some break far from
# the file (1e308 seconds overflows a timedelta, so every token request fails; as a retry
# delay it hangs a call forever). config.toml states each range next to its key, in the words
# of `describe_range`.
def _range(lo: float, hi: float, *, above: bool = False) -> dict[str, Any]:
    """Field metadata: the value (or every value of a table) must be >= lo (> lo if `above`)
    and <= hi."""
    return {"range": (lo, hi, above)}


def describe_range(lo: float, hi: float, above: bool = False) -> str:
    """The range as error messages and config.toml say it: "between 1 and 10000",
    "> 0 and <= 300"."""
    if above:
        return f"> {_number(lo)} and <= {_number(hi)}"
    return f"between {_number(lo)} and {_number(hi)}"


def _number(x: float) -> str:
    if isinstance(x, float) and not x.is_integer():
        return repr(x)
    n = int(x)
    return f"{n:_}" if abs(n) >= 1_000_000 else str(n)


_SECONDS_RETRY_DELAY = _range(0, 10)
_SECONDS_RETRY_MAX = _range(0, 60)
_CLIENT_RATE = _range(0, 1000, above=True)
"""Requests per second; Kiwoom allows about 5 per account, so 1000 is only a typo guard."""
_CLIENT_BURST = _range(1, 1000)
_URL_SCHEMES = "schemes"
_MQTT_PREFIX = "mqtt_prefix"
_OFF_WHEN_SET = "off_when_set"
"""Metadata of a bool that defaults to on: the key named turns it off by being in the file
(an explicit setting beats a default), and the two set with it on is an error naming both."""


@dataclass(frozen=True)
class RateConfig:
    """Client-side pacing. None means the default for the mode (see `effective`)."""

    account_per_s: float | None = field(default=None, metadata=_CLIENT_RATE)
    account_burst: int | None = field(default=None, metadata=_CLIENT_BURST)
    per_api_per_s: float | None = field(default=None, metadata=_CLIENT_RATE)
    """Queries, per api-id."""
    per_api_burst: int | None = field(default=None, metadata=_CLIENT_BURST)
    order_per_api_per_s: float | None = field(default=None, metadata=_CLIENT_RATE)
    """Order-placing TRs (kt10000-kt10003, ...), per api-id."""
    order_per_api_burst: int | None = field(default=None, metadata=_CLIENT_BURST)
    per_api: Mapping[str, float] = field(
        default_factory=dict, metadata={**_CLIENT_RATE, "api_ids": "any"}
    )
    """Per api-id overrides of the two rates above, e.g. ``{ ka10081 = 1.0 }``."""
    backoff_base_s: float = field(default=0.5, metadata=_SECONDS_RETRY_DELAY)
    backoff_max_s: float = field(default=8.0, metadata=_SECONDS_RETRY_MAX)
    max_rate_limit_retries: int = field(default=8, metadata=_range(0, 100))

    def effective(self, mode: Mode) -> RateConfig:
        # Facts sheet: about 5/s per account on production (orders and queries each), 1/s on
        # mock; kiwoom-client measured ~1/s with bursts of 2 per query TR on production. The
        # simulator is ours, so pace it only enough to exercise the governor.
        acc, acc_burst, api, api_burst, order, order_burst = {
            "live": (5.0, 5, 1.0, 2, 5.0, 5),
            "mock": (1.0, 1, 1.0, 1, 1.0, 1),
            "sim": (50.0, 20, 50.0, 20, 50.0, 20),
        }[mode]

        def pick(value: float | None, default: float) -> float:
            return value if value is not None else default

        return dataclasses.replace(
            self,
            account_per_s=pick(self.account_per_s, acc),
            account_burst=int(pick(self.account_burst, acc_burst)),
            per_api_per_s=pick(self.per_api_per_s, api),
            per_api_burst=int(pick(self.per_api_burst, api_burst)),
            order_per_api_per_s=pick(self.order_per_api_per_s, order),
            order_per_api_burst=int(pick(self.order_per_api_burst, order_burst)),
        )


@dataclass(frozen=True)
class RetryConfig:
    """Retries of queries (never of order-placing calls) on 5xx, timeouts and resets."""

    max_attempts: int = field(default=4, metadata=_range(1, 10))
    base_delay_s: float = field(default=0.2, metadata=_SECONDS_RETRY_DELAY)
    """Also the first pause between token requests, which double from there."""
    max_delay_s: float = field(default=5.0, metadata=_SECONDS_RETRY_MAX)


@dataclass(frozen=True)
class CacheConfig:
    """TTL cache of reference data, per api-id. Account and order calls are never cached."""

    ttl_s: Mapping[str, float] = field(
        default_factory=lambda: {"ka10001": 5.0, "ka10099": 3600.0, "ka10100": 3600.0},
        metadata={**_range(0, 86_400), "api_ids": "cacheable"},
    )


@dataclass(frozen=True)
class KiwoomConfig:
    mode: Mode = "sim"
    rest_url: str | None = field(default=None, metadata={_URL_SCHEMES: ("http", "https")})
    ws_url: str | None = field(default=None, metadata={_URL_SCHEMES: ("ws", "wss")})
    request_timeout_s: float = field(default=10.0, metadata=_range(0, 300, above=True))
    connect_timeout_s: float = field(default=5.0, metadata=_range(0, 60, above=True))
    ws_stale_s: float | None = field(default=None, metadata=_range(0, 3600, above=True))
    """Seconds without any realtime frame, PING included, after which the feed is stale (a
    FeedStale event). None: 2.25 PING intervals (see `Config.ws_stale_s`)."""
    ws_stale_grace_s: float = field(default=10.0, metadata=_range(0, 3600))
    """Further silence after which a stale connection is dropped and replaced."""
    ws_compression: bool = True
    """Offer permessage-deflate (RFC 7692) on the realtime connection; the server may decline.
    Against the simulator at 20k events/s (bench/ws_compression.py): 1.9 MB/s deflated
    against 18.3 MB/s plain, for 0.6-2.1 us more client CPU per event (1.04-1.15x, four
    runs). Off: for a client short of CPU on a fast link, or a server whose deflate
    misbehaves."""
    max_realtime_conditions: int = field(default=10, metadata=_range(1, 100))
    """Realtime condition searches (조건검색 search_type 1) at once; Kiwoom allows about 10 per
    login, and the feed refuses one more with a clear error."""
    token_refresh_margin_s: float = field(default=300.0, metadata=_range(0, 43_200))
    """Renew the token this long before it expires (a token lives about 18 hours; the margin
    is capped at half of what is left anyway)."""
    max_pages: int = field(default=100, metadata=_range(1, 10_000))
    revoke_on_exit: bool = True
    """Revoke the token (au10002) when the daemon stops. Kiwoom hands the same token to every
    client of one app key, so a revoke cuts off every other program using the key; one-shot
    commands (`call`, `watch`) therefore never revoke."""
    rate: RateConfig = field(default_factory=RateConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    appkey: Secret | None = field(default=None, metadata={"secret": True})
    secretkey: Secret | None = field(default=None, metadata={"secret": True})


@dataclass(frozen=True)
class SimConditionConfig:
    """One `[[sim.conditions]]` table: a condition the simulator lists (CNSRLST) and searches.

    `rule`: "up" (last price >= `pct` % above the base price), "down" (>= `pct` % below),
    "all" (every simulated symbol), "manual" (the members a test or the control endpoint
    sets). Membership of up/down changes as prices move."""

    seq: str
    name: str
    rule: Literal["up", "down", "all", "manual"] = "up"
    pct: float = field(default=1.0, metadata=_range(0, 30))


_SIM_CONDITIONS = (
    SimConditionConfig("0", "급등 1%", "up", 1.0),
    SimConditionConfig("1", "급락 1%", "down", 1.0),
    SimConditionConfig("2", "전종목", "all"),
)


@dataclass(frozen=True)
class SimConfig:
    """The built-in exchange simulator (mode = "sim", and `kiwoom-engine sim`)."""

    host: str = "127.0.0.1"
    port: int = field(default=18765, metadata=_range(0, 65535))
    """0 takes any free port (the daemon then points its clients at it)."""
    seed: int = field(default=20261124, metadata=_range(0, 2**63 - 1))
    symbols: tuple[str, ...] = field(
        default=("005930", "000660", "035420", "035720", "051910"), metadata={"non_empty": True}
    )
    rest_rate_per_s: float = field(default=100.0, metadata=_range(0, 100_000, above=True))
    """Per api-id requests per second the simulator accepts before answering HTTP 429."""
    rest_burst: int = field(default=50, metadata=_range(1, 100_000))
    token_ttl_s: float = field(default=64800.0, metadata=_range(0, 604_800, above=True))
    """How long a token lives (Kiwoom: about 18 hours); at most a week."""
    ping_interval_s: float = field(default=20.0, metadata=_range(0, 3600, above=True))
    events_per_s: float = field(default=50.0, metadata=_range(0, 100_000))
    """Market events generated per second across all symbols (the generator makes about
    140,000 a second on one core, so more is not a rate it could keep)."""
    cash: int = field(default=100_000_000, metadata=_range(0, 10**13))
    """Won; at most 10조, so every account amount fits Kiwoom's 15-digit fields."""
    account_no: str = "5012345610"
    commission_bp: float = field(default=1.5, metadata=_range(0, 10_000))
    """Commission in basis points of the traded value; the default is `[portfolio]`'s, and
    the rounding is the portfolio's estimate's (engine/trading/fees.py)."""
    sell_tax_bp: float = field(default=18.0, metadata=_range(0, 10_000))
    """A flat transaction tax on sells in basis points, charged when `sell_tax_table` is off
    (a file that sets this key and not `sell_tax_table` turns the table off). Fee plus tax is
    rounded down to the won once per fill."""
    sell_tax_table: bool = field(default=True, metadata={_OFF_WHEN_SET: "sell_tax_bp"})
    """Charge the published sell tax of the fill's day and the symbol's market
    (engine/trading/fees.py SELL_TAX_TABLE), as `[portfolio]` estimates it, instead of
    `sell_tax_bp`. Built in Python, a flat rate needs `sell_tax_table=False` as well."""
    reject_mode: Literal["error", "push"] = "error"
    """How refused orders look: a REST error at entry, or taken then pushed as 거부 on 00."""
    order_push_first: bool = False
    """A taken order's 00/04 pushes are written before its REST answer (true) or after it
    (false). Kiwoom may do either; tests switch it live (Faults.order_push_first)."""
    replay: str | None = None
    """An NDJSON recording to replay instead of generating the market: every REAL entry
    (1h, 0s, 0g and 02 too); the conditions listed are the recording's, not `conditions`."""
    system_frames_before_login: int = field(default=1, metadata=_range(0, 10))
    """SYSTEM frames sent between a good LOGIN and its ack, as production may do. 0 gives the
    plain handshake, for testing a Kiwoom client that does not cope with them yet."""
    stamp_file: str | None = None
    """Off by default. A file the simulator appends latency stamps to: each REAL frame written
    and each order request read, on CLOCK_MONOTONIC (engine/sim/stamps.py; used by
    bench/tick_to_order.py)."""
    conditions: tuple[SimConditionConfig, ...] = _SIM_CONDITIONS
    """The conditions of the simulated login (조건검색), see SimConditionConfig."""
    condition_page_size: int = field(default=100, metadata=_range(1, 10_000))
    """Rows per page of a one-shot search (CNSRREQ search_type 0); more pages follow by
    cont_yn/next_key."""
    max_realtime_conditions: int = field(default=10, metadata=_range(1, 100))
    """Realtime searches one connection may hold, as Kiwoom allows about 10; one more is
    refused."""
    vi_static_pct: float = field(default=10.0, metadata=_range(0, 30, above=True))
    """A static VI when a trade is this far (%) from the static reference (the base price,
    then the last auction's price)."""
    vi_dynamic_pct: float = field(default=3.0, metadata=_range(0, 30, above=True))
    """A dynamic VI when a trade is this far (%) from the price `vi_window_s` ago."""
    vi_window_s: float = field(default=1.0, metadata=_range(0, 3600, above=True))
    """The dynamic VI's window: the generated walk moves a tick at a time, so only a fast move
    (an order sweeping the book) goes `vi_dynamic_pct` within it."""
    vi_auction_s: float = field(default=120.0, metadata=_range(0, 3600, above=True))
    """How long a VI's single-price auction lasts: orders are taken, matched at its end."""
    session: Literal[
        "pre_open_after_hours",
        "opening_auction",
        "regular",
        "closing_auction",
        "post_close",
        "after_hours_single",
        "closed",
    ] = "regular"
    """The simulator's notional KRX session when it starts, whatever the hour (so `make run`
    trades at any time); the control endpoint moves it (POST /_sim/market), pushing 0s. KRX
    orders are refused while it is closed."""
    nxt_session: Literal["nxt_pre", "regular", "nxt_after", "closed"] = "regular"
    """The notional NXT session (NXT and SOR orders are taken unless it is closed; SOR while
    either venue is open), moved like `session`."""
    control: bool = False
    """Off by default. The fault-control endpoint (engine/sim/control.py): POST /_sim/faults,
    POST /_sim/drop, GET /_sim/book on the simulator's own port, for a harness in another
    process (`make chaos`). The simulator refuses to start with it on a non-loopback host."""


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True)
class DaemonConfig:
    symbols: tuple[str, ...] = ("005930", "000660")
    realtime_types: tuple[str, ...] = ("0B", "0C", "0D")
    record: str | None = None
    """Write every raw WebSocket frame to this NDJSON file, for replay. The file holds one KST
    day: at midnight it is renamed `<stem>.<YYYY-MM-DD><suffix>` and imported into the
    history store (`[data] dir`) by `kiwoom-engine history --import` in a subprocess."""
    state_dir: str = "var"
    """The journal (SQLite) lives here; systemd's StateDirectory= in production."""
    on_stop: Literal["keep", "cancel"] = "keep"
    """What a shutdown does to the engine's open orders."""
    stop_timeout_s: float = field(default=20.0, metadata=_range(0, 600, above=True))
    """The whole shutdown (orders, journal, spool, feed, token revoke) ends within this; keep
    it below systemd's TimeoutStopSec (30 s in systemd/kiwoom-engine.service), or systemd
    kills the daemon before the token is revoked."""
    venue: Literal["KRX", "NXT", "SOR"] = "KRX"
    """Where a strategy's order goes when its `buy`/`sell` names no `venue`: KRX, NXT
    (Nextrade) or SOR (Kiwoom's smart order routing between the two). Mode mock refuses NXT
    and SOR (Kiwoom's paper trading is KRX only; risk reason VENUE)."""
    handler_stall_s: float = field(default=5.0, metadata=_range(0, 600, above=True))
    """A strategy handler call running this long is stalled: the watchdog raises into it, and
    ends the process (the strategy held disabled, `kiwoom-engine enable NAME`) when that does
    not break it within 2 s more. Keep it plus 2 s below systemd's WatchdogSec (30 s in
    systemd/kiwoom-engine.service)."""


@dataclass(frozen=True)
class DataConfig:
    """The history store (engine/data/): `kiwoom-engine history` writes it, the backtest and
    reports read it. The daemon never opens it."""

    dir: str = field(default="var/data", metadata={"non_empty": True})


@dataclass(frozen=True)
class BacktestConfig:
    """`kiwoom-engine backtest` (engine/backtest/): the fill model's knobs (the model itself is
    documented in engine/backtest/fills.py) and the account it starts with."""

    latency_ms: int = field(default=50, metadata=_range(0, 60_000))
    """Time an order, a cancel or an amend takes to reach the book."""
    cash: int = field(default=100_000_000, metadata=_range(1, 10**15))
    """The account's cash (KRW) on the first day."""
    kinds: tuple[str, ...] = field(
        default=("books", "quotes", "trades", "vi", "ticks"), metadata={"non_empty": True}
    )
    """The store's datasets fed, in time order: "trades", "quotes", "books", "vi" (recorded),
    "ticks", "bars_1m", "bars_5m", ... (chart history). Missing ones are skipped."""
    seed: int = field(default=0, metadata=_range(0, 2**63 - 1))
    """Seeds everything random in a run (the same data, config and seed: the same output)."""


BUILTIN_SIM_DIR = "builtin-sim"
"""The daemon's state directory with the built-in simulator: under `daemon.state_dir`."""


@dataclass(frozen=True)
class ReportConfig:
    """The daily report (engine/reports/daily.py): the equity snapshots the daemon journals
    through the day, and the report it writes under `<daemon.state_dir>/reports/` at the end
    of the day's last session (`kiwoom-engine report --day` writes it on demand)."""

    equity_interval_s: float = field(default=60.0, metadata=_range(0, 3600, above=True))
    """How often the daemon journals an equity snapshot (cash, positions marked at the last
    prices, realised and unrealised PnL per strategy): the report's equity line and its
    intraday drawdown are drawn from these."""
    at_day_end: bool = True
    """Write the report when the day's last session ends (mode sim: when the simulator's
    notional session closes) and hand it to the alerts."""
    timeout_s: float = field(default=120.0, metadata=_range(0, 3600, above=True))
    """The day-end report runs in its own process (the event loop never draws); it is ended
    after this long."""


@dataclass(frozen=True)
class AdminConfig:
    """The loopback HTTP endpoint (engine/admin.py): health, metrics, status, kill switch.
    Without an `[admin]` table the daemon serves none (as without `[mqtt]`, no mirror)."""

    enabled: bool = True
    host: str = field(default="127.0.0.1", metadata={"loopback": True})
    """Loopback only: the endpoint has no authentication and POST /halt, /resume flip the
    kill switch."""
    port: int = field(default=18780, metadata=_range(0, 65535))
    """0 takes any free port (the CLI cannot find that one: tests only)."""
    loop_stall_s: float = field(default=1.0, metadata=_range(0, 60, above=True))
    """The event loop late by this much (or unheard this long) is stalled: /healthz says 503."""


@dataclass(frozen=True)
class MetricsConfig:
    """What /metrics (engine/metrics.py) exports beyond the engine's health."""

    max_symbol_series: int = field(default=200, metadata=_range(1, 100_000))
    """The most series with a `symbol` label in one metric family (positions, exposure): the
    largest exposures are kept, the rest summed under symbol="_other" and counted in
    `kiwoom_engine_symbol_series_dropped`, so that a universe changing at run time cannot grow
    the label set without bound."""


@dataclass(frozen=True)
class RiskConfig:
    """Pre-trade limits (engine/trading/risk.py). Money in KRW, quantities in shares; 0 turns
    a limit off where the comment says so."""

    max_order_qty: int = field(default=10_000, metadata=_range(1, 10**9))
    max_order_notional: int = field(default=50_000_000, metadata=_range(1, 10**13))
    max_position_qty: int = field(default=50_000, metadata=_range(1, 10**9))
    """Per symbol, long side (no short sales), counting open buy orders."""
    max_gross_exposure: int = field(default=500_000_000, metadata=_range(1, 10**14))
    """Sum over symbols of |position| x last price, plus open buy orders' notional."""
    max_open_orders: int = field(default=50, metadata=_range(1, 10_000))
    max_orders_per_s: int = field(default=5, metadata=_range(1, 1_000))
    max_orders_per_min: int = field(default=120, metadata=_range(1, 100_000))
    daily_loss_limit: int = field(default=5_000_000, metadata=_range(1, 10**13))
    """Realised loss (KRW, after fees and tax) at which trading HALTs for the day."""
    fat_finger_bp: int = field(default=500, metadata=_range(1, 10_000))
    """How far (basis points) a limit price may sit from the last trade."""
    duplicate_window_s: float = field(default=1.0, metadata=_range(0, 3600))
    """Refuse a second identical order (strategy, symbol, side, qty, price, venue) this soon;
    0 off."""
    check_session_hours: bool = True
    """Refuse orders outside the venue's session (SESSION_CLOSED): by the feed's session
    notices when today has one, else by the KRX calendar. Mode sim checks the notices only
    (the simulator's session is notional: it moves when told, whatever the hour)."""
    refuse_market_under_vi: bool = True
    """Refuse market orders on a symbol under a volatility interruption (VI) on the order's
    venue (VI_ACTIVE): the auction's price is unknown. Limit orders pass and join the
    auction, which KRX allows."""
    extra_holidays: tuple[str, ...] = field(default=(), metadata={"dates": True})
    """Extra KRX closed days, "YYYY-MM-DD", beside the calendar's own."""
    max_order_delay_ms: int = field(default=3_000, metadata=_range(1, 600_000))
    """An order re-sent after a rate-limit refusal gives up (REJECTED, reason STALE) once this
    long has passed since the strategy's decision."""


@dataclass(frozen=True)
class PortfolioConfig:
    reconcile_s: float = field(default=60.0, metadata=_range(1, 86_400))
    """How often positions and cash are checked against kt00018 / kt00001."""
    halt_on_divergence: bool = False
    commission_bp: float = field(default=1.5, metadata=_range(0, 1_000))
    """Fees estimated on fills that carry none, basis points of traded value."""
    sell_tax_bp: float = field(default=18.0, metadata=_range(0, 1_000))
    """A flat sell-tax estimate, used when `sell_tax_table` is off (a file that sets this key
    and not `sell_tax_table` turns the table off)."""
    sell_tax_table: bool = field(default=True, metadata={_OFF_WHEN_SET: "sell_tax_bp"})
    """Estimate the sell tax by the published table (engine/trading/fees.py SELL_TAX_TABLE:
    by the fill's day and the symbol's market) instead of `sell_tax_bp`; the backtest charges
    the same. Built in Python, a flat rate needs `sell_tax_table=False` as well."""
    markets: Mapping[str, Literal["KOSPI", "KOSDAQ", "KONEX", "ETF"]] = field(default_factory=dict)
    """Symbols whose market is not KOSPI, for the sell-tax table, e.g. ``{ "069500" = "ETF" }``
    (an ETF pays no sell tax)."""


@dataclass(frozen=True)
class MqttConfig:
    """The MQTT mirror (engine/mirror.py); the `[mqtt]` table's presence turns it on.

    The password is never read from the file: `KIWOOM_MQTT_PASSWORD`, or the systemd
    credential `mqtt_password`; neither set means no password.
    """

    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata=_range(1, 65535))
    tls: bool = False
    ca_file: str | None = None
    """PEM bundle the broker's certificate is checked against (with `tls`); unset: the
    system's CAs."""
    username: str | None = None
    client_id: str | None = field(default=None, metadata={"non_empty": True})
    """Unset: "kiwoom-engine-<account>" (one daemon per account, so one session per id)."""
    prefix: str | None = field(default=None, metadata={_MQTT_PREFIX: True})
    """Unset: "kiwoom/<account>"."""
    keepalive_s: int = field(default=30, metadata=_range(5, 3600))
    connect_timeout_s: float = field(default=3.0, metadata=_range(0, 60, above=True))
    reconnect_min_s: float = field(default=0.5, metadata=_range(0, 60, above=True))
    """The first pause after a lost or refused connection; it doubles up to the max."""
    reconnect_max_s: float = field(default=30.0, metadata=_range(0, 3600, above=True))
    max_market: int = field(default=10_000, metadata=_range(1, 1_000_000))
    """Trades (and other market events) the mirror's queue holds when it falls behind; past
    that the oldest are dropped and counted. Quotes and books keep the newest per symbol."""
    spool_size: int = field(default=100_000, metadata=_range(1, 10_000_000))
    """QoS 1 messages (orders, fills, balances, risk) held until the broker acknowledges
    them, across disconnections. Full: the oldest is dropped, counted, and subscribers see
    the gap in that topic's `seq`."""
    flush_timeout_s: float = field(default=2.0, metadata=_range(0, 60))
    """At shutdown: how long the spool may take to reach the broker."""
    snapshot_s: float = field(default=5.0, metadata=_range(0, 3600, above=True))
    """The retained `positions` and `risk_state` are refreshed after account events and at
    least this often (when they changed)."""
    commands_enabled: bool = False
    """Take `halt` and `resume` from <prefix>/cmd/...; restrict who may publish there with
    the broker's ACL (README "MQTT mirror")."""
    password: Secret | None = field(default=None, metadata={"secret": True})


@dataclass(frozen=True)
class RealtimeConfig:
    """One entry of a strategy's `realtime` list: a Kiwoom realtime type by its code (as
    Kiwoom's catalogue lists it: "0J" 업종지수, "0w" 종목프로그램매매, ...) and the items to
    register it for (symbols, or sector / index codes such as "001")."""

    type: str = field(metadata={"realtime_type": True})
    items: tuple[str, ...] = field(metadata={"non_empty": True})


@dataclass(frozen=True)
class TelegramConfig:
    """`[alerts.telegram]`: a Telegram bot posting to one chat (engine/alerts/).

    The bot token is never read from the file: `KIWOOM_TELEGRAM_TOKEN`, or the systemd
    credential `telegram_token`."""

    chat_id: str = field(metadata={"non_empty": True, "int_as_str": True})
    """The chat, group or channel the bot posts to (a number such as -1001234567890, or
    "@channelname")."""
    api_url: str = field(
        default="https://api.telegram.org", metadata={_URL_SCHEMES: ("http", "https")}
    )
    """Telegram's Bot API; set only to point the tests at a local server."""
    token: Secret | None = field(default=None, metadata={"secret": True})


@dataclass(frozen=True)
class WebhookConfig:
    """`[alerts.webhook]`: a JSON POST whose body Slack and Discord both read (`text` and
    `content`). The URL carries its own secret, so it is never read from the file:
    `KIWOOM_WEBHOOK_URL`, or the systemd credential `webhook_url`."""

    enabled: bool = True
    url: Secret | None = field(default=None, metadata={"secret": True})


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: notifications of what needs a person (engine/alerts/), each kind
    switchable, sent to `[alerts.telegram]` and/or `[alerts.webhook]`. Without an `[alerts]`
    table nothing is sent."""

    fills: bool = True
    rejections: bool = True
    """A digest of risk rejections by reason, at most once per `rejection_digest_s`."""
    halts: bool = True
    strategy_disabled: bool = True
    feed: bool = True
    """The feed stale or down longer than `feed_down_after_s`, and back."""
    feed_down_after_s: float = field(default=30.0, metadata=_range(0, 86_400))
    divergence: bool = True
    lifecycle: bool = True
    """The daemon started and stopped."""
    daily_report: bool = True
    rejection_digest_s: float = field(default=60.0, metadata=_range(0, 86_400, above=True))
    min_interval_s: float = field(default=1.0, metadata=_range(0, 60))
    """Between two messages to one target: Telegram allows about one a second per chat;
    what queues meanwhile is merged into the next message."""
    queue_size: int = field(default=1_000, metadata=_range(1, 1_000_000))
    """Lines waiting per target; past it the oldest are dropped, counted, and the next
    message says how many."""
    timeout_s: float = field(default=10.0, metadata=_range(0, 300, above=True))
    """One HTTP request's limit."""
    retry_base_s: float = field(default=1.0, metadata=_range(0, 60, above=True))
    """The first pause after a 429, a 5xx or a connection failure; it doubles up to
    `retry_max_s`. A server's `retry_after` (body or header) is honoured when longer."""
    retry_max_s: float = field(default=60.0, metadata=_range(0, 3600, above=True))
    max_attempts: int = field(default=6, metadata=_range(1, 100))
    """Tries of one message before it is given up (logged and counted)."""
    telegram: TelegramConfig | None = None
    webhook: WebhookConfig | None = None


@dataclass(frozen=True)
class StrategyConfig:
    """One `[[strategies]]` table: a drop-in plugin (see strategies/README.md)."""

    name: str
    class_name: str = field(default="", metadata={"key": "class"})
    path: str | None = None
    entry_point: str | None = None
    symbols: tuple[str, ...] = ()
    bars: tuple[str, ...] = ()
    history: int = field(default=0, metadata=_range(0, 10_000))
    params: Mapping[str, Any] = field(default_factory=dict, metadata={"free_form": True})
    enabled: bool = True
    max_errors: int = field(default=10, metadata=_range(1, 1_000_000))
    """Exceptions from its handlers before the engine disables it."""
    budget_ms: float = field(default=50.0, metadata=_range(0.1, 60_000))
    """Time one handler call may take; `max_overruns` overruns in a row disable it."""
    max_overruns: int = field(default=5, metadata=_range(1, 1_000_000))
    max_rejections: int = field(default=100, metadata=_range(1, 1_000_000))
    """Orders refused (by risk or the broker, not by the trading state) within a minute
    before the engine disables it: a strategy that answers each refusal with a new order."""
    conditions: tuple[str, ...] = ()
    """Condition searches (조건검색) it watches from the start: a condition's name, or "seq:N"
    for its seq; their hits go to `on_condition` (strategies/README.md)."""
    realtime: tuple[RealtimeConfig, ...] = ()
    """Other Kiwoom realtime types this strategy receives in `on_realtime` (see
    strategies/README.md), e.g. `realtime = [{type = "0J", items = ["001"]}]`."""
    may_sell_external: bool = False
    """May sell the account's external shares (bought by hand or before the engine) as well
    as its own; never another strategy's (risk reason NOT_OWN_POSITION)."""


@dataclass(frozen=True)
class Config:
    kiwoom: KiwoomConfig = field(default_factory=KiwoomConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    data: DataConfig = field(default_factory=DataConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    admin: AdminConfig | None = None
    """The loopback endpoint; without an `[admin]` table there is none."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    strategies: tuple[StrategyConfig, ...] = ()
    mqtt: MqttConfig | None = None
    """None (no `[mqtt]` table): the mirror is off."""
    alerts: AlertsConfig | None = None
    """None (no `[alerts]` table): no notifications."""
    source: str = field(default="<defaults>", metadata={"internal": True})

    @property
    def rest_url(self) -> str:
        if self.kiwoom.rest_url:
            return self.kiwoom.rest_url.rstrip("/")
        if self.kiwoom.mode == "sim":
            return f"http://{self.sim.host}:{self.sim.port}"
        return HOSTS[self.kiwoom.mode][0]

    @property
    def journal_dir(self) -> Path:
        """Where the daemon keeps its journal: `daemon.state_dir`, or in mode sim with the
        built-in simulator (no `kiwoom.rest_url`) its `builtin-sim/` directory, started
        afresh with the simulator's empty books every run."""
        state = Path(self.daemon.state_dir)
        if self.kiwoom.mode == "sim" and not self.kiwoom.rest_url:
            return state / BUILTIN_SIM_DIR
        return state

    @property
    def reports_dir(self) -> Path:
        """`<daemon.state_dir>/reports`: the daily reports, one directory per day (kept
        across runs, also in mode sim)."""
        return Path(self.daemon.state_dir) / "reports"

    @property
    def ws_stale_s(self) -> float:
        """`kiwoom.ws_stale_s`, or a little over two PING intervals: the simulator's in mode
        sim, else KIWOOM_PING_INTERVAL_S."""
        if self.kiwoom.ws_stale_s is not None:
            return self.kiwoom.ws_stale_s
        ping = self.sim.ping_interval_s if self.kiwoom.mode == "sim" else KIWOOM_PING_INTERVAL_S
        return STALE_AFTER_PINGS * ping

    @property
    def ws_url(self) -> str:
        if self.kiwoom.ws_url:
            return self.kiwoom.ws_url
        if self.kiwoom.mode == "sim":
            return f"ws://{self.sim.host}:{self.sim.port}{WS_PATH}"
        return HOSTS[self.kiwoom.mode][1] + WS_PATH


# --- loading -------------------------------------------------------------------------------

SIM_APPKEY = "sim-appkey-not-secret"
SIM_SECRETKEY = "sim-secretkey-not-secret"


def load(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    with_secrets: bool = True,
) -> Config:
    """Load and validate a config file (or the defaults when `path` is None).

    Raises ConfigError naming the file and key path. Secrets are filled from `env`
    (default: os.environ) and systemd credentials; `with_secrets=False` leaves them unset, for
    commands that never talk to Kiwoom (`status`, `halt`, `resume` ask the running daemon).
    """
    env = os.environ if env is None else env
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read(path, source)
    kiwoom_raw = raw.get("kiwoom")
    if isinstance(kiwoom_raw, dict):
        for key in ("appkey", "secretkey"):
            if key in kiwoom_raw:
                raise ConfigError(
                    f"{source}: kiwoom.{key}: secrets are not read from files; set "
                    f"KIWOOM_{key.upper()} or the systemd credential '{key}'"
                )
    mqtt_raw = raw.get("mqtt")
    if isinstance(mqtt_raw, dict) and "password" in mqtt_raw:
        raise ConfigError(
            f"{source}: mqtt.password: secrets are not read from files; set "
            "KIWOOM_MQTT_PASSWORD or the systemd credential 'mqtt_password'"
        )
    _refuse_alert_secrets(raw.get("alerts"), source)
    cfg = _build(Config, raw, "", source)
    cfg = dataclasses.replace(cfg, source=source)
    if cfg.kiwoom.mode == "mock" and cfg.daemon.venue != "KRX":
        raise ConfigError(
            f"{source}: daemon.venue: mode mock takes KRX orders only (Kiwoom's paper "
            f'trading has no NXT or SOR), got "{cfg.daemon.venue}"'
        )
    return _with_secrets(cfg, env, source) if with_secrets else cfg


_ALERT_SECRETS = (
    ("telegram", "token", "KIWOOM_TELEGRAM_TOKEN", "telegram_token"),
    ("webhook", "url", "KIWOOM_WEBHOOK_URL", "webhook_url"),
)
"""(table under [alerts], key, environment variable, systemd credential) of each secret."""


def _refuse_alert_secrets(alerts: Any, source: str) -> None:
    if not isinstance(alerts, dict):
        return
    for table, key, var, cred in _ALERT_SECRETS:
        sub = alerts.get(table)
        if isinstance(sub, dict) and key in sub:
            raise ConfigError(
                f"{source}: alerts.{table}.{key}: secrets are not read from files; set "
                f"{var} or the systemd credential '{cred}'"
            )


def _read(path: str | os.PathLike[str], source: str) -> dict[str, Any]:
    """The file's TOML tables; ConfigError for anything that is not a readable UTF-8 TOML
    file (missing, a directory, no permission, binary, too deeply nested)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as e:  # a directory, no permission, a loop of symlinks, ...
        reason = e.strerror or type(e).__name__
        raise ConfigError(f"{source}: cannot read the file: {reason}") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(f"{source}: cannot read the file: not a valid path") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{source}: not a UTF-8 text file (invalid byte at offset {e.start})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    except ValueError:  # tomllib's int() of an integer past Python's 4300-digit limit
        raise ConfigError(f"{source}: not valid TOML: a number too long to read") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None


def _secret(env: Mapping[str, str], source: str, key_path: str, name: str) -> str:
    """The secret from `KIWOOM_<NAME>` or the systemd credential `name`; "" when neither."""
    value = env.get(f"KIWOOM_{name.upper()}", "").strip()
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not value and cred_dir:
        p = Path(cred_dir) / name
        if p.is_file():
            try:
                value = p.read_text().strip()
            except (OSError, UnicodeDecodeError) as e:
                # The reason only (permission, encoding): never a byte of the content.
                raise ConfigError(
                    f"{source}: {key_path}: cannot read the systemd credential {p}: "
                    f"{type(e).__name__}"
                ) from None
    return value


def _with_secrets(cfg: Config, env: Mapping[str, str], source: str) -> Config:
    found: dict[str, Secret] = {}
    for key in ("appkey", "secretkey"):
        value = _secret(env, source, f"kiwoom.{key}", key)
        if not value and cfg.kiwoom.mode == "sim":
            value = SIM_APPKEY if key == "appkey" else SIM_SECRETKEY
        if not value:
            raise ConfigError(
                f"{source}: kiwoom.{key}: missing for mode {cfg.kiwoom.mode!r}; set "
                f"KIWOOM_{key.upper()} or the systemd credential '{key}'"
            )
        found[key] = Secret(value)
    kiwoom = dataclasses.replace(cfg.kiwoom, appkey=found["appkey"], secretkey=found["secretkey"])
    cfg = dataclasses.replace(cfg, kiwoom=kiwoom)
    if cfg.alerts is not None:
        cfg = dataclasses.replace(cfg, alerts=_alert_secrets(cfg.alerts, env, source))
    if cfg.mqtt is not None:
        password = _secret(env, source, "mqtt.password", "mqtt_password")
        if password:
            cfg = dataclasses.replace(
                cfg, mqtt=dataclasses.replace(cfg.mqtt, password=Secret(password))
            )
    return cfg


def _alert_secrets(alerts: AlertsConfig, env: Mapping[str, str], source: str) -> AlertsConfig:
    """The Telegram token and the webhook URL of the targets configured; a target without
    its secret is an error naming the key. The redactor scrubs the webhook URL's path (its
    secret part); its scheme and host stay readable in the logs."""
    telegram, webhook = alerts.telegram, alerts.webhook
    if telegram is not None:
        token = _secret(env, source, "alerts.telegram.token", "telegram_token")
        if not token:
            raise ConfigError(
                f"{source}: alerts.telegram.token: missing; set KIWOOM_TELEGRAM_TOKEN or the "
                "systemd credential 'telegram_token'"
            )
        telegram = dataclasses.replace(telegram, token=Secret(token))
    if webhook is not None and webhook.enabled:
        url = _secret(env, source, "alerts.webhook.url", "webhook_url")
        if not url:
            raise ConfigError(
                f"{source}: alerts.webhook.url: missing; set KIWOOM_WEBHOOK_URL or the "
                "systemd credential 'webhook_url'"
            )
        scheme, sep, rest = url.partition("://")
        host, _slash, path = rest.partition("/")
        if not sep or scheme not in ("http", "https") or not host:
            # Not quoted: the URL is the secret.
            raise ConfigError(
                f"{source}: alerts.webhook.url: expected an http:// or https:// URL (from "
                "KIWOOM_WEBHOOK_URL or the credential 'webhook_url')"
            )
        # The path and query hold the secret (Slack's /services/T../B../..., Discord's
        # /api/webhooks/<id>/<token>); a URL without one, or with a user:password@ before its
        # host, is all secret.
        public = path and "@" not in host
        webhook = dataclasses.replace(
            webhook, url=Secret(url, redact="/" + path if public else None)
        )
    return dataclasses.replace(alerts, telegram=telegram, webhook=webhook)


def _build(cls: type[Any], raw: Any, path: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {path or '<root>'}: expected a table, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    # The file's key for each field: its name, or metadata "key" where the name would be a
    # Python keyword (`class`).
    fields = {
        f.metadata.get("key", f.name): f
        for f in dataclasses.fields(cls)
        if not f.metadata.get("secret") and not f.metadata.get("internal")
    }
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{path}.{_cut(unknown[0])}" if path else _cut(unknown[0])
        raise ConfigError(f"{source}: {where}: unknown key (known: {', '.join(sorted(fields))})")
    for key, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and key not in raw:
            where = f"{path}.{key}" if path else key
            raise ConfigError(f"{source}: {where}: missing (required)")
    values = {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else key  # a known field: nothing to escape
        f = fields[key]
        if f.metadata.get("free_form"):
            values[f.name] = _free_form(value, key_path, source)
        elif (
            f.metadata.get("int_as_str") and isinstance(value, int) and not isinstance(value, bool)
        ):
            values[f.name] = str(value)
        else:
            values[f.name] = _coerce(hints[f.name], value, key_path, source)
        _check(f.metadata, values[f.name], key_path, source)
    for key, f in fields.items():
        rival = f.metadata.get(_OFF_WHEN_SET)
        if rival is None or rival not in raw:
            continue
        if key not in raw:
            values[f.name] = False
        elif values[f.name]:
            where = f"{path}." if path else ""
            raise ConfigError(
                f"{source}: {where}{rival} and {where}{key}: both set; {rival} is a flat rate and "
                f"{key} = true the published table (the default): keep one"
            )
    return cls(**values)


def _free_form(value: Any, path: str, source: str) -> Any:
    """A table the program does not know the shape of (a strategy's params): any TOML values,
    made read-only; nan and inf are refused as everywhere else."""
    if isinstance(value, dict):
        return types.MappingProxyType(
            {k: _free_form(v, f"{path}.{k}", source) for k, v in value.items()}
        )
    if isinstance(value, list):
        return tuple(_free_form(v, f"{path}[{i}]", source) for i, v in enumerate(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {path}: expected a finite number, got {value}")
    return value


def _check(meta: Mapping[str, Any], value: Any, path: str, source: str) -> None:
    """Apply a field's metadata constraints (ranges, URL schemes, api-ids) to a coerced value."""
    if value is None:
        return
    if "range" in meta:
        lo, hi, above = meta["range"]
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, v in items:
            where = path if key is None else f"{path}.{_cut(key)}"
            if (v <= lo if above else v < lo) or v > hi:
                want = describe_range(lo, hi, above)
                raise ConfigError(f"{source}: {where}: must be {want}, got {_show(v)}")
    if meta.get("dates"):
        # Refused here so that `check` names the key; the calendar would fail only at start.
        for i, text in enumerate(value):
            try:
                parse_day(text)
            except ValueError:
                raise ConfigError(
                    f"{source}: {path}[{i}]: expected a date YYYY-MM-DD, got {_show(text)}"
                ) from None
    if meta.get("loopback") and not is_loopback(value):
        raise ConfigError(
            f"{source}: {path}: must be a loopback address (127.0.0.1, ::1 or localhost): the "
            f"endpoint has no authentication, got {_show(value)}"
        )
    if meta.get("realtime_type"):
        if value not in catalog.realtime_types():
            raise ConfigError(
                f"{source}: {path}: not a realtime type in Kiwoom's catalogue, got {_show(value)}"
            )
        if value in fids.MODELLED_TYPES:
            raise ConfigError(
                f"{source}: {path}: {_show(value)} has its own handler (on_trade, on_quote, "
                "on_book, on_vi, on_session...), not on_realtime"
            )
    if meta.get("non_empty") and not value:
        raise ConfigError(f"{source}: {path}: must not be empty")
    if meta.get(_MQTT_PREFIX):
        problem = mqtt_prefix_problem(value)
        if problem:
            raise ConfigError(f"{source}: {path}: {problem}, got {_show(value)}")
    schemes = meta.get(_URL_SCHEMES)
    if schemes:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest.strip("/"):
            raise ConfigError(
                f"{source}: {path}: expected a {' or '.join(s + '://' for s in schemes)} URL, "
                f"got {_show(value)}"
            )
    if "api_ids" in meta:
        # A typo here would be ignored silently (no pacing / no caching for the real api-id).
        specs = catalog.all_specs()
        for api_id in value:
            spec = specs.get(api_id)
            if spec is None:
                raise ConfigError(
                    f"{source}: {path}.{_cut(api_id)}: unknown api-id (see `kiwoom-engine apis`)"
                )
            if meta["api_ids"] == "cacheable" and spec.is_account_or_order:
                raise ConfigError(
                    f"{source}: {path}.{api_id}: account and order calls are never cached"
                )


def is_loopback(host: str) -> bool:
    """`host` is this machine only: "localhost" or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mqtt_prefix_problem(prefix: str) -> str:
    """Why `prefix` cannot start every topic the mirror publishes, or "" when it can."""
    if not prefix:
        return "must not be empty"
    if any(c in prefix for c in "+#\0"):
        return "must not contain the wildcards + or # (or NUL)"
    if prefix.startswith("$"):
        return "must not start with $ (reserved for the broker)"
    if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        return "must not have empty topic levels (a leading, trailing or doubled /)"
    if len(prefix.encode()) > 1024:
        return "must be at most 1024 bytes"
    return ""


def _coerce(tp: Any, value: Any, path: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, path, source)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(non_none[0], value, path, source)
    if origin is Literal:
        if value in args:
            return value
        choices = "|".join(str(a) for a in args)
        raise ConfigError(f"{source}: {path}: expected one of {choices}, got {_show(value)}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path}: expected a list, got {_show(value)}")
        return tuple(_coerce(args[0], v, f"{path}[{i}]", source) for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {path}: expected a table, got {_show(value)}")
        return types.MappingProxyType(
            {k: _coerce(args[1], v, f"{path}.{_cut(k)}", source) for k, v in value.items()}
        )
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) > _FLOAT_INT_LIMIT:
                # TOML integers are unbounded; float() of one past 1e308 raises OverflowError
                raise ConfigError(f"{source}: {path}: number too large, got {_show(value)}")
            if not math.isfinite(value):  # TOML has nan and inf
                raise ConfigError(f"{source}: {path}: expected a finite number, got {value}")
            return float(value)
        raise ConfigError(f"{source}: {path}: expected a number, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {path}: expected an integer, got {_show(value)}")
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
        kind = "true or false" if tp is bool else "a string"
        raise ConfigError(f"{source}: {path}: expected {kind}, got {_show(value)}")
    raise ConfigError(f"{source}: {path}: unsupported setting type {tp!r}")  # pragma: no cover


_FLOAT_INT_LIMIT = 10**300
_SHOWN_CHARS = 60
"""Keys and values are quoted from the file up to this length: enough to recognise them, and a
megabyte of value never reaches the terminal."""


def _cut(text: str) -> str:
    """A key or string value from the file, as a message quotes it."""
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _printable(text: str) -> str:
    """`text` on one line with nothing a terminal would act on: control and format characters
    (newline, ESC, bidi overrides, line separators) are shown as escapes."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{_cut(value)}"'
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**_SHOWN_CHARS:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)
