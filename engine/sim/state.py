"""Everything a running simulator shares: config, clock, tokens, faults, data and handlers.

`build_state()` wires the REST side (OAuth, market data, schema answers for the rest); the
exchange and realtime parts add their handlers and objects to the same SimState.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import SimConfig
from engine.kiwoom.catalog import ApiSpec, all_specs
from engine.sim.faults import Faults
from engine.sim.marketdata import Marketdata
from engine.sim.oauth import oauth_handlers
from engine.sim.ratelimit import RateLimiter
from engine.sim.reply import RestHandler
from engine.sim.stamps import Stamps
from engine.sim.tokens import TokenStore
from engine.sim.universe import Universe


class Feed(Protocol):
    """The simulator's WebSocket side, as the REST front door needs it."""

    async def flush(self) -> None:
        """Return once everything published so far was written to every session."""


@dataclass
class SimState:
    config: SimConfig
    clock: Clock
    tokens: TokenStore
    faults: Faults
    universe: Universe
    marketdata: Marketdata
    catalog: Mapping[str, ApiSpec]
    rate_limiter: RateLimiter
    rest_rate_per_s: float
    """Per api-id requests per second before HTTP 429 (from config; tests may change it live)."""
    rest_burst: int
    rest_handlers: dict[str, RestHandler] = field(default_factory=dict)
    """api-id -> handler; catalogue api-ids without one get a schema-shaped answer."""
    request_counts: Counter[str] = field(default_factory=Counter)
    """Requests that arrived per api-id (every one, refused or not); api-ids outside the
    catalogue all count under rest.UNKNOWN_API_ID."""
    handled_counts: Counter[str] = field(default_factory=Counter)
    """Requests per api-id that passed every check and were handled (an order was taken)."""
    feed: Feed | None = None
    """The WebSocket side, flushed before an order's answer when its pushes go first (set by
    the composed Simulator)."""
    stamps: Stamps | None = None
    """Latency stamps (sim.stamp_file), or None: off."""

    def expire_tokens(self) -> None:
        """Invalidate every issued token now (the fault "all tokens expired")."""
        self.tokens.expire_all()

    def set_rate(self, per_s: float, burst: int) -> None:
        """Change the per-api-id limit on the fly; buckets restart full."""
        self.rest_rate_per_s = per_s
        self.rest_burst = burst
        self.rate_limiter.reset()


def build_state(config: SimConfig, clock: Clock = SYSTEM_CLOCK) -> SimState:
    """A fresh simulator state for `config`. Reads the catalogue (package data) once."""
    universe = Universe(config.seed, config.symbols)
    marketdata = Marketdata(universe, clock)
    tokens = TokenStore(clock, config.token_ttl_s)
    state = SimState(
        config=config,
        clock=clock,
        tokens=tokens,
        faults=Faults(
            ws_system_frames_before_login=config.system_frames_before_login,
            order_push_first=config.order_push_first,
        ),
        universe=universe,
        marketdata=marketdata,
        catalog=all_specs(),
        rate_limiter=RateLimiter(clock),
        rest_rate_per_s=config.rest_rate_per_s,
        rest_burst=config.rest_burst,
    )
    state.rest_handlers.update(oauth_handlers(tokens))
    state.rest_handlers.update(marketdata.handlers())
    return state
