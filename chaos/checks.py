"""The invariants checked after every chaos scenario. Each returns (ok, detail)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

SECRET_WINDOW = 12
"""A secret leaks when any 12 consecutive characters of it show up."""


def _no(order_no: str | None) -> str:
    return (order_no or "").lstrip("0")


def orders_match(journal: Path, book: dict[str, Any]) -> tuple[bool, str]:
    """Every order at the simulator is known to the journal, every order number the journal
    holds is at the simulator, and no intent owns two new orders (a resubmission)."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        nos = conn.execute("SELECT order_no, client_id FROM order_nos").fetchall()
        rows = conn.execute("SELECT client_id, order_no, external FROM orders").fetchall()
    finally:
        conn.close()
    owner = {_no(n): c for n, c in nos}
    for client_id, order_no, _external in rows:
        if order_no:
            owner.setdefault(_no(order_no), client_id)
    external = {c for c, _n, e in rows if e}
    sim = {_no(o["ord_no"]): o for o in book["orders"]}
    # A modify or cancel gets its own number at the broker; it belongs to the order it
    # amends, which the journal must know.
    for no, o in sim.items():
        if no not in owner and o["action"] != "new" and _no(o["orig_ord_no"]) in owner:
            owner[no] = owner[_no(o["orig_ord_no"])]
    lost = sorted(set(sim) - set(owner))
    phantom = sorted(set(owner) - set(sim))
    news: dict[str, int] = defaultdict(int)
    for no, o in sim.items():
        if o["action"] == "new" and no in owner:
            news[owner[no]] += 1
    duplicated = sorted(c for c, n in news.items() if n > 1)
    orphans = sorted(no for no, o in sim.items() if owner.get(no) in external)
    ok = not (lost or phantom or duplicated or orphans)
    detail = (
        f"{len(sim)} at sim, {len(owner)} in journal"
        + (f"; lost {[(n, sim[n]['action']) for n in lost[:5]]}" if lost else "")
        + (f"; phantom {phantom[:5]}" if phantom else "")
        + (f"; resubmitted {duplicated[:5]}" if duplicated else "")
        + (f"; untracked (external) {orphans[:5]}" if orphans else "")
    )
    return ok, detail


def books_match(status: dict[str, Any] | None, book: dict[str, Any]) -> tuple[bool, str]:
    """The daemon's positions and cash (/status) == the simulator's kt00018 / kt00001."""
    if status is None:
        return False, "no /status"
    pf = status["portfolio"]
    ours = {s: p["qty"] for s, p in pf["positions"].items() if p["qty"]}
    theirs = {s: q for s, q in book["holdings"].items() if q}
    ok = ours == theirs and pf["cash"] == book["cash"]
    return ok, f"positions {ours} vs {theirs}; cash {pf['cash']} vs {book['cash']}"


def seq_gaps(messages: Iterable[tuple[int, str, bytes]]) -> tuple[bool, str]:
    """Per daemon run and topic, the QoS 1 seqs heard are 1..n without a hole (a repeat is a
    redelivery, allowed)."""
    seen: dict[tuple[int, str], set[int]] = defaultdict(set)
    count = 0
    for run, topic, payload in messages:
        seen[(run, topic)].add(int(orjson.loads(payload)["seq"]))
        count += 1
    gaps = []
    for (run, topic), seqs in sorted(seen.items()):
        missing = sorted(set(range(1, max(seqs) + 1)) - seqs)
        if missing:
            gaps.append(f"run {run} {topic} missing {missing[:5]}")
    return not gaps, f"{count} messages on {len(seen)} topic-runs" + (
        f"; {gaps[:3]}" if gaps else ""
    )


def log_clean(log: Path, expected: frozenset[str] = frozenset()) -> tuple[bool, str]:
    """No traceback or logged exception, but those of events the scenario provokes on
    purpose (`expected`, e.g. a strategy that raises)."""
    bad: list[str] = []
    allowed = 0
    for raw in log.read_bytes().splitlines():
        if b"exception" not in raw.lower() and b"traceback" not in raw.lower():
            continue
        try:
            event = str(orjson.loads(raw).get("event", "?"))
        except orjson.JSONDecodeError:
            event = "<not json>"
        if event in expected:
            allowed += 1
        else:
            bad.append(event)
    detail = f"{len(bad)} unexpected" + (f" {sorted(set(bad))[:5]}" if bad else "")
    return not bad, detail + (f", {allowed} provoked" if allowed else "")


def no_secrets(secrets: Iterable[str], texts: dict[str, bytes]) -> tuple[bool, str]:
    """No `SECRET_WINDOW` characters of any secret in any of `texts` (name -> bytes)."""
    windows: set[bytes] = set()
    n = 0
    for secret in secrets:
        raw = secret.encode()
        n += 1
        for i in range(len(raw) - SECRET_WINDOW + 1):
            windows.add(raw[i : i + SECRET_WINDOW])
    leaks = []
    for name, text in texts.items():
        for i in range(len(text) - SECRET_WINDOW + 1):
            if text[i : i + SECRET_WINDOW] in windows:
                leaks.append(name)
                break
    return not leaks, f"{n} secrets searched" + (f"; found in {leaks}" if leaks else "")
