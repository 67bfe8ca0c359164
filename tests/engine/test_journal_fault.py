"""A journal that cannot write (issue 14 item 5, the journal's side): on a real full disk (a
tiny tmpfs as the state directory), the order whose intent cannot be stored is not sent,
trading halts with reason JOURNAL, /healthz answers 503, the refusal is counted, and the halt
lifts itself once space is freed."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.events import OrderState, TradingState
from engine.journal import JournalError
from engine.sim.simulator import Simulator
from engine.trading.risk import HaltReason
from tests.engine.conftest import SYMBOL, sim_config, write_strategy
from tests.engine.test_admin import engine_with_admin
from tests.support import until

pytestmark = pytest.mark.timeout(60)

QUIET = "class Quiet(Strategy):\n    pass\n"


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (needs CAP_SYS_ADMIN: skipped without it)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_up(path: Path) -> Path:
    """Write a file until the disk is full; returns it (remove it to free the space)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = bytes(64 * 1024)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_halts_trading_with_reason_journal_until_space_is_freed(
    tmp_path: Path,
) -> None:
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    with tiny_disk(tmp_path / "state") as state:
        async with (
            Simulator(sim_config(events_per_s=1_000.0)) as sim,
            engine_with_admin(sim, state, (sc,)) as admin,
        ):
            trader = admin.trader
            strat = trader.host.by_name["s"].instance
            await until(lambda: SYMBOL in trader.portfolio.last, 5)
            assert (await admin.call("GET", "/healthz"))[0] == 200
            await until(lambda: trader.journal_queue.depth == 0)
            sent_before = sim.state.request_counts["kt10000"]

            filler = fill_up(state)
            with contextlib.suppress(JournalError):  # raised into the caller before issue 14
                strat.buy(SYMBOL, 1, None)
            assert sim.state.request_counts["kt10000"] == sent_before  # nothing was sent
            assert trader.risk.state is TradingState.HALTED
            assert HaltReason.JOURNAL in trader.risk.halts
            assert trader.risk.state_reason.startswith("JOURNAL: OSError: [Errno 28]")
            code, body = await admin.call("GET", "/healthz")
            assert (code, body["journal_ok"]) == (503, False)
            metrics = await admin.metrics()
            assert metrics["kiwoom_engine_journal_intents_refused_total"] == 1.0
            assert metrics["kiwoom_engine_journal_faulty"] == 1.0
            assert metrics['kiwoom_engine_trading_halt{reason="JOURNAL"}'] == 1.0
            # While halted, the next order is refused by risk before the journal is asked.
            refused = strat.buy(SYMBOL, 1, None)
            assert (refused.state, refused.reason) == (OrderState.REJECTED, "HALTED")
            assert trader.journal.stats()["intents_refused"] == 1

            # Space again: the halt lifts itself, without a resume.
            filler.unlink()
            await until(lambda: trader.risk.state is TradingState.ACTIVE, 10)
            assert (await admin.call("GET", "/healthz"))[0] == 200
            order = strat.buy(SYMBOL, 1, None)
            await until(lambda: order.state is OrderState.FILLED, 5)
            assert sim.state.request_counts["kt10000"] == sent_before + 1


async def test_an_operator_halt_outlasts_a_journal_halt(tmp_path: Path) -> None:
    sc = write_strategy(tmp_path, "s", QUIET, "Quiet")
    with tiny_disk(tmp_path / "state") as state:
        async with (
            Simulator(sim_config(events_per_s=1_000.0)) as sim,
            engine_with_admin(sim, state, (sc,)) as admin,
        ):
            trader = admin.trader
            await until(lambda: SYMBOL in trader.portfolio.last, 5)
            await until(lambda: trader.journal_queue.depth == 0)
            filler = fill_up(state)
            with contextlib.suppress(JournalError):
                trader.host.by_name["s"].instance.buy(SYMBOL, 1, None)
            assert trader.risk.state is TradingState.HALTED
            trader.halt("OPERATOR_HALT: disk")
            filler.unlink()
            await until(lambda: HaltReason.JOURNAL not in trader.risk.halts, 10)
            assert trader.risk.state is TradingState.HALTED
            assert trader.status()["trading_state_reasons"] == {"OPERATOR": "OPERATOR_HALT: disk"}
            # Journaled once the disk had room again: it is on disk now.
            await until(lambda: trader.journal.load_halts() == {"OPERATOR": "OPERATOR_HALT: disk"})
