"""The daemon's start-up never loads pyarrow, matplotlib or the backtest (issue 16): only
`history`, `backtest` and the reports may. A fresh interpreter, so nothing another test
imported counts."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import engine.cli, engine.daemon, engine.trader, engine.host, engine.kiwoom.history
only = ("pyarrow", "matplotlib", "engine.data", "engine.backtest", "engine.reports.daily",
        "engine.reports.plot")
print(sorted(m for m in sys.modules if m.split(".")[0] in only or m.startswith(only[2:])))
"""


def test_the_run_path_imports_neither_pyarrow_matplotlib_nor_the_store_or_backtest() -> None:
    res = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_history_command_loads_pyarrow_only_when_it_touches_files() -> None:
    probe = "import sys, engine.history_command\nprint('pyarrow' in sys.modules)\n"
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
