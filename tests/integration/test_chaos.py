"""The short version of `make chaos`: a few scenarios with a few seconds of faults each,
against the real daemon, simulator and Mosquitto processes, every invariant checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import checks
from chaos.scenarios import SCENARIOS, run_scenario

pytestmark = pytest.mark.timeout(120)

SHORT = ("ws_drops", "rest_5xx_timeouts", "sigkill_loop")


@pytest.mark.parametrize("name", SHORT)
async def test_the_daemon_keeps_every_invariant_under(name: str, tmp_path: Path) -> None:
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    result = await run_scenario(scenario, 5.0, tmp_path)
    assert not result.error, result.error
    for check in ("traded", "orders", "books", "mqtt_seq", "log", "secrets"):
        ok, detail = result.checks[check]
        assert ok, f"{check}: {detail}"


def test_the_checks_catch_what_they_guard(tmp_path: Path) -> None:
    # The invariants must be able to fail: a hole in a topic's seqs, a token in a log, a
    # traceback, and positions that disagree are each reported.
    assert not checks.seq_gaps([(1, "t", b'{"seq": 1}'), (1, "t", b'{"seq": 3}')])[0]
    assert checks.seq_gaps([(1, "t", b'{"seq": 1}'), (1, "t", b'{"seq": 2}')])[0]
    token = "A" * 20 + "tok3nSecretPart" + "B" * 20
    assert not checks.no_secrets([token], {"log": b'{"auth": "..tok3nSecretPa.."}'})[0]
    assert checks.no_secrets([token], {"log": b'{"auth": "tok3nSecr"}'})[0]
    log = tmp_path / "log"
    log.write_bytes(b'{"event": "x", "exception": "Traceback ..."}\n')
    assert not checks.log_clean(log)[0]
    assert checks.log_clean(log, frozenset({"x"}))[0]
    status = {"portfolio": {"positions": {"005930": {"qty": 2}}, "cash": 10}}
    assert not checks.books_match(status, {"holdings": {"005930": 1}, "cash": 10})[0]
    assert checks.books_match(status, {"holdings": {"005930": 2}, "cash": 10})[0]
