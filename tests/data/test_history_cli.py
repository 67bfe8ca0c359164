"""`history` in this process: the `[data]` table, no credentials needed to list or export,
and usage errors that exit 2 before anything connects."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from engine import cli, config
from engine.config import ConfigError


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_data_dir_defaults_and_refuses_unknown_keys(tmp_path: Path) -> None:
    assert config.load(None, env={}).data.dir == "var/data"
    bad = tmp_path / "c.toml"
    bad.write_text('[data]\ndir = "x"\npath = "y"\n')
    with pytest.raises(ConfigError, match=r"data\.path: unknown key"):
        config.load(bad, env={})


def test_list_needs_no_credentials_even_in_mode_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIWOOM_APPKEY", raising=False)
    monkeypatch.delenv("KIWOOM_SECRETKEY", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[kiwoom]\nmode = "live"\n[data]\ndir = "{tmp_path / "data"}"\n')
    code, out, err = run_cli("-c", str(cfg), "history", "--list")
    assert code == 0, err
    assert "nothing stored" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("history",), "name at least one SYMBOL"),
        (("history", "005930"), "--from DATE is required"),
        (("history", "005930", "--from", "2026-13-01"), "expected a date"),
        (("history", "005930", "--from", "2026-11-02", "--to", "2026-11-01"), "before --from"),
        (("history", "../etc", "--from", "2026-11-02"), "plain code"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    code, _, err = run_cli("-c", str(cfg), *args)
    assert code == 2
    assert message in err


def test_a_live_pull_without_credentials_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIWOOM_APPKEY", raising=False)
    monkeypatch.delenv("KIWOOM_SECRETKEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[kiwoom]\nmode = "live"\n[data]\ndir = "{tmp_path / "data"}"\n')
    code, _, err = run_cli("-c", str(cfg), "history", "005930", "--from", "2026-11-02")
    assert code == 3
    assert "kiwoom.appkey: missing" in err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_terminal_progress_bar_shows_pages_rows_rate_and_eta() -> None:
    from engine.clock import ManualClock
    from engine.data.pull import PullStats
    from engine.history_command import _Bar

    clock = ManualClock()
    err = _Tty()
    bar = _Bar(err, "005930 1m", clock)
    clock.advance(10.0)
    bar(PullStats("005930", "1m", pages=20, rows=1950, fraction=0.25))
    bar.close()
    line = err.getvalue()
    assert line.startswith("\r005930 1m [######..................]")
    assert "pages 20 rows 1950 2.0 p/s ETA 30s" in line
    assert line.endswith("\n")


def test_a_pull_in_mode_sim_without_the_simulator_says_to_start_it(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\nconnect_timeout_s = 0.5\n[kiwoom.retry]\nmax_attempts = 1\n'
        f'[sim]\nport = {port}\n[data]\ndir = "{tmp_path / "data"}"\n'
    )
    code, _, err = run_cli("-c", str(cfg), "history", "005930", "--from", "2026-11-02")
    assert code == 5
    assert "is `kiwoom-engine sim` running?" in err
