"""`[mqtt]`: absent means off; the password comes from the environment or a systemd
credential, never from the file; a prefix that cannot start a topic is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import config
from engine.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str, **env: str) -> config.Config:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return config.load(p, env=env)


def test_no_mqtt_table_means_no_mirror(tmp_path: Path) -> None:
    assert config.load(ROOT / "config.toml", env={}).mqtt is None
    assert load(tmp_path, "[log]\n", KIWOOM_MQTT_PASSWORD="unused-pw").mqtt is None


def test_an_empty_mqtt_table_turns_it_on_with_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[mqtt]\n").mqtt
    assert cfg == config.MqttConfig()
    assert (cfg.host, cfg.port, cfg.tls, cfg.commands_enabled) == ("127.0.0.1", 1883, False, False)
    assert cfg.password is None


def test_the_password_comes_from_the_environment_or_a_credential(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[mqtt]\nusername = "engine"\n', KIWOOM_MQTT_PASSWORD=" pw-from-env \n")
    assert cfg.mqtt is not None
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.reveal() == "pw-from-env"
    assert "pw-from-env" not in repr(cfg)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("pw-from-systemd\n")
    cfg = load(tmp_path, "[mqtt]\n", CREDENTIALS_DIRECTORY=str(creds))
    assert cfg.mqtt is not None
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.reveal() == "pw-from-systemd"


def test_a_password_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, '[mqtt]\npassword = "hunter2-in-file"\n')
    assert "mqtt.password: secrets are not read from files" in str(exc.value)
    assert "KIWOOM_MQTT_PASSWORD" in str(exc.value)
    assert "hunter2" not in str(exc.value)


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("kiwoom/#", "wildcards"),
        ("kiwoom/+/x", "wildcards"),
        ("$SYS/kiwoom", "reserved"),
        ("/kiwoom", "empty topic levels"),
        ("kiwoom/", "empty topic levels"),
        ("kiwoom//a", "empty topic levels"),
        ("", "must not be empty"),
    ],
)
def test_a_prefix_that_cannot_start_a_topic_is_refused(
    tmp_path: Path, prefix: str, why: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, f'[mqtt]\nprefix = "{prefix}"\n')
    assert "mqtt.prefix: " in str(exc.value)
    assert why in str(exc.value)


def test_an_empty_client_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.client_id: must not be empty"):
        load(tmp_path, '[mqtt]\nclient_id = ""\n')
