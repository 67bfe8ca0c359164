"""config.toml loading: the shipped file works with no credentials; nonsense is refused by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine import config
from engine.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_shipped_config_runs_in_sim_mode_without_credentials() -> None:
    cfg = config.load(ROOT / "config.toml", env={})
    assert cfg.kiwoom.mode == "sim"
    assert cfg.rest_url == f"http://127.0.0.1:{cfg.sim.port}"
    assert cfg.ws_url.endswith("/api/dostk/websocket")
    assert cfg.kiwoom.appkey is not None
    assert cfg.kiwoom.appkey.reveal()


def test_config_is_frozen() -> None:
    cfg = config.load(None, env={})
    with pytest.raises(AttributeError):
        cfg.kiwoom.mode = "live"  # type: ignore[misc]


STRATEGY = '[[strategies]]\nname = "s"\npath = "s.py"\nclass = "S"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[kiwoom]\nmode = "prod"\n', 'kiwoom.mode: expected one of sim|mock|live, got "prod"'),
        ("[kiwoom]\nmodee = 1\n", "kiwoom.modee: unknown key"),
        ("[kiwoom.rate]\naccount_per_s = true\n", "kiwoom.rate.account_per_s: expected a number"),
        ('[sim]\nport = "80"\n', 'sim.port: expected an integer, got "80"'),
        ("[sim]\nsymbols = [1]\n", "sim.symbols[0]: expected a string, got 1"),
        ("kiwoom = 3\n", "kiwoom: expected a table, got 3"),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("[kiwoom\n", "not valid TOML"),
        ('[kiwoom]\nappkey = "abc"\n', "kiwoom.appkey: secrets are not read from files"),
        # Issue 15: venues and other realtime types.
        ('[daemon]\nvenue = "NYSE"\n', 'daemon.venue: expected one of KRX|NXT|SOR, got "NYSE"'),
        ("[risk]\nrefuse_market_under_vi = 1\n", "risk.refuse_market_under_vi: expected true"),
        (
            STRATEGY + 'realtime = [{type = "ZZ", items = ["001"]}]\n',
            "strategies[0].realtime[0].type: not a realtime type in Kiwoom's catalogue",
        ),
        (
            STRATEGY + 'realtime = [{type = "0B", items = ["005930"]}]\n',
            'strategies[0].realtime[0].type: "0B" has its own handler',
        ),
        (STRATEGY + 'realtime = [{type = "0J", items = []}]\n', "realtime[0].items: must not"),
        (STRATEGY + 'realtime = [{type = "0J"}]\n', "strategies[0].realtime[0].items: missing"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load(p, env={})
    assert str(p) in str(exc.value)
    assert message in str(exc.value)


def test_a_strategys_realtime_types_load(tmp_path: Path) -> None:
    p = write(tmp_path, STRATEGY + 'realtime = [{type = "0J", items = ["001", "101"]}]\n')
    (sc,) = config.load(p, env={}).strategies
    assert [(r.type, r.items) for r in sc.realtime] == [("0J", ("001", "101"))]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        config.load(tmp_path / "nope.toml", env={})


def test_live_mode_requires_credentials(tmp_path: Path) -> None:
    p = write(tmp_path, '[kiwoom]\nmode = "live"\n')
    with pytest.raises(ConfigError, match=r"kiwoom\.appkey: missing for mode 'live'"):
        config.load(p, env={})


def test_credentials_from_environment(tmp_path: Path) -> None:
    p = write(tmp_path, '[kiwoom]\nmode = "mock"\n')
    cfg = config.load(p, env={"KIWOOM_APPKEY": "app-123456", "KIWOOM_SECRETKEY": "sec-654321"})
    assert cfg.kiwoom.appkey is not None
    assert cfg.kiwoom.appkey.reveal() == "app-123456"
    assert "app-123456" not in repr(cfg)
    assert cfg.rest_url == "https://mockapi.kiwoom.com"
    assert cfg.ws_url == "wss://mockapi.kiwoom.com:10000/api/dostk/websocket"


def test_credentials_from_systemd_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "appkey").write_text("cred-appkey-1\n")
    (creds / "secretkey").write_text("cred-secret-1\n")
    p = write(tmp_path, '[kiwoom]\nmode = "live"\nrest_url = "https://example.invalid/"\n')
    cfg = config.load(p, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.kiwoom.secretkey is not None
    assert cfg.kiwoom.secretkey.reveal() == "cred-secret-1"
    assert cfg.rest_url == "https://example.invalid"


def test_rate_defaults_follow_the_mode() -> None:
    rate = config.RateConfig()
    live = rate.effective("live")
    assert (live.account_per_s, live.per_api_per_s, live.per_api_burst) == (5.0, 1.0, 2)
    assert live.order_per_api_per_s == 5.0
    assert rate.effective("mock").account_per_s == 1.0
    assert config.RateConfig(account_per_s=2.5).effective("live").account_per_s == 2.5


def test_mapping_settings_load(tmp_path: Path) -> None:
    p = write(tmp_path, "[kiwoom.cache.ttl_s]\nka10001 = 2\n[kiwoom.rate.per_api]\nka10081 = 1\n")
    cfg = config.load(p, env={})
    assert cfg.kiwoom.cache.ttl_s == {"ka10001": 2.0}
    assert cfg.kiwoom.rate.per_api["ka10081"] == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # zero would mean "no timeout" to aiohttp: an order POST that never ends
        (
            "[kiwoom]\nrequest_timeout_s = 0\n",
            "kiwoom.request_timeout_s: must be > 0 and <= 300, got 0.0",
        ),
        ("[kiwoom]\nconnect_timeout_s = -1\n", "kiwoom.connect_timeout_s: must be > 0 and <= 60"),
        ("[kiwoom]\nmax_pages = 0\n", "kiwoom.max_pages: must be between 1 and 10000, got 0"),
        ("[kiwoom]\nrequest_timeout_s = nan\n", "kiwoom.request_timeout_s: expected a finite"),
        ("[kiwoom]\ntoken_refresh_margin_s = inf\n", "token_refresh_margin_s: expected a finite"),
        # a zero rate divides by zero in the governor
        (
            "[kiwoom.rate]\naccount_per_s = 0\n",
            "kiwoom.rate.account_per_s: must be > 0 and <= 1000",
        ),
        (
            "[kiwoom.rate]\nper_api_burst = 0\n",
            "kiwoom.rate.per_api_burst: must be between 1 and 1000",
        ),
        (
            "[kiwoom.rate.per_api]\nka10081 = 0\n",
            "kiwoom.rate.per_api.ka10081: must be > 0 and <= 1000",
        ),
        ("[kiwoom.rate.per_api]\nka1008 = 1\n", "kiwoom.rate.per_api.ka1008: unknown api-id"),
        (
            "[kiwoom.retry]\nmax_attempts = 0\n",
            "kiwoom.retry.max_attempts: must be between 1 and 10",
        ),
        (
            "[kiwoom.cache.ttl_s]\nka10001 = -5\n",
            "kiwoom.cache.ttl_s.ka10001: must be between 0 and 86400",
        ),
        ("[kiwoom.cache.ttl_s]\nka1001 = 5\n", "kiwoom.cache.ttl_s.ka1001: unknown api-id"),
        ("[kiwoom.cache.ttl_s]\nkt00018 = 5\n", "kiwoom.cache.ttl_s.kt00018: account and order"),
        ('[kiwoom]\nrest_url = "api.kiwoom.com"\n', "kiwoom.rest_url: expected a http:// or"),
        ('[kiwoom]\nws_url = "https://x/y"\n', "kiwoom.ws_url: expected a ws:// or wss://"),
        ("[sim]\nport = 70000\n", "sim.port: must be between 0 and 65535, got 70000"),
        ("[sim]\nport = -1\n", "sim.port: must be between 0 and 65535, got -1"),
        ("[sim]\nping_interval_s = 0\n", "sim.ping_interval_s: must be > 0 and <= 3600"),
        ("[sim]\nrest_rate_per_s = 0\n", "sim.rest_rate_per_s: must be > 0 and <= 100000"),
        ("[sim]\nsymbols = []\n", "sim.symbols: must not be empty"),
        ("[sim]\ncash = -1\n", "sim.cash: must be between 0 and 10_000_000_000_000"),
        ("[sim]\nsell_tax_bp = 20000\n", "sim.sell_tax_bp: must be between 0 and 10000"),
        # TOML shapes: arrays of tables, nested unknown tables, floats for ints
        ("[[kiwoom]]\nmode = 'sim'\n", "kiwoom: expected a table, got a list"),
        ("[kiwoom.rate.extra]\nx = 1\n", "kiwoom.rate.extra: unknown key"),
        ("[sim]\nport = 18765.0\n", "sim.port: expected an integer, got 18765.0"),
        ("[kiwoom.retry]\nmax_attempts = 4.5\n", "kiwoom.retry.max_attempts: expected an integer"),
    ],
)
def test_values_that_would_break_later_are_refused_by_name(
    tmp_path: Path, text: str, message: str
) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load(p, env={})
    assert str(p) in str(exc.value)
    assert message in str(exc.value)


def test_integers_are_taken_where_floats_are_expected(tmp_path: Path) -> None:
    p = write(tmp_path, "[kiwoom]\nrequest_timeout_s = 3\n[sim]\nport = 0\n")
    cfg = config.load(p, env={})
    assert cfg.kiwoom.request_timeout_s == 3.0
    assert isinstance(cfg.kiwoom.request_timeout_s, float)
    assert cfg.sim.port == 0  # any free port


def test_defaults_pass_their_own_checks(tmp_path: Path) -> None:
    # Defaults written out into a file load back unchanged: the checks and the defaults agree.
    p = write(
        tmp_path,
        "[kiwoom]\nrequest_timeout_s = 10.0\nmax_pages = 100\n"
        "[kiwoom.cache.ttl_s]\nka10001 = 5.0\nka10099 = 3600.0\nka10100 = 3600.0\n",
    )
    defaults = dataclasses.replace(config.load(None, env={}), source=str(p))
    assert config.load(p, env={}) == defaults


def test_feed_staleness_defaults_to_a_little_over_two_ping_intervals(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "[sim]\nping_interval_s = 4.0\n"), env={})
    assert cfg.kiwoom.ws_stale_s is None
    assert cfg.ws_stale_s == 9.0  # mode sim: the simulator's own PING interval
    live = config.load(
        write(tmp_path, '[kiwoom]\nmode = "live"\n'),
        env={"KIWOOM_APPKEY": "k" * 20, "KIWOOM_SECRETKEY": "s" * 20},
    )
    assert live.ws_stale_s == 2.25 * config.KIWOOM_PING_INTERVAL_S
    cfg = config.load(
        write(tmp_path, "[kiwoom]\nws_stale_s = 12.5\nws_stale_grace_s = 3\n"), env={}
    )
    assert (cfg.ws_stale_s, cfg.kiwoom.ws_stale_grace_s) == (12.5, 3.0)
    for bad in ("ws_stale_s = 0", "ws_stale_s = 1e9", "ws_stale_grace_s = -1"):
        with pytest.raises(ConfigError, match=f"kiwoom.{bad.split()[0]}: must be"):
            config.load(write(tmp_path, f"[kiwoom]\n{bad}\n"), env={})


def test_unreadable_credential_is_named_without_its_content(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "appkey").write_bytes(b"\xff\xfesecret-bytes")
    p = write(tmp_path, '[kiwoom]\nmode = "live"\n')
    with pytest.raises(ConfigError) as exc:
        config.load(p, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert f"kiwoom.appkey: cannot read the systemd credential {creds / 'appkey'}" in str(exc.value)
    assert "secret-bytes" not in str(exc.value)


def test_credential_from_environment_is_stripped(tmp_path: Path) -> None:
    p = write(tmp_path, '[kiwoom]\nmode = "mock"\n')
    cfg = config.load(p, env={"KIWOOM_APPKEY": "app-123456\n", "KIWOOM_SECRETKEY": "sec-654321 "})
    assert cfg.kiwoom.appkey is not None
    assert cfg.kiwoom.secretkey is not None
    assert (cfg.kiwoom.appkey.reveal(), cfg.kiwoom.secretkey.reveal()) == (
        "app-123456",
        "sec-654321",
    )
