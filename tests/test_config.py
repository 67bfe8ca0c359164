"""config.toml loading: the shipped file works with no credentials; nonsense is refused by name."""

from __future__ import annotations

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
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load(p, env={})
    assert str(p) in str(exc.value)
    assert message in str(exc.value)


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
