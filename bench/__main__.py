"""Run every benchmark and append its output to bench/RESULTS.md.

Usage: `make bench` (or `uv run python -m bench [name ...]`). Each benchmark is a module of
this package runnable as `python -m bench.<name>`; it prints its measurements and its ratios
against a baseline measured in the same run. Benchmarks never run in the test suite.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCHES = (
    "rest_overhead",
    "codec",
    "feed_rate",
    "journal_intent",
    "mirror",
    "tick_to_order",
    "bus",
    "memory",
)
RESULTS = Path(__file__).with_name("RESULTS.md")


def main(names: list[str]) -> int:
    chosen = names or list(BENCHES)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [f"\n## {stamp} ({platform.python_implementation()} {platform.python_version()})\n"]
    status = 0
    for name in chosen:
        cmd = [sys.executable, "-m", f"bench.{name}"]
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(res.stdout, end="", flush=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            status = 1
        sections.append(f"### {name}\n\n```\n{res.stdout.rstrip()}\n```\n")
    with RESULTS.open("a") as f:
        f.write("\n".join(sections))
    print(f"appended to {RESULTS}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
