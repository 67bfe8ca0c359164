"""A mutation probe of the order path: does the suite notice when the code is wrong?

Each mutant below is one small, plausible bug (a comparison off by one, a branch dropped, a
sum left out) in the OMS, `apply`, reconciliation, the portfolio, the journal, the bus or the
strategy host. The probe copies the committed tree (HEAD) into a temporary worktree, applies
one mutant, runs the tests that cover that code, and counts the mutant caught when they fail.

Run outside `make test` (it takes minutes): `.venv/bin/python tools/mutation_probe.py`
(`--only NAME` for one mutant, `-k` to list them). Exits non-zero when fewer than
`REQUIRED` mutants are caught or a mutant no longer applies to the code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str


MUTANTS: tuple[Mutant, ...] = (
    # The five that lived through the suite when issue 14 was written.
    Mutant(
        "risk_notional_at_limit",
        "engine/trading/risk.py",
        "if notional > cfg.max_order_notional:",
        "if notional >= cfg.max_order_notional:",
        ("tests/trading/test_risk.py",),
        "an order exactly at max_order_notional refused",
    ),
    Mutant(
        "portfolio_fee_left_out",
        "engine/trading/portfolio.py",
        "pnl = sold * price - basis - fee",
        "pnl = sold * price - basis",
        ("tests/trading/test_portfolio.py",),
        "a sale's fee and tax left out of its realised PnL",
    ),
    Mutant(
        "reconcile_cash_counts_buys_twice",
        "engine/trading/reconcile.py",
        "portfolio.cash = cash.orderable + self.oms.open_buy_notional()",
        "portfolio.cash = cash.orderable",
        ("tests/trading/test_reconcile.py",),
        "a resting buy's reservation taken off the cash twice after a pass",
    ),
    Mutant(
        "bus_balance_coalesces",
        "engine/bus.py",
        "        if issubclass(t, ACCOUNT_EVENTS):\n            return (",
        "        if t.__name__ == 'Balance':\n            return self._coalesce\n"
        "        if issubclass(t, ACCOUNT_EVENTS):\n            return (",
        ("tests/test_bus.py",),
        "04 balance events coalesce per symbol in a slow consumer's queue",
    ),
    Mutant(
        "host_disable_keeps_orders",
        "engine/host.py",
        "for order in self.host.oms.open_orders(self.name):",
        "for order in ():",
        (
            "tests/engine/test_order_defects.py::"
            "test_a_disabled_strategy_s_resting_orders_are_cancelled_at_the_broker",
        ),
        "a disabled strategy's resting orders left open",
    ),
    # The order path of issue 14: apply, the OMS, risk, the journal, the host.
    Mutant(
        "apply_counts_a_fill_twice",
        "engine/trading/order_events.py",
        "    if (ev.order_no, ev.fill_no) in order.fill_nos:\n        return 0",
        "    if False:\n        return 0",
        ("tests/trading/test_orders.py",),
        "a fill seen again is counted again",
    ),
    Mutant(
        "apply_cancel_refused_stays_pending",
        "engine/trading/orders.py",
        "            K.CANCEL_REFUSED: To.PREV,",
        "            K.CANCEL_REFUSED: To.STAY,",
        ("tests/trading/test_orders.py",),
        "a refused cancel leaves the order PENDING_CANCEL",
    ),
    Mutant(
        "oms_guesses_an_ambiguous_notice",
        "engine/trading/oms.py",
        "if len(like) > 1:",
        "if len(like) > 99:",
        (
            "tests/engine/test_order_defects.py::"
            "test_an_early_notice_two_unanswered_orders_could_own_waits_for_an_answer",
        ),
        "an early notice two orders could own is given to the first",
    ),
    Mutant(
        "oms_amend_skips_risk",
        "engine/trading/oms.py",
        "rejection = self.risk.check_amend(\n            req, order.strategy, self, replacing=order, exchange=order.venue\n        )",
        "rejection = None",
        ("tests/engine/test_order_defects.py",),
        "an amend is sent without the checks a new order meets",
    ),
    Mutant(
        "risk_amend_counts_itself",
        "engine/trading/risk.py",
        "return self.view.open_orders_count() - (1 if self.order.is_open else 0)",
        "return self.view.open_orders_count()",
        ("tests/engine/test_order_defects.py",),
        "an amend counts its own order against max_open_orders",
    ),
    Mutant(
        "risk_sells_another_s_shares",
        "engine/trading/risk.py",
        "            if qty > mine:",
        "            if qty > mine + 1:",
        ("tests/trading/test_risk.py",),
        "a strategy may sell one share more than its own",
    ),
    Mutant(
        "portfolio_average_cost",
        "engine/trading/portfolio.py",
        "basis = self.cost * sold // self.qty if self.qty else 0",
        "basis = self.cost * sold // (self.qty + 1) if self.qty else 0",
        ("tests/trading/test_portfolio.py",),
        "the cost basis of a sale off by a share",
    ),
    Mutant(
        "journal_halts_not_restored",
        "engine/trader.py",
        "            change = self.risk.restore_halts(halts) or change",
        "            pass",
        ("tests/engine/test_halt_restart.py",),
        "a journaled halt forgotten at the restart",
    ),
    Mutant(
        "host_rejections_unbounded",
        "engine/host.py",
        "if self.enabled and len(window) > self.max_rejections:",
        "if False:",
        (
            "tests/integration/test_strategy_flood.py::"
            "test_a_strategy_replacing_every_refused_order_is_disabled_and_sigterm_is_honoured",
        ),
        "a strategy that re-places every refused order is never disabled",
    ),
    Mutant(
        "reconcile_pending_cancel_sticks",
        "engine/trading/reconcile.py",
        "if order.state not in PENDING or oms.call_lost(order):",
        "if order.state not in PENDING:",
        ("tests/trading/test_reconcile.py", "tests/engine/test_order_defects.py"),
        "a cancel whose outcome is unknown stays PENDING_CANCEL while the order is open",
    ),
    Mutant(
        "bus_journal_drops_account_events",
        "engine/bus.py",
        "        if issubclass(t, ACCOUNT_EVENTS):\n            return (",
        "        if issubclass(t, ACCOUNT_EVENTS) and t.__name__ != 'Fill':\n            return (",
        ("tests/test_bus.py",),
        "fills treated as market data (dropped oldest-first) by the queues",
    ),
)

REQUIRED_SHARE = 15 / 16


def _worktree(tmp: Path) -> Path:
    dest = tmp / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(dest), "HEAD"],
        cwd=ROOT,
        check=True,
    )
    return dest


def _drop_worktree(dest: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(dest)], cwd=ROOT, check=False)


def _apply(tree: Path, m: Mutant) -> str:
    target = tree / m.path
    text = target.read_text()
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(f"mutant {m.name}: the text to change occurs {count} times in {m.path}")
    target.write_text(text.replace(m.old, m.new))
    return text


def _run_tests(tree: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[bool, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=tree,
            env=env,
            capture_output=True,
            timeout=timeout_s,
        )
        failed = proc.returncode != 0
    except subprocess.TimeoutExpired:
        failed = True  # a hang is a failing suite too
    return failed, time.monotonic() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="run only this mutant")
    ap.add_argument("-k", "--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    args = ap.parse_args()
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:34} {m.path}: {m.why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        tree = _worktree(Path(tmp))
        try:
            failed, _ = _run_tests(tree, tuple(sorted({t for m in mutants for t in m.tests})), 900)
            if failed:  # the unmutated tree must pass first, or nothing below means anything
                print("the unmutated tree fails its tests: fix that first", file=sys.stderr)
                return 2
            caught = 0
            for m in mutants:
                original = _apply(tree, m)
                try:
                    failed, took = _run_tests(tree, m.tests, args.timeout)
                finally:
                    (tree / m.path).write_text(original)
                caught += failed
                verdict = "caught" if failed else "SURVIVED"
                print(f"{verdict:8} {m.name:34} {took:6.1f}s  {m.why}", flush=True)
        finally:
            _drop_worktree(tree)
    print(f"{caught} of {len(mutants)} mutants caught")
    return 0 if caught >= REQUIRED_SHARE * len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
