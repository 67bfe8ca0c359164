"""`make chaos`: every scenario (or those named), then the invariant table; exit 1 when any
invariant broke. `python -m chaos --help` for the options."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from chaos.scenarios import SCENARIOS, details, run_scenario, table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos")
    parser.add_argument(
        "names", nargs="*", help=f"scenarios ({', '.join(s.name for s in SCENARIOS)})"
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of fault per scenario"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scenario directories")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.names or s.name in args.names]
    unknown = set(args.names) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s): {sorted(unknown)}")
    tmp = tempfile.mkdtemp(prefix="kiwoom-chaos-")
    root = Path(tmp)
    try:
        results = []
        for s in chosen:
            print(f"chaos: {s.name} ({args.duration:g} s of faults)", flush=True)
            r = asyncio.run(run_scenario(s, args.duration, root))
            results.append(r)
            print(details([r]), flush=True)
        print()
        print(table(results))
    finally:
        if args.keep:
            print(f"scenario directories kept under {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
