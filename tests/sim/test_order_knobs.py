"""The order knobs' defaults: `sim.order_push_first` from config, restored by Faults.clear()."""

from __future__ import annotations

from pathlib import Path

from engine import config
from engine.sim.state import build_state


def test_order_push_first_comes_from_config_and_clear_restores_it(tmp_path: Path) -> None:
    assert config.load(None, env={}).sim.order_push_first is False
    path = tmp_path / "config.toml"
    path.write_text("[sim]\norder_push_first = true\n")
    cfg = config.load(path, env={})
    faults = build_state(cfg.sim).faults
    assert faults.order_push_first is True
    faults.order_push_first = False
    faults.order_no_missing.add("kt10000")
    faults.clear()
    assert faults.order_push_first is True
    assert faults.order_no_missing == set()
