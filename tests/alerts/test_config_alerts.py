"""`[alerts]` in config.toml: the targets' secrets come from the environment or systemd
credentials, never the file; a missing one is an error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import config, secrets
from engine.config import ConfigError

TOKEN = "7000000001:AAconfigTestTokenZx81Qw"
HOOK = "https://hooks.example.com/services/T01/B02/cfgHookSecretK9s2"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[alerts.telegram]\nchat_id = "1"\ntoken = "123:abc"\n',
            "alerts.telegram.token: secrets are not read from files; set KIWOOM_TELEGRAM_TOKEN "
            "or the systemd credential 'telegram_token'",
        ),
        (
            '[alerts.webhook]\nurl = "https://hooks.example.com/x"\n',
            "alerts.webhook.url: secrets are not read from files; set KIWOOM_WEBHOOK_URL "
            "or the systemd credential 'webhook_url'",
        ),
        ("[alerts.telegram]\n", "alerts.telegram.chat_id: missing (required)"),
        ('[alerts]\nfills = "yes"\n', "alerts.fills: expected true or false"),
        ("[alerts]\nfeed_down_after_s = -1\n", "alerts.feed_down_after_s: must be between 0"),
        ("[alerts]\nfeeds = true\n", "alerts.feeds: unknown key"),
        (
            '[alerts.telegram]\nchat_id = "1"\napi_url = "ftp://x"\n',
            "alerts.telegram.api_url: expected a http:// or https:// URL",
        ),
    ],
)
def test_bad_alerts_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load(p, env={"KIWOOM_TELEGRAM_TOKEN": TOKEN})
    assert str(p) in str(exc.value)
    assert message in str(exc.value)
    assert "123:abc" not in str(exc.value)
    assert "hooks.example.com/x" not in str(exc.value)


def test_a_target_without_its_secret_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "[alerts.telegram]\nchat_id = -100123\n")
    with pytest.raises(
        ConfigError, match=r"alerts\.telegram\.token: missing; set KIWOOM_TELEGRAM_TOKEN"
    ):
        config.load(p, env={})
    p = write(tmp_path, "[alerts.webhook]\n")
    with pytest.raises(ConfigError, match=r"alerts\.webhook\.url: missing; set KIWOOM_WEBHOOK_URL"):
        config.load(p, env={})
    p = write(tmp_path, "[alerts.webhook]\n")
    with pytest.raises(ConfigError, match=r"alerts\.webhook\.url: expected an http") as exc:
        config.load(p, env={"KIWOOM_WEBHOOK_URL": "not-a-url-secretish"})
    assert "not-a-url-secretish" not in str(exc.value)
    # Commands that only ask the running daemon (status, halt) need no secret.
    assert config.load(p, env={}, with_secrets=False).alerts is not None


def test_secrets_from_the_environment_are_kept_and_redacted(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "[alerts]\nfills = false\nfeed_down_after_s = 45\n"
        "[alerts.telegram]\nchat_id = -1001234567890\n[alerts.webhook]\n",
    )
    cfg = config.load(p, env={"KIWOOM_TELEGRAM_TOKEN": TOKEN, "KIWOOM_WEBHOOK_URL": HOOK})
    alerts = cfg.alerts
    assert alerts is not None
    assert alerts.telegram is not None
    assert alerts.webhook is not None
    assert alerts.fills is False
    assert alerts.halts is True
    assert alerts.feed_down_after_s == 45.0
    assert alerts.telegram.chat_id == "-1001234567890"  # a TOML integer, kept as the id
    assert alerts.telegram.api_url == "https://api.telegram.org"
    assert alerts.telegram.token is not None
    assert alerts.telegram.token.reveal() == TOKEN
    assert alerts.webhook.url is not None
    assert alerts.webhook.url.reveal() == HOOK
    assert TOKEN not in repr(cfg)
    assert "cfgHookSecret" not in repr(cfg)
    line = f"POST {HOOK} and https://api.telegram.org/bot{TOKEN}/sendMessage failed"
    scrubbed = secrets.scrub(line)
    assert TOKEN not in scrubbed
    assert "cfgHookSecret" not in scrubbed
    assert "/services/T01" not in scrubbed
    # The host stays readable: only the URL's path is the webhook's secret.
    assert "https://hooks.example.com***" in scrubbed


def test_a_webhook_url_with_a_password_before_its_host_is_all_secret(tmp_path: Path) -> None:
    url = "https://hookuser:pw4Kq9@hooks.example.net/hooks/incoming/aB3dE5gH7jK9mN1p"
    p = write(tmp_path, "[alerts.webhook]\n")
    cfg = config.load(p, env={"KIWOOM_WEBHOOK_URL": url})
    assert cfg.alerts is not None
    assert cfg.alerts.webhook is not None
    assert cfg.alerts.webhook.url is not None
    assert cfg.alerts.webhook.url.reveal() == url
    scrubbed = secrets.scrub(f"ClientConnectorError: cannot connect to {url}")
    assert "pw4Kq9" not in scrubbed
    assert "aB3dE5gH7jK9mN1p" not in scrubbed
    assert scrubbed == "ClientConnectorError: cannot connect to ***"


def test_secrets_from_systemd_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram_token").write_text(TOKEN + "\n")
    (creds / "webhook_url").write_text(HOOK + "\n")
    p = write(tmp_path, '[alerts.telegram]\nchat_id = "@mychannel"\n[alerts.webhook]\n')
    cfg = config.load(p, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.alerts is not None
    assert cfg.alerts.telegram is not None
    assert cfg.alerts.telegram.token is not None
    assert cfg.alerts.telegram.token.reveal() == TOKEN
    assert cfg.alerts.webhook is not None
    assert cfg.alerts.webhook.url is not None
    assert cfg.alerts.webhook.url.reveal() == HOOK


def test_no_alerts_table_sends_nothing() -> None:
    assert config.load(None, env={}).alerts is None


def test_a_reload_of_the_same_alerts_table_needs_no_restart(tmp_path: Path) -> None:
    from engine.daemon import _needs_restart

    text = '[alerts]\nfills = false\n[alerts.telegram]\nchat_id = "1"\n[alerts.webhook]\n'
    p = write(tmp_path, text)
    running = config.load(p, env={"KIWOOM_TELEGRAM_TOKEN": TOKEN, "KIWOOM_WEBHOOK_URL": HOOK})
    # SIGHUP re-reads the file without its secrets.
    assert _needs_restart(running, config.load(p, with_secrets=False)) == []
    p.write_text(text.replace("fills = false", "fills = true"))
    assert _needs_restart(running, config.load(p, with_secrets=False)) == ["alerts"]
