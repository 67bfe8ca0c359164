"""Benchmark: decoding a realistic multi-entry 0B REAL frame.

Compares, in one run on the same bytes: `orjson.loads` alone (the floor), our codec
(`decode_frame`), and a straightforward stdlib-json path. Run: `uv run python bench/codec.py`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.results import emit
from engine.kiwoom import codec as codec_mod
from engine.kiwoom.codec import CodecStats, decode_frame

# All 43 FIDs of 0B as Kiwoom sends them (direction signs, empty unused fields).
_BASE_0B = {
    "20": "091512",
    "10": "-70100",
    "11": "-300",
    "12": "-0.43",
    "27": "-70200",
    "28": "-70100",
    "15": "+125",
    "13": "8123456",
    "14": "569875",
    "16": "+70500",
    "17": "+70900",
    "18": "-69800",
    "25": "5",
    "26": "-1234567",
    "29": "-12345678",
    "30": "-13.21",
    "31": "0.14",
    "32": "",
    "228": "98.92",
    "311": "4184920",
    "290": "2",
    "691": "0",
    "567": "000000",
    "568": "000000",
    "851": "",
    "1890": "090000",
    "1891": "090312",
    "1892": "091011",
    "1030": "4012345",
    "1031": "4111111",
    "1032": "50.61",
    "1071": "21345",
    "1072": "22411",
    "1313": "+8762",
    "1315": "",
    "1316": "125",
    "1314": "+98766",
    "1497": "",
    "1498": "",
    "620": "70234",
    "732": "",
    "852": "",
    "9081": "1",
}

_SYMBOLS = ("005930", "000660", "035420", "035720", "051910")


def make_frame(entries: int = 10, price_base: int = 70100) -> bytes:
    data = []
    for i in range(entries):
        values = dict(_BASE_0B)
        values["15"] = ("+" if i % 2 else "-") + str(10 + i)
        values["13"] = str(8123456 + i * 37)
        price = price_base + 100 * (i % 3)  # distinct price strings across entries, as on a feed
        values["10"] = f"-{price}"
        values["27"] = f"-{price + 100}"
        values["28"] = f"-{price}"
        item = _SYMBOLS[i % len(_SYMBOLS)] + ("_NX" if i % 4 == 3 else "")
        data.append({"type": "0B", "name": "주식체결", "item": item, "values": values})
    return orjson.dumps({"trnm": "REAL", "data": data})


def stdlib_path(raw: bytes) -> list[dict[str, Any]]:
    """What a plain implementation does: json.loads, then a dict of converted fields."""
    out = []
    for e in json.loads(raw)["data"]:
        v = e["values"]
        item = e["item"]
        symbol, _, suffix = item.partition("_")
        out.append(
            {
                "symbol": symbol,
                "exchange": {"NX": "NXT", "AL": "SOR"}.get(suffix, "KRX"),
                "time": int(v["20"]),
                "price": abs(int(v["10"])),
                "qty": int(v["15"]),
                "cum_volume": int(v["13"]),
                "change": int(v["11"]),
                "best_ask": abs(int(v["27"])),
                "best_bid": abs(int(v["28"])),
                "open": abs(int(v["16"])),
                "high": abs(int(v["17"])),
                "low": abs(int(v["18"])),
            }
        )
    return out


def _rate(fn: Callable[[bytes], object], raw: bytes, seconds: float) -> float:
    """Frames per second: best of several timed batches."""
    n = 200
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(raw)
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
    return best


def _rate_cold(raw_frames: list[bytes], seconds: float) -> float:
    """Frames per second of the codec when no price string was seen before: the memo tables
    are emptied before every pass over frames whose prices all differ (the worst case)."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    stats = CodecStats()
    while time.perf_counter() < deadline:
        codec_mod._PX.clear()
        codec_mod._SG.clear()
        codec_mod._DG.clear()
        t0 = time.perf_counter()
        for raw in raw_frames:
            decode_frame(raw, stats)
        best = max(best, len(raw_frames) / (time.perf_counter() - t0))
    return best


def _rate_each(fn: Callable[[bytes], object], raw_frames: list[bytes], seconds: float) -> float:
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for raw in raw_frames:
            fn(raw)
        best = max(best, len(raw_frames) / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = ap.parse_args()
    raw = make_frame(args.entries)
    stats = CodecStats()
    result = decode_frame(raw, stats)
    if len(result.events) != args.entries or stats.bad_entries:
        raise SystemExit(f"codec did not decode the frame: {stats}")

    def ours(b: bytes) -> object:
        return decode_frame(b, stats)

    floor = _rate(orjson.loads, raw, args.seconds)
    codec = _rate(ours, raw, args.seconds)
    std = _rate(stdlib_path, raw, args.seconds)
    e = args.entries
    print(f"frame: {len(raw)} bytes, {e} entries of 0B with 43 FIDs")
    print(f"orjson.loads only (floor): {floor:10.0f} frames/s {floor * e:11.0f} events/s")
    print(f"codec decode_frame:        {codec:10.0f} frames/s {codec * e:11.0f} events/s")
    print(f"stdlib json path:          {std:10.0f} frames/s {std * e:11.0f} events/s")
    print(f"codec / floor  = {codec / floor:.2f}  (goal >= 0.50)")
    print(f"codec / stdlib = {codec / std:.2f}")
    emit("codec events/s", codec * e, "events/s", floor * e, "orjson.loads only", ">= 0.50x")
    # Worst case for the price memo: every frame carries price strings never seen before.
    fresh = [make_frame(e, 1000 + 3 * i) for i in range(2000)]
    floor_c = _rate_each(orjson.loads, fresh, args.seconds)
    codec_c = _rate_cold(fresh, args.seconds)
    print(f"cold memo, every price new: floor {floor_c:.0f} frames/s, codec {codec_c:.0f} frames/s")
    print(f"codec / floor (cold) = {codec_c / floor_c:.2f}")


if __name__ == "__main__":
    main()
