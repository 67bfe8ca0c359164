"""`history --import`: a recording the client's recorder wrote against the simulator (trades,
quotes, books, and the account's own 00/04 notices of a filled order), plus malformed lines,
normalised into the store. Counts come from reading the file independently."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from engine import cli, config
from engine.clock import KST
from engine.data.reader import iter_events
from engine.events import Balance, Event, OrderExecution, Trade
from engine.kiwoom.recorder import FrameRecorder
from engine.models import OrderType
from engine.sim.simulator import Simulator
from tests.integration.conftest import trading_session
from tests.support import until

pytestmark = pytest.mark.timeout(60)
SYMBOL = "005930"


async def record(path: Path) -> None:
    events: list[Event] = []
    base = dataclasses.replace(config.load(None, env={}).sim, port=0, events_per_s=300.0)
    async with Simulator(base) as sim:
        recorder = FrameRecorder(path)
        async with trading_session(sim, events.append, recorder) as (api, ws):
            await ws.subscribe(["00", "04"], [])
            await ws.subscribe(["0B", "0C", "0D"], [SYMBOL])
            await until(lambda: sum(isinstance(e, Trade) for e in events) >= 20, within_s=10.0)
            _bid, ask = sim.market.best(SYMBOL)
            await api.buy(SYMBOL, 1, OrderType.LIMIT, price=ask)
            await until(
                lambda: (
                    any(isinstance(e, OrderExecution) for e in events)
                    and any(isinstance(e, Balance) for e in events)
                ),
                within_s=5.0,
            )
        recorder.close()


def entry_types(path: Path) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in path.read_bytes().splitlines():
        try:
            frame = orjson.loads(orjson.loads(line)["frame"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(frame, dict) and frame.get("trnm") == "REAL":
            out.update(e["type"] for e in frame["data"])
    return out


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def rows(data: Path, dataset: str) -> int:
    if not (data / dataset).exists():
        return 0
    return int(ds.dataset(data / dataset, partitioning="hive").count_rows())


async def test_import_keeps_market_data_and_the_account_apart(tmp_path: Path) -> None:
    rec = tmp_path / "feed.ndjson"
    await record(rec)
    with rec.open("ab") as fh:
        fh.write(b"not json at all\n")
        fh.write(b'{"ts": 1.0}\n')  # no frame
    types = entry_types(rec)
    assert types["0B"] >= 20
    assert types["00"] >= 1
    assert types["04"] >= 1

    data = tmp_path / "data"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{data}"\n')
    code, out, err = run_cli("-c", str(cfg), "history", "--import", str(rec))
    assert code == 0, err
    assert "skipped 2 malformed lines" in out
    assert "the account's own notices kept apart" in out

    assert rows(data, "trades") == types["0B"]
    assert rows(data, "quotes") == types["0C"]
    assert rows(data, "books") == types["0D"]
    assert rows(data, "account_00") == types["00"]
    assert rows(data, "account_04") == types["04"]
    trades = ds.dataset(data / "trades", partitioning="hive").to_table()
    assert set(trades.column("symbol").to_pylist()) == {SYMBOL}
    assert min(trades.column("price").to_pylist()) > 0

    # read back for a backtest: every market entry once, in the order it was heard
    first_ns = trades.column("recv_time").cast(pa.int64())[0].as_py()
    today = datetime.fromtimestamp(first_ns // 10**9, KST).date()
    events = list(iter_events(data, [SYMBOL], ["trades", "quotes", "books"], today, today))
    assert Counter(type(e).__name__ for e in events) == {
        "Trade": types["0B"],
        "Quote": types["0C"],
        "OrderBook": types["0D"],
    }
    stamps = [e.ts_recv for e in events]
    assert stamps == sorted(stamps)

    # the same file again: every entry is stored once
    code, _, err = run_cli("-c", str(cfg), "history", "--import", str(rec))
    assert code == 0, err
    assert rows(data, "trades") == types["0B"]
    assert rows(data, "account_00") == types["00"]


def test_a_recording_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    missing = tmp_path / "nope.ndjson"
    code, _, err = run_cli("-c", str(cfg), "history", "--import", str(missing))
    assert code == 1
    assert f"{missing}: cannot read the recording" in err
