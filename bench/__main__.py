"""Run every benchmark and append its figures to bench/RESULTS.md.

Usage: `make bench` (or `uv run python -m bench [name ...]`). Each benchmark module exposes
`run() -> str`, a Markdown section with its measurements and ratios against a baseline taken
in the same run. Benchmarks never run as part of the test suite.
"""

from __future__ import annotations

import importlib
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCHES = ("rest_overhead", "codec")
RESULTS = Path(__file__).with_name("RESULTS.md")


def main(names: list[str]) -> int:
    chosen = names or list(BENCHES)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"\n## {stamp} ({platform.python_implementation()} {platform.python_version()})\n"
    sections = [header]
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        section: str = module.run()
        print(section, flush=True)
        sections.append(section.rstrip() + "\n")
    with RESULTS.open("a") as f:
        f.write("\n".join(sections))
    print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
