"""The README's "Other commands" work as written, after `make run`: each line, run from a
directory that has the shipped config.toml and the .venv, against a daemon started as
`make run` starts it (the shipped config, the built-in simulator), exits 0 and prints."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
from pathlib import Path

import pytest

from tests.integration.service import daemon, free_port, until_running

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Other commands") :]
    section = section[: section.index("\n## ")]
    lines = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    commands = [line.split("  #")[0].strip() for line in lines]
    return [c for c in commands if c.startswith(".venv/bin/kiwoom-engine ")]


def shipped_config_in(tmp: Path, sim_port: int, admin_port: int) -> Path:
    shutil.copytree(ROOT / "strategies", tmp / "strategies")
    (tmp / ".venv").symlink_to(ROOT / ".venv")
    text = (ROOT / "config.toml").read_text()
    replaced = (
        text.replace("\nport = 18765 ", f"\nport = {sim_port} ")
        .replace("\nport = 18780 ", f"\nport = {admin_port} ")
        .replace('\nstate_dir = "var" ', f'\nstate_dir = "{tmp / "var"}" ')
    )
    assert replaced.count(str(sim_port)) == 1
    assert replaced.count(str(admin_port)) == 1
    cfg = tmp / "config.toml"
    cfg.write_text(replaced)
    return cfg


def test_the_readme_lists_the_daemon_commands() -> None:
    commands = readme_commands()
    for name in ("status", "halt", "resume", "check", "call", "apis", "watch"):
        assert any(c.split()[1] == name for c in commands), (name, commands)


async def _run(command: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    env["PATH"] = "/usr/bin:/bin"  # no uv, no .venv/bin: the line must work as written
    proc = await asyncio.create_subprocess_exec(
        *shlex.split(command),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_readme_commands_work_as_written_after_make_run(tmp_path: Path) -> None:
    admin_port = free_port()
    cfg = shipped_config_in(tmp_path, free_port(), admin_port)
    async with daemon(cfg, admin_port) as d:
        await until_running(d)
        for command in readme_commands():
            code, out, err = await _run(command, tmp_path)
            assert code == 0, (command, err[-1_000:])
            assert out.strip(), command
            if re.search(r"\bhalt\b", command):
                assert out.startswith("trading halted"), out
        d.signal(signal.SIGTERM)
        assert await d.wait(30) == 0, d.log[-10:]
