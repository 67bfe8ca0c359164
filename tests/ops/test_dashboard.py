"""ops/grafana/kiwoom-engine.json as Grafana imports it: a datasource variable (no data source
baked in), every query scoped to the chosen daemons, panels that do not overlap, and a panel
for each thing issue 17 asks to see. (That every query returns data from a real daemon is
tests/ops/test_prometheus.py.)"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "kiwoom-engine.json"


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def test_the_data_source_is_a_variable_and_every_query_is_scoped_to_the_chosen_daemons() -> None:
    dash = load()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert variables["instance"]["includeAll"] is True
    assert "__inputs" not in dash  # nothing to map at import
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])
            assert "kiwoom_engine_" in target["expr"]


def test_panels_have_unique_ids_and_do_not_overlap_on_the_24_column_grid() -> None:
    dash = load()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    boxes = []
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] < g["x"] + g["w"] <= 24, p["title"]
        boxes.append((p["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for a, b in itertools.combinations(boxes, 2):
        apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
        assert apart, (a, b)


def test_it_shows_what_the_issue_asks_for() -> None:
    titles = " | ".join(p["title"] for p in load()["panels"]).lower()
    for wanted in (
        "trading state",
        "pnl per strategy",
        "positions",
        "orders by state",
        "rejections by reason",
        "tick to order",
        "loop lag",
        "feed health",
        "journal",
        "mirror",
    ):
        assert wanted in titles, wanted
