"""The CLI as a user runs it: `kiwoom-engine sim` in one process, `call` / `apis` / `watch`
in others, all through the same config file."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.sim.rest import SimBusinessError, SimReply
from engine.sim.simulator import Simulator

# A hang guard, not a limit on speed: on a loaded machine the module's sim and each CLI call
# start an interpreter that takes seconds.
pytestmark = pytest.mark.timeout(120)

APPKEY = "cli-test-appkey-7c1d9e"
SECRETKEY = "cli-test-secretkey-4b2a8f"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(cfg: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIWOOM_APPKEY": APPKEY, "KIWOOM_SECRETKEY": SECRETKEY}
    return subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@contextlib.contextmanager
def sim_process(cfg: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`kiwoom-engine -c cfg sim` in another process, once it takes connections on `port`;
    stopped with SIGTERM after. Its log goes to a file beside `cfg` (a pipe no one reads
    would fill and stop it)."""
    log_path = cfg.with_suffix(".sim.log")
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "-c", str(cfg), "sim"],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        # A wait, not a limit: the interpreter's start-up takes seconds on a loaded machine.
        deadline = time.monotonic() + 45
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    state = "running" if proc.poll() is None else f"exit {proc.returncode}"
                    log = log_path.read_text(errors="replace")[-4000:]
                    raise RuntimeError(f"sim did not start ({state}): {log}") from None
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def sim_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    port = free_port()
    cfg = tmp_path_factory.mktemp("cli") / "config.toml"
    cfg.write_text(f'[kiwoom]\nmode = "sim"\n[sim]\nport = {port}\nevents_per_s = 200.0\n')
    with sim_process(cfg, port) as proc:
        yield cfg
    assert proc.returncode == 0  # SIGTERM is a clean stop


def test_call_prints_stock_info(sim_config: Path) -> None:
    res = cli(sim_config, "call", "ka10001", "stk_cd=005930", "--log-level", "debug")
    assert res.returncode == 0, res.stderr
    body = orjson.loads(res.stdout)
    assert body["stk_cd"] == "005930"
    assert body["stk_nm"] == "삼성전자"
    assert body["return_code"] == 0
    # Debug logging shows every call, and never the keys.
    assert "rest_call" in res.stderr
    assert APPKEY not in res.stderr + res.stdout
    assert SECRETKEY not in res.stderr + res.stdout


def test_call_all_follows_three_or_more_pages(sim_config: Path) -> None:
    res = cli(
        sim_config,
        "call",
        "ka10081",
        "stk_cd=005930",
        "base_dt=20261124",
        "upd_stkpc_tp=1",
        "--all",
        "--log-level",
        "debug",
    )
    assert res.returncode == 0, res.stderr
    rows = orjson.loads(res.stdout)["stk_dt_pole_chart_qry"]
    pages = {line for line in res.stderr.splitlines() if "rest_call" in line and "ka10081" in line}
    assert len(pages) >= 3
    dates = [r["dt"] for r in rows]
    assert dates == sorted(dates, reverse=True)  # newest first, no page repeated
    assert len(set(dates)) == len(dates) >= 300


def test_call_errors_exit_non_zero_with_the_message(sim_config: Path) -> None:
    missing = cli(sim_config, "call", "ka10001")
    assert missing.returncode == 2
    assert "stk_cd" in missing.stderr
    unknown = cli(sim_config, "call", "ka99999")
    assert unknown.returncode == 2
    assert "ka99999" in unknown.stderr
    broker = cli(sim_config, "call", "ka10001", "stk_cd=XYZ")
    assert broker.returncode == 4
    assert "1902" in broker.stderr


def test_apis_searches_the_catalogue(sim_config: Path) -> None:
    res = cli(sim_config, "apis", "일봉")
    assert res.returncode == 0
    assert "ka10081" in res.stdout
    assert cli(sim_config, "apis", "no-such-api-anywhere").returncode == 1


def test_watch_prints_normalised_trades(sim_config: Path) -> None:
    res = cli(sim_config, "watch", "0B", "005930", "--count", "3")
    assert res.returncode == 0, res.stderr
    lines = [orjson.loads(line) for line in res.stdout.splitlines()]
    trades = [line for line in lines if line["event"] == "Trade"]
    assert len(trades) == 3
    assert all(t["symbol"] == "005930" and t["price"] > 0 for t in trades)


def test_broken_config_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[kiwoom]\nmode = "prod"\n')
    res = cli(bad, "call", "ka10001", "stk_cd=005930")
    assert res.returncode == 3
    assert f'{bad}: kiwoom.mode: expected one of sim|mock|live, got "prod"' in res.stderr


def test_malformed_field_is_a_usage_error(sim_config: Path) -> None:
    res = cli(sim_config, "call", "ka10001", "stk_cd")
    assert res.returncode == 2
    assert "expected field=value, got 'stk_cd'" in res.stderr


def test_config_option_after_the_command(sim_config: Path) -> None:
    env = {**os.environ, "KIWOOM_APPKEY": APPKEY, "KIWOOM_SECRETKEY": SECRETKEY}
    res = subprocess.run(
        [sys.executable, "-m", "engine", "call", "ka10001", "stk_cd=005930", "-c", str(sim_config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert orjson.loads(res.stdout)["stk_cd"] == "005930"


def test_reader_gone_away_is_not_an_error(tmp_path: Path) -> None:
    # `kiwoom-engine apis 일봉 | head -0`: stdout closed before the output is flushed. With
    # ordinary block buffering the interpreter's final flush used to fail: exit 120 + a
    # traceback-ish "Exception ignored" on stderr.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for args in (["apis", "일봉"], ["apis"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(30) == 0, (args, err)
        assert b"BrokenPipe" not in err


def test_sim_on_a_taken_port_exits_1_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "c.toml"
        cfg.write_text(f"[sim]\nport = {port}\n")
        res = cli(cfg, "sim", timeout=20)
    assert res.returncode == 1
    assert "sim_start_failed" in res.stderr
    assert "Traceback" not in res.stderr


def test_sim_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    res = cli(tmp_path / "absent.toml", "sim", "--port", "70000")
    # the config file is named only if it is read: the port is refused first, by argparse
    assert res.returncode == 2
    assert "port must be between 0 and 65535" in res.stderr


def test_unexpected_error_is_scrubbed_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine import cli as cli_mod
    from engine import logs
    from engine.secrets import Secret

    secret = Secret("internal-error-secret-42ab")

    def boom(*_a: object) -> int:
        raise RuntimeError(f"bug near {secret.reveal()}")

    monkeypatch.setattr(cli_mod, "_dispatch", boom)
    try:
        code = cli_mod.main(["apis"])
    finally:
        logs.setup("warning", "json", io.StringIO())
    err = capsys.readouterr().err
    assert code == 1
    assert "internal error: RuntimeError: bug near ***" in err
    assert "command_failed" in err  # the traceback, through the redactor
    assert secret.reveal() not in err


def test_watch_into_a_closed_pipe_stops_quietly(sim_config: Path) -> None:
    # `watch 0B 005930 | head -1`: once the reader is gone, watch ends with 0, not a spin.
    env = {**os.environ, "KIWOOM_APPKEY": APPKEY, "KIWOOM_SECRETKEY": SECRETKEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "-c", str(sim_config), "watch", "0B", "005930"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert orjson.loads(first)["event"] == "Trade"
    proc.stdout.close()
    try:
        assert proc.wait(15) == 0
    finally:
        proc.kill()
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()


def test_watch_refused_registration_is_a_broker_error(sim_config: Path) -> None:
    res = cli(sim_config, "watch", "ZZ", "005930", "--count", "1")
    assert res.returncode == 4, res.stderr
    assert "REG" in res.stderr or "return_code" in res.stderr


def test_a_watch_that_could_never_print_is_a_usage_error(sim_config: Path) -> None:
    # Without an item a market type's REG carries nothing and the watch used to wait forever.
    cases = [
        (["watch", "0B"], "ITEM"),
        (["watch", "0B", ""], "ITEM"),
        (["watch", "0B", "005930", " "], "ITEM"),
        (["watch", "0B", "005930", "--count", "0"], "--count"),
        (["watch", "0B", "005930", "--count", "-1"], "--count"),
    ]
    # All at once: one after the other, five interpreter start-ups on a loaded machine (several
    # seconds each) came near the test's limit. The timeout catches a watch that waits.
    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(lambda case: cli(sim_config, *case[0], timeout=40), cases))
    for (args, says), res in zip(cases, results, strict=True):
        assert res.returncode == 2, (args, res.stderr)
        assert says in res.stderr, (args, res.stderr)


def test_watch_stops_cleanly_on_sigterm(sim_config: Path) -> None:
    env = {**os.environ, "KIWOOM_APPKEY": APPKEY, "KIWOOM_SECRETKEY": SECRETKEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "-c", str(sim_config), "watch", "0B", "005930"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert orjson.loads(proc.stdout.readline())["event"] == "Trade"
        proc.terminate()
        _, err = proc.communicate(timeout=15)  # keeps reading: a full pipe cannot block it
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


def test_a_request_too_large_fails_at_once_with_the_reason(sim_config: Path) -> None:
    # Over the server's 1 MB: HTTP 413 without an envelope. A retry would be refused the same.
    pads = [f"pad{i}={'0' * 120_000}" for i in range(9)]  # one argv string holds 128 KB at most
    res = cli(sim_config, "call", "ka10001", "stk_cd=005930", *pads)
    assert res.returncode == 4, res.stderr
    assert "HTTP 413" in res.stderr
    assert "not retried" in res.stderr
    assert "rest_retry" not in res.stderr


async def _cli_async(cfg: Path, *args: str) -> tuple[int, str, str]:
    # For a simulator running in this test's event loop: the loop must keep serving it.
    env = {**os.environ, "KIWOOM_APPKEY": APPKEY, "KIWOOM_SECRETKEY": SECRETKEY}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "engine", "-c", str(cfg), *args],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_server_text_reaches_the_terminal_inert(simulator: Simulator, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\nrest_url = "{simulator.rest_url}"\n'
        f'ws_url = "{simulator.ws_url}"\n'
    )
    hostile_msg = "\x1b]0;owned\x07\x1b[2J입력값 오류[1902:" + "A" * 100_000 + "]"

    async def hostile(body: dict[str, Any], next_key: str) -> SimReply:
        raise SimBusinessError(2, hostile_msg)

    simulator.state.rest_handlers["ka10001"] = hostile
    code, _, err = await _cli_async(cfg, "call", "ka10001", "stk_cd=005930")
    assert code == 4, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("kiwoom-engine:")]
    assert "\x1b" not in err
    assert "\x07" not in err
    assert "\\x1b]0;owned\\x07\\x1b[2J입력값 오류[1902:AAA" in line  # shown, not obeyed
    assert len(err) < 1_000
    assert line.endswith("more characters)")

    # JSON on stdout: orjson escapes C0 itself; C1 (CSI), DEL and bidi overrides it leaves raw.
    name = "\x9b2J\u202e삼성전자\x7f"

    async def odd(body: dict[str, Any], next_key: str) -> SimReply:
        return SimReply({"stk_cd": "005930", "stk_nm": name})

    simulator.state.rest_handlers["ka10001"] = odd
    code, out, err = await _cli_async(cfg, "call", "ka10001", "stk_cd=005930")
    assert code == 0, err
    for raw in ("\x9b", "\u202e", "\x7f"):
        assert raw not in out
    assert orjson.loads(out)["stk_nm"] == name  # the same JSON value
