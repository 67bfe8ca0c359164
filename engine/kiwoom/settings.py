"""The Kiwoom client's own settings: what the REST client, the governor and the realtime feed
each need, as frozen values.

The one place where `config.toml`'s `[kiwoom]` (and `[sim]`, for the simulator's address and
PING) becomes those values (`from_config`). The clients never see the whole `Config`, so
they can be built by a backtest, a benchmark or a test without one, and `engine.kiwoom`
imports nothing of the configuration at run time (the `Config` named here is a type only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from engine.kiwoom.errors import ValidationError
from engine.secrets import Secret

if TYPE_CHECKING:
    from engine.config import Config, Mode, RateConfig

_T = TypeVar("_T")


def _filled(value: _T | None) -> _T:
    """A value `RateConfig.effective` has filled in (it fills every one)."""
    assert value is not None
    return value


@dataclass(frozen=True, slots=True)
class GovernorSettings:
    """Client-side pacing, in requests per second and bucket sizes (every value set: the
    mode's defaults are already applied)."""

    account_per_s: float
    account_burst: int
    per_api_per_s: float
    """Queries, per api-id."""
    per_api_burst: int
    order_per_api_per_s: float
    """Order-placing TRs, per api-id."""
    order_per_api_burst: int
    per_api: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Per api-id overrides of the two per-api rates."""

    @classmethod
    def from_rate(cls, rate: RateConfig, mode: Mode) -> GovernorSettings:
        """`[kiwoom.rate]` with the defaults of `mode` ("live", "mock", "sim") filled in."""
        e = rate.effective(mode)
        return cls(
            _filled(e.account_per_s),
            _filled(e.account_burst),
            _filled(e.per_api_per_s),
            _filled(e.per_api_burst),
            _filled(e.order_per_api_per_s),
            _filled(e.order_per_api_burst),
            e.per_api,
        )


@dataclass(frozen=True, slots=True)
class RestSettings:
    """Everything `KiwoomRest` needs: where, with which keys, how long to wait, how to pace,
    retry and cache."""

    rest_url: str
    appkey: Secret
    secretkey: Secret
    governor: GovernorSettings
    request_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    token_refresh_margin_s: float = 300.0
    max_pages: int = 100
    rate_backoff_base_s: float = 0.5
    """First pause after a rate-limit refusal; doubles up to `rate_backoff_max_s`."""
    rate_backoff_max_s: float = 8.0
    max_rate_limit_retries: int = 8
    retry_max_attempts: int = 4
    """Attempts of a query (never of an order) on 5xx, timeouts and resets."""
    retry_base_delay_s: float = 0.2
    """Also the first pause between token requests, which double from there."""
    retry_max_delay_s: float = 5.0
    cache_ttl_s: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(cls, cfg: Config) -> RestSettings:
        """The REST client `cfg` describes. Raises ValidationError when the keys are not set
        (`config.load` fills them; `with_secrets=False` leaves them out)."""
        k = cfg.kiwoom
        if k.appkey is None or k.secretkey is None:
            raise ValidationError("kiwoom.appkey/secretkey are not set (see config.load)")
        return cls(
            rest_url=cfg.rest_url,
            appkey=k.appkey,
            secretkey=k.secretkey,
            governor=GovernorSettings.from_rate(k.rate, k.mode),
            request_timeout_s=k.request_timeout_s,
            connect_timeout_s=k.connect_timeout_s,
            token_refresh_margin_s=k.token_refresh_margin_s,
            max_pages=k.max_pages,
            rate_backoff_base_s=k.rate.backoff_base_s,
            rate_backoff_max_s=k.rate.backoff_max_s,
            max_rate_limit_retries=k.rate.max_rate_limit_retries,
            retry_max_attempts=k.retry.max_attempts,
            retry_base_delay_s=k.retry.base_delay_s,
            retry_max_delay_s=k.retry.max_delay_s,
            cache_ttl_s=k.cache.ttl_s,
        )


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """The realtime feed's address and its connection and silence rules."""

    url: str
    connect_timeout_s: float = 5.0
    stale_after_s: float = 45.0
    stale_grace_s: float = 10.0
    compression: bool = True
    max_realtime_conditions: int = 10

    @classmethod
    def from_config(cls, cfg: Config) -> FeedSettings:
        """The feed `cfg` describes (`Config.ws_stale_s` picks the PING interval's multiple
        when `kiwoom.ws_stale_s` is not set)."""
        return cls(
            url=cfg.ws_url,
            connect_timeout_s=cfg.kiwoom.connect_timeout_s,
            stale_after_s=cfg.ws_stale_s,
            stale_grace_s=cfg.kiwoom.ws_stale_grace_s,
            compression=cfg.kiwoom.ws_compression,
            max_realtime_conditions=cfg.kiwoom.max_realtime_conditions,
        )
