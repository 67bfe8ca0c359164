"""`kiwoom-engine call` with an order api-id: refused in mode mock or live unless
`--allow-orders` is given (such an order skips every check of the engine), allowed in sim."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import cli as cli_mod
from engine import logs
from tests.integration.test_cli import APPKEY, SECRETKEY, free_port

pytestmark = pytest.mark.timeout(60)

Run = Callable[..., tuple[int, str]]

ORDER = ["kt10000", "dmst_stex_tp=KRX", "stk_cd=005930", "ord_qty=1", "trde_tp=3"]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Run:
    """`run(mode, *args)` -> (exit code, stderr) of `kiwoom-engine -c <cfg> *args`, in this
    process. Nothing listens at the configured host: a call that gets past the guard fails to
    connect (exit 5, ClientConnectorError), which proves it would have been sent; a refused
    one never tries."""
    monkeypatch.setenv("KIWOOM_APPKEY", APPKEY)
    monkeypatch.setenv("KIWOOM_SECRETKEY", SECRETKEY)
    port = free_port()

    def run(mode: str, *args: str) -> tuple[int, str]:
        cfg = tmp_path / f"{mode}.toml"
        cfg.write_text(
            f'[kiwoom]\nmode = "{mode}"\nrest_url = "http://127.0.0.1:{port}"\n'
            "[kiwoom.retry]\nbase_delay_s = 0.001\nmax_delay_s = 0.001\n"
        )
        try:
            code = cli_mod.main(["-c", str(cfg), *args])
        finally:
            logs.setup("warning", "json", io.StringIO())
        captured = capsys.readouterr()
        assert captured.out == ""
        return code, captured.err

    return run


@pytest.mark.parametrize("mode", ["mock", "live"])
def test_an_order_tr_is_refused_outside_sim_without_allow_orders(run: Run, mode: str) -> None:
    code, err = run(mode, "call", *ORDER)
    assert code == 2, err
    assert "kt10000" in err
    assert "--allow-orders" in err
    assert "ClientConnectorError" not in err  # refused before connecting


def test_allow_orders_lets_it_through_and_sim_needs_no_flag(run: Run) -> None:
    code, err = run("mock", "call", *ORDER, "--allow-orders")
    assert code == 5, err
    assert "ClientConnectorError" in err  # it went for the wire: nobody listens there
    code, err = run("sim", "call", *ORDER)
    assert code == 5, err
    assert "ClientConnectorError" in err
    code, err = run("live", "call", "ka10001", "stk_cd=005930")  # a query is never refused
    assert code == 5, err
    assert "ClientConnectorError" in err
