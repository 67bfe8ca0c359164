"""The machine-readable side of a benchmark: one `JSON {...}` line per figure on stdout.

Each benchmark keeps its text output and also calls `emit` for the figures that go in the
table; `python -m bench` (bench/__main__.py) collects the lines into bench/RESULTS.json and
bench/TABLE.md. A figure carries its floor or peer measured in the same run, so the ratio
means something on any machine.
"""

from __future__ import annotations

import orjson

PREFIX = "JSON "


def emit(
    figure: str,
    value: float,
    unit: str,
    floor: float | None,
    floor_name: str,
    goal: str,
) -> None:
    """Print one figure: `value` against `floor` (ratio value/floor), and the goal as text."""
    ratio = value / floor if floor else None
    line = {
        "figure": figure,
        "value": round(value, 3),
        "unit": unit,
        "floor": None if floor is None else round(floor, 3),
        "floor_name": floor_name,
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": goal,
    }
    print(PREFIX + orjson.dumps(line).decode(), flush=True)
