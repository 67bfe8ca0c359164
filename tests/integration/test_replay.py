"""Record the feed with the client's recorder, replay it through a second simulator, and
receive the same events; a replay that cannot be read or breaks is told, never silent."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import config, daemon, logs
from engine.clock import ManualClock
from engine.events import ConditionHit, Event, SessionChanged, Trade
from engine.kiwoom.recorder import FrameRecorder
from engine.kiwoom.rest import KiwoomRest
from engine.kiwoom.ws import KiwoomWebSocket
from engine.sim.market import MarketGenerator
from engine.sim.replay import RecordingScan, replay_entries, scan_recording
from engine.sim.simulator import EXIT_STARTUP, Simulator, serve_forever
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(30)

N = 15


async def collect_trades(
    sim: Simulator, n: int, recorder: FrameRecorder | None = None
) -> list[Trade]:
    trades: list[Trade] = []

    def on_event(ev: Event) -> None:
        if isinstance(ev, Trade):
            trades.append(ev)

    async with trading_session(sim, on_event, recorder) as (_api, ws):
        await ws.subscribe(["0B"], ["005930"])
        await until(lambda: len(trades) >= n, within_s=10.0)
    return trades[:n]


async def test_replayed_recording_yields_the_recorded_trades(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    base = dataclasses.replace(config.load(None, env={}).sim, port=0, events_per_s=300.0)
    async with Simulator(base) as live:
        recorded = await collect_trades(live, N, FrameRecorder(path))
    assert path.stat().st_size > 0

    async with Simulator(dataclasses.replace(base, replay=str(path))) as replay:
        replayed = await collect_trades(replay, N)
    assert replayed == recorded


# --- a replay that cannot be read, or breaks after start-up ------------------------------------


def log_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def replay_config(path: Path) -> config.Config:
    cfg = config.load(None, env={})
    return dataclasses.replace(
        cfg,
        sim=dataclasses.replace(cfg.sim, port=0, replay=str(path)),
        daemon=dataclasses.replace(cfg.daemon, state_dir=str(path.parent / "state")),
    )


@pytest.mark.parametrize("kind", ["missing", "directory"])
async def test_an_unreadable_replay_stops_start_up_naming_the_key(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "feed.ndjson"
    if kind == "directory":
        path.mkdir()
    cfg = replay_config(path)
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    stopped = asyncio.Event()
    stopped.set()  # a simulator that started would stop at once, with 0
    assert await serve_forever(cfg.sim, stop=stopped) == EXIT_STARTUP
    code = await asyncio.wait_for(daemon.run(cfg, stop=asyncio.Event()), 10)
    assert code == daemon.EXIT_STARTUP
    failed = [line for line in log_lines(buf) if line["event"] == "sim_start_failed"]
    assert len(failed) == 2
    for line in failed:
        assert line["error"].startswith(f"sim.replay: cannot read '{path}': ")
    assert "daemon_running" not in buf.getvalue()


def write_recording(path: Path, entries: list[dict[str, Any]]) -> None:
    lines = [
        orjson.dumps({"ts": 1000.0 + i * 0.001, "frame": orjson.dumps(frame).decode()})
        for i, frame in enumerate({"trnm": "REAL", "data": [e]} for e in entries)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


def trade_entries(n: int) -> list[dict[str, Any]]:
    gen = MarketGenerator(["005930"], 7, ManualClock(), types=("0B",))
    return gen.next_entries(n)


async def test_a_malformed_entry_mid_replay_is_skipped_and_the_replay_goes_on(
    tmp_path: Path,
) -> None:
    good = trade_entries(3)
    bad = {**good[0], "item": ["005930"]}  # routed on, it used to kill the feed silently
    path = tmp_path / "feed.ndjson"
    write_recording(path, [good[0], bad, good[1], good[2]])
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    async with Simulator(replay_config(path).sim) as sim:
        trades = await collect_trades(sim, 3)
    assert [t.price for t in trades] == [int(e["values"]["10"].lstrip("+-")) for e in good]
    (warning,) = [line for line in log_lines(buf) if line["event"] == "replay_frames_bad"]
    assert warning["bad"] == 1


async def test_a_replay_that_breaks_after_start_up_is_logged_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "feed.ndjson"
    write_recording(path, trade_entries(3))
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    async with Simulator(replay_config(path).sim) as sim:
        path.unlink()  # read at start-up; gone when the first REG starts the replay
        async with trading_session(sim, lambda _ev: None) as (_api, ws):
            await ws.subscribe(["0B"], ["005930"])
            await until(lambda: "sim_replay_failed" in buf.getvalue(), within_s=10.0)
            assert ws.connected  # the market stops; the session stays up
    # ... and leaving the simulator (what SIGTERM does) raised nothing.
    (failed,) = [line for line in log_lines(buf) if line["event"] == "sim_replay_failed"]
    assert failed["key"] == "sim.replay"
    assert failed["path"] == str(path)
    assert failed["error_type"] == "FileNotFoundError"


def test_sim_command_exits_0_on_sigterm_after_its_replay_broke(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    write_recording(path, trade_entries(3))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f'[sim]\nport = {port}\nreplay = "{path}"\n')
    stderr = tmp_path / "sim.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "-c", str(cfg_path), "sim"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:

        async def break_the_replay() -> None:
            await until(lambda: "sim_serving" in stderr.read_text(), within_s=15.0)
            path.unlink()
            cfg = config.load(cfg_path, env={})
            async with KiwoomRest.from_config(cfg) as rest:
                ws = KiwoomWebSocket(cfg.ws_url, rest.tokens.token, rest.tokens.invalidate)
                await ws.start()
                try:
                    await ws.subscribe(["0B"], ["005930"])
                    await until(lambda: "sim_replay_failed" in stderr.read_text(), within_s=10.0)
                finally:
                    await ws.close()

        asyncio.run(break_the_replay())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "internal error" not in stderr.read_text()


def test_recorded_conditions_are_the_last_listing_and_each_first_complete_answer(
    tmp_path: Path,
) -> None:
    frames: list[Any] = [
        {"trnm": "LOGIN", "return_code": 0, "return_msg": ""},
        {"trnm": "CNSRLST", "return_code": 0, "data": [["0", "old"]]},
        {"trnm": "CNSRLST", "return_code": 0, "data": [["0", "급등주"], ["12 ", "a/b+#"]]},
        {"trnm": "CNSRREQ", "seq": "12 ", "return_code": 0, "data": [{"jmcode": "A005930"}]},
        {"trnm": "CNSRREQ", "seq": "12", "return_code": 0, "data": [{"jmcode": "A000660"}]},
        {"trnm": "CNSRREQ", "seq": "0", "return_code": 1, "return_msg": "한도"},
        {"trnm": "CNSRREQ", "seq": "0", "cont_yn": "Y", "return_code": 0, "data": [{"9001": "A1"}]},
        {"trnm": "CNSRREQ", "seq": "0", "cont_yn": "N", "return_code": 0, "data": []},
        {"trnm": "CNSRREQ", "seq": "7", "return_code": 0, "data": [["not", "a row"]]},
        {"trnm": "CNSRLST", "return_code": 1, "return_msg": "실패"},
    ]
    path = tmp_path / "feed.ndjson"
    lines = [orjson.dumps({"ts": 1.0, "frame": orjson.dumps(f).decode()}) for f in frames]
    path.write_bytes(b"\n".join([*lines, b'{"ts": 1, "frame": "{CNSRLST"}']) + b"\n")
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    scan = scan_recording(path)
    got = scan.conditions
    assert got is not None
    assert scan.state_types == frozenset()
    assert got.listed == (("0", "급등주"), ("12", "a/b+#"))
    assert got.members == {"12": ["005930"], "0": []}
    (warning,) = [line for line in log_lines(buf) if line["event"] == "replay_conditions_bad"]
    assert warning["bad"] == 2
    write_recording(path, trade_entries(1))
    assert scan_recording(path) == RecordingScan(None, frozenset())


SESSION_0S = {
    "type": "0s",
    "name": "장시작시간",
    "item": "",
    "values": {"215": "2", "20": "152000"},
}


@pytest.mark.parametrize(
    ("with_0s", "want"),
    [
        (False, {("KRX", "regular"), ("NXT", "regular")}),
        (True, {("KRX", "closing_auction")}),
    ],
    ids=["older-recording", "recorded-0s"],
)
async def test_a_0s_registration_starts_with_the_recordings_session_else_the_simulators(
    tmp_path: Path, with_0s: bool, want: set[tuple[str, str]]
) -> None:
    # An older recording (no 0s): a 0s registration still starts with the simulator's notional
    # session, as mode sim's risk checks need; one with 0s gets the recorded notice only.
    path = tmp_path / "feed.ndjson"
    write_recording(path, [*trade_entries(3), *([SESSION_0S] if with_0s else [])])
    got: list[SessionChanged] = []

    def on_event(ev: Event) -> None:
        if isinstance(ev, SessionChanged):
            got.append(ev)

    async with (
        Simulator(replay_config(path).sim) as sim,
        trading_session(sim, on_event) as (_api, ws),
    ):
        await ws.subscribe(["0B"], ["005930"])
        await ws.subscribe(["0s"], [])
        await until(lambda: len(got) >= len(want), within_s=10.0)
        await sim.realtime.flush()
    assert {(s.exchange.value, s.state.value) for s in got} == want
    assert len(got) == len(want)


async def test_replayed_condition_pushes_move_the_members_and_a_malformed_one_goes_as_recorded(
    tmp_path: Path,
) -> None:
    def push(code: str, change: str) -> dict[str, Any]:
        values = {"841": "4 ", "9001": code, "843": change, "20": "100000", "907": "2"}
        return {"type": "02", "name": "조건검색", "item": code, "values": values}

    frames: list[Any] = [
        {"trnm": "CNSRLST", "return_code": 0, "data": [["4", "급등주"]]},
        {"trnm": "CNSRREQ", "seq": "4", "return_code": 0, "data": [{"jmcode": "A005930"}]},
        {"trnm": "REAL", "data": [trade_entries(1)[0]]},
        {"trnm": "REAL", "data": [push("000660", "X")]},  # no such 843: the client's to count
        {"trnm": "REAL", "data": [push("000660", "I"), push("005930", "D")]},
    ]
    path = tmp_path / "feed.ndjson"
    lines = [
        orjson.dumps({"ts": 1000.0 + i * 0.001, "frame": orjson.dumps(f).decode()})
        for i, f in enumerate(frames)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    hits: list[ConditionHit] = []

    def on_event(ev: Event) -> None:
        if isinstance(ev, ConditionHit):
            hits.append(ev)

    async with (
        Simulator(replay_config(path).sim) as sim,
        trading_session(sim, on_event) as (_api, ws),
    ):
        assert await ws.conditions() == [("4", "급등주")]
        assert await ws.search("4", realtime=True) == ["005930"]  # the recorded answer
        await ws.subscribe(["0B"], ["005930"])  # the replay starts
        await until(lambda: len(hits) >= 3, within_s=10.0)
        await sim.realtime.flush()
        assert [(h.symbol, h.entered, h.time) for h in hits] == [
            ("005930", True, 0),  # the member the search answered
            ("000660", True, 100000),  # then the recorded pushes
            ("005930", False, 100000),
        ]
        assert ws.stats.reasons["_BadEntry"] == 1
        # A search started now answers the members as the replay left them.
        assert sim.conditions.members("4") == ["000660"]
        (session,) = [s for s in sim.realtime.sessions if s.logged_in]
        assert session.cnsr.realtime == {"4": ["000660"]}


def test_the_recorded_accounts_own_notices_are_never_replayed(tmp_path: Path) -> None:
    # A live recording holds the account's 00 (order execution) and 04 (balance) pushes
    # beside the market's: replayed, a client would book fills for orders it never placed.
    def real(rtype: str, item: str) -> str:
        values = {"20": "090001", "10": "+70000"}
        return orjson.dumps(
            {"trnm": "REAL", "data": [{"type": rtype, "name": "x", "item": item, "values": values}]}
        ).decode()

    path = tmp_path / "feed.ndjson"
    frames = [real("0B", "005930"), real("00", ""), real("04", "005930"), real("0B", "000660")]
    path.write_bytes(
        b"".join(orjson.dumps({"ts": 1.0 + i, "frame": f}) + b"\n" for i, f in enumerate(frames))
    )
    got = [(e.entry["type"], e.entry["item"]) for e in replay_entries(path)]
    assert got == [("0B", "005930"), ("0B", "000660")]
