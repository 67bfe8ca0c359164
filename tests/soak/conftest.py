"""The 2-minute soak stays out of `make test`: tests marked `soak` are deselected unless the
run's `-m` expression names soak (`make soak-test`: `-m soak`) or a test is named by node id."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.option.markexpr or ""):
        return
    named = {arg for arg in config.args if "::" in arg}
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        soak = item.get_closest_marker("soak") is not None
        wanted = any(item.nodeid == n or item.nodeid.endswith("/" + n) for n in named)
        (dropped if soak and not wanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
