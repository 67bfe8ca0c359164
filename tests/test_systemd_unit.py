"""systemd/kiwoom-engine.service passes systemd's own checks: `systemd-analyze verify` is clean
and `systemd-analyze security` rates its exposure 2.0 or lower."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "kiwoom-engine.service"
INSTALLED_EXEC = "/opt/kiwoom-engine/.venv/bin/kiwoom-engine"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_unit_verifies_clean(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's entry point, which is
    # what the README's install puts at /opt/kiwoom-engine/.venv/bin.
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_EXEC} " in text
    here = Path(sys.executable).parent / "kiwoom-engine"
    assert here.exists()
    unit = tmp_path / "kiwoom-engine.service"
    unit.write_text(text.replace(INSTALLED_EXEC, str(here)))
    res = analyze("verify", str(unit))
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr


def test_the_unit_is_hardened_to_an_exposure_of_2_or_less() -> None:
    res = analyze("security", "--offline=true", str(UNIT))
    assert res.returncode == 0, res.stderr
    m = re.search(r"Overall exposure level for kiwoom-engine\.service: (\d+\.\d)", res.stdout)
    assert m, res.stdout[-500:]
    assert float(m.group(1)) <= 2.0, res.stdout


def test_the_unit_speaks_the_daemons_protocol() -> None:
    fields = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert fields["Type"] == "notify"
    assert fields["Restart"] == "on-failure"
    assert int(fields["WatchdogSec"]) > 0
    assert fields["StateDirectory"] == "kiwoom-engine"
    # The daemon's own stop deadline (daemon.stop_timeout_s, 20 s in config.toml) must end
    # before systemd's SIGKILL.
    from engine import config

    shipped = config.load(ROOT / "config.toml", env={})
    assert shipped.daemon.stop_timeout_s < int(fields["TimeoutStopSec"])
