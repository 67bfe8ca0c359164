"""Run every benchmark, append its output to bench/RESULTS.md and write the table.

Usage: `make bench` (or `uv run --group bench python -m bench [name ...]`: those benches only,
whose rows replace theirs in the table, the others kept). Each benchmark is
a module of this package runnable as `python -m bench.<name>`; it prints its measurements and
its ratios against a baseline measured in the same run, and one `JSON {...}` line per figure
(bench/results.py). Those lines become bench/RESULTS.json and the markdown table
bench/TABLE.md: figure, value, its floor or peer, the ratio and the goal. Benchmarks never run
in the test suite; the soak (bench/soak.py, `make soak`) runs on its own.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.results import PREFIX

BENCHES = (
    "rest_overhead",
    "codec",
    "feed_rate",
    "ws_compression",
    "journal_intent",
    "mirror",
    "tick_to_order",
    "alerts",
    "bus",
    "memory",
    "order_growth",
    "history_pull",
    "backtest_bars",
    "backtest_ticks",
    "backtest_memory",
    "soak",
)
ARGS = {"soak": ["--minutes", "2", "--out"], "tick_to_order": ["--seconds", "60"]}
"""The soak in `make bench` is the 2-minute one, into a scratch directory: the committed plot
(bench/soak/soak.png) is the 10-minute `make soak`. tick_to_order runs 60 s phases: its p99
at 20k/s is the 24th-worst of 2,400 samples per condition, not the 6th of 600; even so the
mirror's on/off p99 ratio has a 95% interval about 0.2 wide (the bench prints it)."""
RESULTS = Path(__file__).with_name("RESULTS.md")
RESULTS_JSON = Path(__file__).with_name("RESULTS.json")
TABLE = Path(__file__).with_name("TABLE.md")
README = Path(__file__).with_name("README.md")
TABLE_BEGIN = "<!-- table: written by make bench -->"
TABLE_END = "<!-- end of table -->"


def figures(bench: str, stdout: str, stamp: str) -> list[dict[str, Any]]:
    return [
        {"bench": bench, "stamp": stamp, **orjson.loads(line[len(PREFIX) :])}
        for line in stdout.splitlines()
        if line.startswith(PREFIX)
    ]


def merged(rows: list[dict[str, Any]], chosen: list[str]) -> list[dict[str, Any]]:
    """`rows` in place of the chosen benches' rows of the last table, the others kept (with
    the stamp of the run that measured them), in BENCHES order."""
    try:
        old = orjson.loads(RESULTS_JSON.read_bytes())
        kept = [r for r in old["figures"] if r["bench"] not in chosen]
        stamp = old["stamp"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return rows
    for r in kept:
        r.setdefault("stamp", stamp)
    order = {name: i for i, name in enumerate(BENCHES)}
    return sorted([*kept, *rows], key=lambda r: order.get(r["bench"], len(order)))


def table(rows: list[dict[str, Any]], stamp: str) -> str:
    def num(v: Any) -> str:
        return "" if v is None else f"{v:,.3f}".rstrip("0").rstrip(".")

    lines = [
        f"# Benchmark table ({stamp})",
        "",
        "Written by `make bench` (bench/__main__.py) with bench/RESULTS.json; every floor or",
        "peer was measured in the same run on the same machine as its value. Ratio = value /",
        "floor. `python -m bench NAME...` re-runs some benches and replaces only their rows;",
        "`run` says when each row was measured.",
        "",
        "| bench | figure | value | unit | floor or peer | floor | ratio | goal | run |",
        "|---|---|---:|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bench']} | {r['figure']} | {num(r['value'])} | {r['unit']} | "
            f"{r['floor_name']} | {num(r['floor'])} | {num(r['ratio'])} | {r['goal']} | "
            f"{r.get('stamp', stamp)} |"
        )
    return "\n".join(lines) + "\n"


def embed(readme: Path, text: str) -> None:
    """Put `text` between the README's table markers, so bench/README.md always shows the
    table of the last `make bench` (a README without the markers is left alone)."""
    doc = readme.read_text()
    start, end = doc.find(TABLE_BEGIN), doc.find(TABLE_END)
    if start < 0 or end < start:
        return
    body = text.replace("# Benchmark table", "### Benchmark table", 1)
    readme.write_text(doc[: start + len(TABLE_BEGIN)] + "\n" + body + doc[end:])


def main(names: list[str]) -> int:
    chosen = names or list(BENCHES)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [f"\n## {stamp} ({platform.python_implementation()} {platform.python_version()})\n"]
    status = 0
    rows: list[dict[str, Any]] = []
    for name in chosen:
        cmd = [sys.executable, "-m", f"bench.{name}", *ARGS.get(name, [])]
        if cmd[-1] == "--out":
            cmd.append(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(res.stdout, end="", flush=True)
        rows += figures(name, res.stdout, stamp)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            status = 1
        sections.append(f"### {name}\n\n```\n{res.stdout.rstrip()}\n```\n")
    with RESULTS.open("a") as f:
        f.write("\n".join(sections))
    if names:
        rows = merged(rows, chosen)
    RESULTS_JSON.write_bytes(
        orjson.dumps(
            {"stamp": stamp, "python": platform.python_version(), "figures": rows},
            option=orjson.OPT_INDENT_2,
        )
    )
    TABLE.write_text(table(rows, stamp))
    embed(README, table(rows, stamp))
    print(f"appended to {RESULTS}; table in {TABLE}, {README} and {RESULTS_JSON}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
