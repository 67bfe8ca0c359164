"""Every bad config file ends in one line and exit 3; every number has a documented range.

Through `cli.main` as a user runs it (exit code, stderr), and through the loader for the
per-key ranges. The fuzz tests feed the CLI any bytes, and any TOML value under any key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import json
import os
import re
import socket
import tempfile
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine import cli, config, logs
from engine.config import ConfigError, describe_range
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
CONFIG_ERROR = "kiwoom-engine: config error: "


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`kiwoom-engine argv...` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
    finally:
        logs.setup("warning", "json", io.StringIO())  # no handler left on a dead buffer
    return code, out.getvalue(), err.getvalue()


def assert_one_line_config_error(code: int, out: str, err: str, path: Path) -> str:
    assert code == cli.EXIT_CONFIG, err
    assert out == ""
    assert err.startswith(f"{CONFIG_ERROR}{path}: "), err
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert len(err.splitlines()) == 1, err  # no \r, \x1c.., \u2028 line breaks either
    assert "\x1b" not in err
    assert "Traceback" not in err
    return err


# --- files that are not a readable UTF-8 TOML file ---------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)), "not a UTF-8 text file (invalid byte at offset 128)"),
        ('# 설정\n[kiwoom]\nmode = "sim"\n'.encode("euc-kr"), "not a UTF-8 text file"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "not valid TOML"),
        (b'[kiwoom]\nmode = "sim"\x00\n', "not valid TOML"),
        (b"a = " + b"[" * 5000, "not valid TOML: nested too deeply"),
        (b"[sim]\nport = " + b"9" * 5000 + b"\n", "not valid TOML: a number too long to read"),
    ],
)
def test_binary_and_non_utf8_files_are_one_line_exit_3(
    tmp_path: Path, content: bytes, message: str
) -> None:
    p = tmp_path / "c.toml"
    p.write_bytes(content)
    err = assert_one_line_config_error(*run_cli("-c", str(p), "apis", "ka10001"), p)
    assert message in err


def test_a_directory_is_one_line_exit_3(tmp_path: Path) -> None:
    err = assert_one_line_config_error(*run_cli("-c", str(tmp_path), "apis"), tmp_path)
    assert "cannot read the file: Is a directory" in err


def test_a_path_that_cannot_be_opened_is_one_line_exit_3(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("")
    under_a_file = regular / "c.toml"
    err = assert_one_line_config_error(*run_cli("-c", str(under_a_file), "apis"), under_a_file)
    assert "cannot read the file: Not a directory" in err
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    err = assert_one_line_config_error(*run_cli("-c", str(loop), "apis"), loop)
    assert "cannot read the file: Too many levels of symbolic links" in err


@pytest.mark.parametrize("table", ["portfolio", "sim"])
def test_a_flat_sell_tax_and_the_table_both_set_stop_check_with_both_keys_named(
    tmp_path: Path, table: str
) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f"[{table}]\nsell_tax_bp = 20\nsell_tax_table = true\n")
    err = assert_one_line_config_error(*run_cli("-c", str(p), "check"), p)
    assert err.startswith(
        f"{CONFIG_ERROR}{p}: {table}.sell_tax_bp and {table}.sell_tax_table: both set"
    ), err
    # Either alone is a config `check` passes.
    for alone in ("sell_tax_bp = 20", "sell_tax_table = true", "sell_tax_table = false"):
        p.write_text(f"[{table}]\n{alone}\n")
        code, out, err = run_cli("-c", str(p), "check")
        assert (code, err) == (0, ""), err
        assert out.startswith(f"{p}: ok; mode sim"), out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file_is_one_line_exit_3(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[kiwoom]\nmode = "sim"\n')
    p.chmod(0)
    err = assert_one_line_config_error(*run_cli("-c", str(p), "apis"), p)
    assert "cannot read the file: Permission denied" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # keys and values from the file never break the line or reach the terminal raw
        ('[kiwoom]\n"mo\\nde\\u001b[2J" = 1\n', "kiwoom.mo\\nde\\x1b[2J: unknown key"),
        ('[kiwoom]\nmode = "pr\\nod\\r\\u2028"\n', 'got "pr\\nod\\r\\u2028"'),
        ('[kiwoom.cache.ttl_s]\n"ka\\u0085" = 1\n', "kiwoom.cache.ttl_s.ka\\x85: unknown api-id"),
        ('[log]\nlevel = "' + "x" * 100_000 + '"\n', 'got "' + "x" * 60 + '..."'),
        ("[sim]\nport = " + "9" * 400 + "\n", "sim.port: must be between 0 and 65535, got an"),
        ("[kiwoom]\nrequest_timeout_s = " + "9" * 400 + "\n", "number too large"),
    ],
)
def test_text_from_the_file_is_escaped_and_cut(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    err = assert_one_line_config_error(*run_cli("-c", str(p), "apis"), p)
    assert message in err
    assert len(err) < len(str(p)) + 400


# --- numbers: every one has a documented range -------------------------------------------


@dataclasses.dataclass(frozen=True)
class NumericKey:
    path: str
    """Dotted key path; for a table of numbers (per api-id), the table's path."""
    kind: type
    lo: float
    hi: float
    above: bool
    table: bool


def numeric_keys(cls: type[Any] = config.Config, prefix: str = "") -> Iterator[NumericKey]:
    """Every number the loader reads, found from the dataclasses themselves."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("secret") or f.metadata.get("internal"):
            continue
        tp, path, table = hints[f.name], f"{prefix}{f.name}", False
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            yield from numeric_keys(tp, f"{path}.")
            continue
        if typing.get_origin(tp) in (Mapping, dict):
            tp, table = typing.get_args(tp)[1], True
        if tp in (int, float):
            lo, hi, above = f.metadata.get("range", (None, None, False))
            yield NumericKey(path, tp, lo, hi, above, table)


NUMERIC_KEYS = list(numeric_keys())


def test_the_numeric_keys_are_all_found() -> None:
    paths = {k.path for k in NUMERIC_KEYS}
    assert {"kiwoom.retry.base_delay_s", "kiwoom.cache.ttl_s", "sim.token_ttl_s"} <= paths
    assert "sim.system_frames_before_login" in paths
    assert len(NUMERIC_KEYS) >= 29  # as of this writing; more keys may come, none may go


@pytest.mark.parametrize("key", NUMERIC_KEYS, ids=lambda k: k.path)
def test_every_number_has_a_range_and_config_toml_states_it(key: NumericKey) -> None:
    assert key.lo is not None, f"{key.path}: no range"
    assert key.hi is not None, f"{key.path}: no upper bound"
    assert key.lo < key.hi
    section, _, name = key.path.rpartition(".")
    if key.table:
        section, name = key.path, ""
    documented = documentation_line(section, name)
    assert describe_range(key.lo, key.hi, key.above) in documented, documented


def documentation_line(section: str, name: str) -> str:
    """The config.toml line of `name` in `[section]` (commented out or not); with no name, the
    line of the section's header."""
    current = ""
    for line in (ROOT / "config.toml").read_text().splitlines():
        header = re.match(r"^#?\s*\[([\w.]+)\]", line)
        if header:
            current = header.group(1)
            if current == section and not name:
                return line
            continue
        if current == section and name and re.match(rf"^#?\s*{name}\s*=", line):
            return line
    raise AssertionError(f"config.toml does not mention {section}.{name}")


def toml_line(key: NumericKey, value: object) -> str:
    section, _, name = key.path.rpartition(".")
    if key.table:
        section, name = key.path, "ka10001"  # an api-id both tables accept
    return f"[{section}]\n{name} = {value}\n"


@pytest.mark.parametrize("key", NUMERIC_KEYS, ids=lambda k: k.path)
def test_the_ends_of_each_range_load_and_past_them_is_refused(
    tmp_path: Path, key: NumericKey
) -> None:
    assert key.hi is not None
    p = tmp_path / "c.toml"
    where = f"{key.path}.ka10001" if key.table else key.path
    past = [key.hi + 1, 1e308] if key.kind is float else [int(key.hi) + 1, 10**30]
    for value in past:
        p.write_text(toml_line(key, value))
        with pytest.raises(ConfigError) as exc:
            config.load(p, env={})
        assert f"{p}: {where}: must be {describe_range(key.lo, key.hi, key.above)}" in str(
            exc.value
        )
    low = key.lo + (0.5 if key.above else 0)
    for value in (int(key.hi) if key.kind is int else float(key.hi), low):
        p.write_text(toml_line(key, value))
        cfg = config.load(p, env={})
        assert read_key(cfg, where) == value


def read_key(cfg: config.Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = node[part] if isinstance(node, Mapping) else getattr(node, part)
    return node


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("section", "name"),
    [
        ("kiwoom", "token_refresh_margin_s"),  # was: OverflowError, exit 1, an unclosed session
        ("sim", "token_ttl_s"),  # was: every token request answered 500
        ("kiwoom.retry", "base_delay_s"),  # was: `call` hung forever
    ],
)
def test_the_reported_huge_numbers_stop_call_with_exit_3(
    tmp_path: Path, section: str, name: str
) -> None:
    p = tmp_path / "c.toml"
    sim = "" if section == "sim" else "[sim]\n"
    p.write_text(f"[{section}]\n{name} = 1e308\n{sim}port = {closed_port()}\n")
    err = assert_one_line_config_error(*run_cli("-c", str(p), "call", "ka10001", "stk_cd=1"), p)
    assert f"{section}.{name}: must be " in err
    assert err.rstrip().endswith("got 1e+308")


async def test_every_number_at_its_upper_bound_still_works(tmp_path: Path) -> None:
    # Upper ends are meant as sane settings, not as the edge of a crash: a config with every
    # number at its maximum (the simulator's port and feed rate aside) issues a token, calls,
    # reads the account and logs in to the feed.
    lines: dict[str, list[str]] = {}
    for key in NUMERIC_KEYS:
        if key.path in ("sim.port", "sim.events_per_s"):
            continue
        section, _, name = key.path.rpartition(".")
        if key.table:
            section, name = key.path, "ka10001"
        assert key.hi is not None
        value = int(key.hi) if key.kind is int else float(key.hi)
        lines.setdefault(section, []).append(f"{name} = {value}")
    lines["sim"].append("port = 0")
    p = tmp_path / "c.toml"
    p.write_text("".join(f"[{s}]\n" + "\n".join(v) + "\n" for s, v in lines.items()))
    cfg = config.load(p, env={})
    assert cfg.sim.cash == 10**13
    assert cfg.sim.system_frames_before_login == 10
    async with Simulator(cfg.sim) as sim:
        kiwoom = dataclasses.replace(cfg.kiwoom, rest_url=sim.rest_url, ws_url=sim.ws_url)
        async with KiwoomRest.from_config(dataclasses.replace(cfg, kiwoom=kiwoom)) as rest:
            assert (await rest.call("ka10001", {"stk_cd": "005930"})).body["stk_cd"] == "005930"
            deposit = (await rest.call("kt00001", {"qry_tp": "3"})).body
            assert int(deposit["entr"]) == 10**13
            ws = KiwoomWebSocket(sim.ws_url, rest.tokens.token, rest.tokens.invalidate)
            try:
                await ws.start()
                assert ws.sessions == 1
            finally:
                await ws.close()


# --- fuzz: any bytes, any value under any key ---------------------------------------------


def known_key_paths(cls: type[Any] = config.Config, prefix: str = "") -> Iterator[str]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        path = f"{prefix}{f.name}"
        yield path
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            yield from known_key_paths(tp, f"{path}.")
        elif typing.get_origin(tp) in (Mapping, dict):
            yield from (f"{path}.{api_id}" for api_id in ("ka10001", "ka10081", "kt00018"))


KEY_PATHS = sorted(known_key_paths())

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.sampled_from([0, 1, -1, 0.0, 1e308, -1e308, 5e-324, 2**63, 2**64]),
    st.text(max_size=50),
    st.sampled_from(["sim", "live", "mock", "debug", "json", "http://x", "ws://x/y", "ka10001"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)
key_paths = st.one_of(
    st.sampled_from(KEY_PATHS).map(lambda p: p.split(".")),
    st.lists(st.text(max_size=12), min_size=1, max_size=3),
)


def toml_string(text: str) -> str:
    # JSON's escapes are TOML's; TOML also refuses a raw DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def render(value: Any) -> str:
    """`value` as a TOML value (inline tables and arrays for the containers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {render(v)}" for k, v in value.items()) + "}"


@contextlib.contextmanager
def config_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d) / "c.toml"


def assert_exit_0_or_one_line_3(path: Path) -> None:
    code, out, err = run_cli("-c", str(path), "apis", "ka10001")
    if code == 0:
        assert "ka10001" in out
        assert "Traceback" not in err
    else:
        assert_one_line_config_error(code, out, err, path)


@settings(max_examples=100, deadline=None)
@given(content=st.binary(max_size=300))
def test_fuzz_any_bytes_end_in_exit_0_or_one_line_exit_3(content: bytes) -> None:
    with config_file() as p:
        p.write_bytes(content)
        assert_exit_0_or_one_line_3(p)


@settings(max_examples=200, deadline=None)
@given(assignments=st.lists(st.tuples(key_paths, toml_values), min_size=1, max_size=3))
def test_fuzz_any_value_under_any_key_ends_in_exit_0_or_one_line_exit_3(
    assignments: list[tuple[list[str], Any]],
) -> None:
    text = "".join(
        ".".join(toml_string(part) for part in path) + f" = {render(value)}\n"
        for path, value in assignments
    )
    with config_file() as p:
        p.write_text(text, encoding="utf-8")
        assert_exit_0_or_one_line_3(p)


# --- fuzz: [[strategies]] tables, through `check` -----------------------------------------

PLUGINS = {
    "good.py": "from engine.strategy import Strategy\n\nclass Good(Strategy):\n    pass\n",
    "broken.py": "class Broken(:\n",
    "raises.py": "raise RuntimeError('at import')\n",
    "exits.py": "import sys\nsys.exit(7)\n",
    "not_a_strategy.py": "class Good:\n    pass\n",
    "async_handler.py": (
        "from engine.strategy import Strategy\n\nclass Good(Strategy):\n"
        "    async def on_trade(self, trade):\n        pass\n"
    ),
    "picky.py": (
        "from engine.strategy import Strategy\n\nclass Good(Strategy):\n"
        "    @classmethod\n    def check_params(cls, params):\n"
        "        raise TypeError(f'no: {dict(params)!r}')\n"
    ),
    "notes.txt": "not python\n",
}


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plugins")
    for name, text in PLUGINS.items():
        (d / name).write_text(text)
    (d / "a_directory.py").mkdir()
    return d


strategy_values: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(
        st.sampled_from(["s1", "s2", "a.b-c_d", "", "x" * 65, "s1\n", "../up", "mo mentum"]),
        toml_values,
    ),
    "class": st.one_of(
        st.sampled_from(["Good", "Broken", "Momentum", "", "__class__"]), toml_values
    ),
    # Chosen from a fixed set: importing any text as a path or a module could run anything.
    "path": st.sampled_from(
        [*PLUGINS, "a_directory.py", "missing.py", "", str(ROOT / "strategies" / "momentum.py")]
    ),
    "entry_point": st.sampled_from(
        ["engine.strategy:Strategy", "engine.strategy:Nope", "engine.nope_xyz:X", "no-such", ":"]
    ),
    "symbols": st.one_of(
        st.lists(st.sampled_from(["005930", "0088M0", "5930", "005930\n", "A005930", ""])),
        toml_values,
    ),
    "bars": st.one_of(
        st.lists(st.sampled_from(["1m", "5m", "1d", "0m", "1x", "", "1m\n"])), toml_values
    ),
    "history": st.one_of(st.integers(-1, 10_001), toml_values),
    "params": st.one_of(
        st.dictionaries(st.sampled_from(["window", "qty", "x"]), toml_values), toml_values
    ),
    "enabled": st.one_of(st.booleans(), toml_values),
    "max_errors": toml_values,
    "budget_ms": toml_values,
    "max_overruns": toml_values,
    "unknown_key": toml_values,
}
GOOD = {"path": "good.py", "class": "Good", "symbols": ["005930"]}

strategy_tables = st.one_of(
    st.fixed_dictionaries(
        {"name": strategy_values["name"]},
        optional={k: v for k, v in strategy_values.items() if k != "name"},
    ),
    st.fixed_dictionaries({}, optional=strategy_values),
    # a sound table with one key set to anything: the check of that key alone
    st.sampled_from(sorted(strategy_values)).flatmap(
        lambda key: st.builds(
            lambda name, value: {**GOOD, "name": name, key: value},
            st.sampled_from(["s1", "s2"]),
            strategy_values[key],
        )
    ),
)


@settings(max_examples=80, deadline=None)
@given(tables=st.lists(strategy_tables, max_size=3))
@example(tables=[{**GOOD, "name": "s1\n"}])  # was: ok, and a line break in the output
@example(tables=[{**GOOD, "name": "s1", "symbols": ["005930\n"]}])  # was: ok
@example(tables=[{**GOOD, "name": "s1", "bars": ["1m\n"]}])  # was: ok
@example(tables=[{**GOOD, "name": "s1", "path": "exits.py"}])  # was: exit 7, not a word
def test_fuzz_any_strategies_tables_end_in_check_ok_or_one_line_per_problem_exit_3(
    plugin_dir: Path, tables: list[dict[str, Any]]
) -> None:
    text = "".join(
        "[[strategies]]\n" + "".join(f"{toml_string(k)} = {render(v)}\n" for k, v in t.items())
        for t in tables
    )
    p = plugin_dir / "c.toml"
    p.write_text(text, encoding="utf-8")
    code, out, err = run_cli("-c", str(p), "check")
    assert "Traceback" not in err
    if code == 0:
        assert err == ""
        assert out.startswith(f"{p}: ok; mode sim; strategies: ")
        assert out.count("\n") == 1, out
        assert len(out.splitlines()) == 1, out
        for t in tables:  # what `check` passed is what `run` would trade: nothing odd in it
            assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", t["name"]), t
            assert all(re.fullmatch(r"[0-9A-Z]{6}", s) for s in t["symbols"]), t
            assert all(re.fullmatch(r"[0-9]+[md]", b) for b in t.get("bars", [])), t
        return
    assert code == cli.EXIT_CONFIG, err
    assert out == ""
    assert err.endswith("\n")
    for line in err.splitlines():
        assert line.startswith(f"{CONFIG_ERROR}{p}: "), err
        assert "\x1b" not in line
    assert len(err.splitlines()) == err.count("\n")  # no \r, \u2028 inside a line either
