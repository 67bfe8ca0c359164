"""`kiwoom-engine check` loads the config and every strategy without trading: it passes on the
shipped config.toml and names the key of each problem in a broken one; `run` refuses to start
on the same problems (exit 3) before it connects to anything."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import cli, logs
from engine.sim.simulator import Simulator
from tests.engine.conftest import sim_config

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config.toml"
MOMENTUM = ROOT / "strategies" / "momentum.py"


@pytest.fixture(autouse=True)
def _no_handler_left_on_a_dead_stream() -> object:
    # cli.main points the logs at this test's captured stderr, closed after it.
    yield
    logs.setup("warning", "json", io.StringIO())


ASYNC_HANDLER = """
from engine.strategy import Strategy

class Eager(Strategy):
    async def on_trade(self, trade):
        pass
"""


def test_check_passes_on_the_shipped_config(tmp_path: Path) -> None:
    # As a user runs it, from another directory: strategy paths are relative to the file.
    res = subprocess.run(
        [sys.executable, "-m", "engine", "-c", str(SHIPPED), "check"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")},
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (
        f"{SHIPPED}: ok; mode sim; strategies: momentum (disabled: dip_buyer, condition_breakout)"
    )
    assert res.stderr == ""


def strategy_table(**over: str) -> str:
    keys = {
        "name": '"m"',
        "path": f'"{MOMENTUM}"',
        "class": '"Momentum"',
        "symbols": '["005930"]',
        "params": "{ window = 5 }",
        **over,
    }
    return "[[strategies]]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


BROKEN = [
    pytest.param(
        "strategies[0].class",
        strategy_table(**{"class": '"Nope"'}),
        "has no class 'Nope'",
        id="class",
    ),
    pytest.param(
        "strategies[0].path",
        strategy_table(path='"strategies/missing.py"'),
        "no such file",
        id="path",
    ),
    pytest.param(
        "strategies[0].symbols[0]",
        strategy_table(symbols='["5930"]'),
        "not a KRX symbol",
        id="symbol",
    ),
    pytest.param(
        "strategies[0].params",
        strategy_table(params="{ window = 0 }"),
        "window must be an integer >= 1",
        id="params",
    ),
    pytest.param(
        "strategies[0].conditions[1]",
        strategy_table(conditions='["급등주", "seq:"]'),
        "names no seq",
        id="condition-seq",
    ),
    pytest.param(
        "strategies[0].conditions[0]",
        strategy_table(conditions='[" "]'),
        "is empty",
        id="condition-empty",
    ),
    pytest.param(
        "strategies[0].symbols",
        strategy_table(symbols="[]"),
        "at least one symbol (or `conditions`",
        id="no-symbols-no-conditions",
    ),
    pytest.param(
        "strategies[0].class",
        strategy_table(path='"eager.py"', **{"class": '"Eager"'}),
        "Eager.on_trade is async; handlers run in the event loop and must be plain methods",
        id="async-handler",
    ),
]


@pytest.mark.parametrize(("key", "table", "message"), BROKEN)
def test_check_and_run_name_the_key_of_a_broken_strategy(
    key: str, table: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "eager.py").write_text(ASYNC_HANDLER)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[kiwoom]\nmode = "sim"\n[sim]\nport = 0\n' + table)

    assert cli.main(["-c", str(cfg), "check"]) == cli.EXIT_CONFIG
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"kiwoom-engine: config error: {cfg}: {key}: ")
    assert message in lines[0]
    assert out.out == ""

    # `run` stops on the same problem, before a simulator or a socket is opened.
    assert cli.main(["-c", str(cfg), "run"]) == cli.EXIT_CONFIG
    assert capsys.readouterr().err.splitlines() == lines


def test_check_reports_every_broken_strategy_each_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[kiwoom]\nmode = "sim"\n'
        + strategy_table()
        + strategy_table(name='"b"', **{"class": '"Nope"'})
        + strategy_table(name='"c"', symbols='["abc"]')
    )
    assert cli.main(["-c", str(cfg), "check"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[3] for line in err] == [
        "strategies[1].class",
        "strategies[2].symbols[0]",
    ]


INIT_RAISES = """
from engine.strategy import Strategy

class Fragile(Strategy):
    def __init__(self, slot):
        super().__init__(slot)
        raise RuntimeError("no model file")
"""

TYPO = """
from engine.strategy import Strategy

class Typo(Strategy):
    def on_trades(self, trade):
        pass

    def on_trade(self, trade):
        pass
"""


def _mqtt(ca_file: str) -> str:
    return f'[mqtt]\ntls = true\nca_file = "{ca_file}"\n'


LOADS_WHAT_RUN_LOADS = [
    pytest.param(
        "mqtt.ca_file", lambda tmp: _mqtt(str(tmp / "missing.pem")), "no such file", id="ca-missing"
    ),
    pytest.param(
        "mqtt.ca_file",
        lambda tmp: _mqtt(str(tmp / "garbage.pem")),
        "cannot use",
        id="ca-garbage",
    ),
    pytest.param(
        "strategies[0].params",
        lambda tmp: strategy_table(params="5"),
        "must be a table",
        id="params-not-a-table",
    ),
]


@pytest.mark.parametrize(("key", "table", "message"), LOADS_WHAT_RUN_LOADS)
def test_check_and_run_refuse_what_run_cannot_load_naming_the_key(
    key: str, table: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text('[kiwoom]\nmode = "sim"\n[sim]\nport = 0\n' + table(tmp_path))
    assert cli.main(["-c", str(cfg), "check"]) == cli.EXIT_CONFIG
    out = capsys.readouterr()
    (line,) = out.err.splitlines()
    assert line.startswith(f"kiwoom-engine: config error: {cfg}: {key}: "), line
    assert message in line
    # `run` stops on the same problem, before anything connects (it exited 1 with a bare
    # FileNotFoundError naming neither file nor key).
    assert cli.main(["-c", str(cfg), "run"]) == cli.EXIT_CONFIG
    assert capsys.readouterr().err.splitlines() == [line]


def test_check_fails_on_a_strategy_whose_constructor_raises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fragile.py").write_text(INIT_RAISES)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[kiwoom]\nmode = "sim"\n'
        + strategy_table(path='"fragile.py"', **{"class": '"Fragile"'}, params="{}")
    )
    assert cli.main(["-c", str(cfg), "check"]) == cli.EXIT_CONFIG
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"kiwoom-engine: config error: {cfg}: strategies[0].class: "
        "Fragile() raised RuntimeError: no model file"
    )


def test_check_warns_about_a_method_named_like_a_handler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "typo.py").write_text(TYPO)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[kiwoom]\nmode = "sim"\n'
        + strategy_table(path='"typo.py"', **{"class": '"Typo"'}, params="{}")
    )
    assert cli.main(["-c", str(cfg), "check"]) == 0
    out = capsys.readouterr()
    (line,) = out.err.splitlines()
    assert line.startswith(
        f"kiwoom-engine: warning: {cfg}: strategies[0].class: Typo.on_trades looks like a "
        "handler but is not one"
    )
    assert "(did you mean on_trade?)" in line
    assert out.out.startswith(f"{cfg}: ok;")


REALTIME = """
from engine.strategy import Strategy

class Sector(Strategy):
    def on_realtime(self, event):
        pass
"""


def test_check_warns_about_on_realtime_without_a_realtime_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sector.py").write_text(REALTIME)
    cfg = tmp_path / "config.toml"
    table = strategy_table(path='"sector.py"', **{"class": '"Sector"'}, params="{}")
    cfg.write_text('[kiwoom]\nmode = "sim"\n' + table)
    assert cli.main(["-c", str(cfg), "check"]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"kiwoom-engine: warning: {cfg}: strategies[0].realtime: Sector.on_realtime is never called"
    )
    cfg.write_text(
        '[kiwoom]\nmode = "sim"\n' + table + 'realtime = [{type = "0J", items = ["001"]}]\n'
    )
    assert cli.main(["-c", str(cfg), "check"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["check", "status", "halt", "resume"])
def test_without_a_config_file_check_and_status_say_so_and_name_c(
    command: str, tmp_path: Path
) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "engine", command],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")},
        check=False,
    )
    assert res.returncode == cli.EXIT_CONFIG, res
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"kiwoom-engine: config error: no config.toml in {tmp_path}")
    assert "-c PATH" in line
    assert res.stdout == ""


def test_check_counts_distinct_conditions_against_the_realtime_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two strategies share ten conditions (ten realtime searches); the eleventh is one too many.
    ten = ", ".join(f'"seq:{i}"' for i in range(10))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[kiwoom]\nmode = "sim"\n'
        + strategy_table(conditions=f"[{ten}]")
        + strategy_table(name='"b"', conditions=f'["seq:9", {ten}]')
    )
    assert cli.main(["-c", str(cfg), "check"]) == 0
    capsys.readouterr()
    cfg.write_text(cfg.read_text() + strategy_table(name='"c"', conditions='["seq:3", "급등주"]'))
    assert cli.main(["-c", str(cfg), "check"]) == cli.EXIT_CONFIG
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"kiwoom-engine: config error: {cfg}: strategies[2].conditions[1]: ")
    assert "realtime condition 11" in line
    assert "kiwoom.max_realtime_conditions allows 10" in line


def test_check_online_resolves_condition_names_and_names_the_key_of_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Mode sim: the built-in simulator's login lists 급등 1% (seq 0), 급락 1% (1), 전종목 (2).
    cfg = tmp_path / "config.toml"
    base = '[kiwoom]\nmode = "sim"\n[sim]\nport = 0\n'
    cfg.write_text(base + strategy_table(conditions='["급등 1%", "seq:2"]'))
    assert cli.main(["-c", str(cfg), "check", "--online"]) == 0
    assert "ok" in capsys.readouterr().out
    cfg.write_text(
        base
        + strategy_table(conditions='["급등 1%"]')
        + strategy_table(name='"b"', conditions='["전종목", "급등주"]')
    )
    # Offline, the shape is fine; online, the login has no 급등주.
    assert cli.main(["-c", str(cfg), "check"]) == 0
    capsys.readouterr()
    assert cli.main(["-c", str(cfg), "check", "--online"]) == cli.EXIT_CONFIG
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"kiwoom-engine: config error: {cfg}: strategies[1].conditions[1]: ")
    assert "no condition '급등주'" in line
    assert "'전종목' (seq:2)" in line


async def test_check_online_in_mode_mock_against_the_simulators_url_with_secrets_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Mode mock (Kiwoom's paper trading) pointed at the simulator by kiwoom.rest_url/ws_url,
    # the app key and secret from the environment as in production, its logs at debug (on
    # stderr with the result: one-shot commands log at warning unless asked).
    appkey, secretkey = "mockAPPKEY-7f3q9zK2", "mockSECRET-Xv81rTq4pL"
    for name in [k for k in os.environ if k.startswith("KIWOOM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KIWOOM_APPKEY", appkey)
    monkeypatch.setenv("KIWOOM_SECRETKEY", secretkey)
    cfg = tmp_path / "config.toml"
    outputs: list[str] = []
    async with Simulator(sim_config()) as sim:
        capsys.readouterr()  # the simulator's own start-up lines
        base = (
            f'[kiwoom]\nmode = "mock"\nrest_url = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n'
            '[log]\nformat = "json"\n'
        )

        async def check(body: str) -> tuple[int, str, str]:
            cfg.write_text(base + body)
            # `check` runs its own event loop: in a thread, while this one serves it.
            argv = ["-c", str(cfg), "--log-level", "debug", "check", "--online"]
            code = await asyncio.to_thread(cli.main, argv)
            out, err = capsys.readouterr()
            outputs.extend((out, err))
            return code, out, err

        code, out, err = await check(strategy_table(conditions='["급등 1%", "seq:2"]'))
        assert (code, out.strip()) == (0, f"{cfg}: ok; mode mock; strategies: m"), err
        assert sim.realtime.logins == 1  # it did log in, at the simulator
        code, out, err = await check(
            strategy_table(conditions='["급등 1%"]')
            + strategy_table(name='"b"', conditions='["전종목", "급등주"]')
        )
        assert sim.realtime.logins == 2
    assert code == cli.EXIT_CONFIG
    (line,) = [x for x in err.splitlines() if x.startswith("kiwoom-engine: config error:")]
    assert line.startswith(f"kiwoom-engine: config error: {cfg}: strategies[1].conditions[1]: ")
    assert "no condition '급등주'" in line
    assert "'전종목' (seq:2)" in line
    assert out == ""
    assert '"event":"token_issued"' in outputs[1]  # the login's own log lines are there
    # Neither secret, nor a token the simulator issued for them, is in any output.
    tokens = list(sim.state.tokens.history)
    assert tokens  # one: Kiwoom hands an app key the token it already holds
    for text in outputs:
        for secret in (appkey, secretkey, *tokens):
            assert secret not in text
