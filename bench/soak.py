"""Soak: the real daemon for minutes at 5,000 events/s, 10 strategies, the MQTT mirror on.

Three processes, as in production: `kiwoom-engine sim` (sim.events_per_s = 5000), a Mosquitto
of its own on a free port, and `kiwoom-engine run` with the admin endpoint on. Every second
the runner samples the daemon from outside: RSS (/proc/<pid>/status) and GET /metrics, from
which it derives the event loop's lag (the event_loop_lag_seconds histogram: the largest
bucket that moved in the second, and the mean), the depth of each bus consumer queue
(journal, mqtt, ...), the tick-to-order latency (the tick_to_order_seconds histogram) and the
event and order rates. It writes `soak.csv`, `soak.png` (when matplotlib is installed: the
`plot` dependency group) and a verdict against the goals below.

Goals (what good looks like; `verdict()` checks them after a warm-up):
- RSS growth under 20 MB;
- loop lag bounded: no second with a timer later than LAG_MAX_S, mean lag under LAG_MEAN_S;
- no queue growing without bound: in the second half of the run every queue drains below
  QUEUE_ROOM at least once, and peaks under twice the first half's peak plus QUEUE_ROOM;
- no errors: no ERROR log line or traceback, no strategy or bus handler error, exit 0 on SIGTERM;
- the load was real: events at >= 80 % of the asked rate, orders filled.

Run: `uv run --group plot python -m bench.soak [--minutes 10] [--out bench/soak]`
(`--minutes 2` is the suite's version, tests/soak/test_soak.py).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.results import emit

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_S = 5000
SYMBOLS = ("005930", "000660", "035420", "035720", "051910")
RSS_GROWTH_MAX_MB = 20.0
LAG_MAX_S = 1.0
"""A second with a timer this late would also make /healthz 503 (admin.loop_stall_s)."""
LAG_MEAN_S = 0.05
QUEUE_ROOM = 1000
MIN_RATE_SHARE = 0.8
NS = "kiwoom_engine_"

STRATEGIES = (
    # name, class, symbols, params. Together about 4 orders/s (plus modifies and cancels):
    # live Kiwoom allows 5 requests/s per account, so a daemon never orders faster for long.
    ("momentum_a", "Momentum", SYMBOLS[:2], "window = 20, qty = 1, max_position = 3, every = 1200"),
    ("momentum_b", "Momentum", SYMBOLS[2:], "window = 50, qty = 1, max_position = 3, every = 1800"),
    ("momentum_c", "Momentum", SYMBOLS, "window = 10, qty = 1, max_position = 2, every = 2700"),
    (
        "momentum_d",
        "Momentum",
        SYMBOLS[1:4],
        "window = 30, qty = 2, max_position = 4, every = 2100",
    ),
    ("quoter_a", "Quoter", SYMBOLS[:3], "every = 900"),
    ("quoter_b", "Quoter", SYMBOLS[3:], "every = 1500"),
    ("listens_a", "Listens", SYMBOLS, ""),
    ("listens_b", "Listens", SYMBOLS[:1], ""),
    ("watches", "Watches", SYMBOLS, ""),
    ("bars", "Bars", SYMBOLS, ""),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {within_s:.0f} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError("mosquitto is not installed (`make mosquitto` installs it)")
    return found


# --- the three processes -------------------------------------------------------------------------


@dataclass
class Setup:
    dir: Path
    sim_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)

    def write(self) -> tuple[Path, Path, Path]:
        symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
        broker = self.dir / "mosquitto.conf"
        broker.write_text(
            f"listener {self.mqtt_port} 127.0.0.1\npersistence false\nallow_anonymous true\n"
            f"user {getpass.getuser()}\nlog_dest file {self.dir / 'mosquitto.log'}\n"
        )
        sim = self.dir / "sim.toml"
        sim.write_text(
            f'[kiwoom]\nmode = "sim"\n'
            f"[sim]\nport = {self.sim_port}\nevents_per_s = {EVENTS_PER_S}\n"
            f"symbols = [{symbols}]\nrest_rate_per_s = 1000.0\nrest_burst = 1000\n"
            f'[log]\nlevel = "warning"\nformat = "json"\n'
        )
        tables = []
        for name, cls, syms, params, *_ in STRATEGIES:
            path = ROOT / (
                "strategies/momentum.py" if cls == "Momentum" else "bench/soak_strategies.py"
            )
            listed = ", ".join(f'"{s}"' for s in syms)
            tables.append(
                f'[[strategies]]\nname = "{name}"\npath = "{path}"\nclass = "{cls}"\n'
                f"symbols = [{listed}]\n"
                + ('bars = ["1m"]\n' if cls == "Bars" else "")
                + (f"params = {{ {params} }}\n" if params else "")
            )
        engine = self.dir / "engine.toml"
        engine.write_text(
            f'[kiwoom]\nmode = "sim"\nrest_url = "http://127.0.0.1:{self.sim_port}"\n'
            f'ws_url = "ws://127.0.0.1:{self.sim_port}/api/dostk/websocket"\n'
            "revoke_on_exit = false\n"
            f'[daemon]\nsymbols = [{symbols}]\nstate_dir = "{self.dir / "state"}"\n'
            f'[admin]\nenabled = true\nhost = "127.0.0.1"\nport = {self.admin_port}\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.mqtt_port}\nprefix = "soak/acct"\n'
            "[risk]\nmax_orders_per_s = 100\nmax_orders_per_min = 6000\nmax_open_orders = 100\n"
            "duplicate_window_s = 0.0\ndaily_loss_limit = 1000000000\n"
            "[portfolio]\nreconcile_s = 60.0\n"
            '[log]\nlevel = "info"\nformat = "json"\n' + "".join(tables)
        )
        return broker, sim, engine


@contextmanager
def processes(setup: Setup) -> Iterator[subprocess.Popen[bytes]]:
    """Broker, simulator and daemon running; yields the daemon. Stops what it started."""
    broker_conf, sim_conf, engine_conf = setup.write()
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        broker = subprocess.Popen([mosquitto_binary(), "-c", str(broker_conf)])
        started.append(broker)
        _wait_port(setup.mqtt_port, broker, "mosquitto", 10)
        with open(setup.dir / "sim.log", "wb") as sim_log:
            sim = subprocess.Popen(
                [sys.executable, "-m", "engine", "-c", str(sim_conf), "sim"],
                stdout=sim_log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        started.append(sim)
        _wait_port(setup.sim_port, sim, "the simulator", 30)
        with open(setup.dir / "daemon.log", "wb") as daemon_log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "engine", "-c", str(engine_conf), "run"],
                stdout=daemon_log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        started.append(daemon)
        _wait_port(setup.admin_port, daemon, "the daemon's admin endpoint", 30)
        yield daemon
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


# --- sampling ------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """GET /metrics, as {sample name: {sorted labels: value}}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        body: dict[str, Any] = orjson.loads(r.read())
    return body


def _buckets(m: dict[str, dict[Any, float]], name: str) -> dict[float, float]:
    return {float(dict(k)["le"]): v for k, v in m.get(NS + name + "_bucket", {}).items()}


def _total(m: dict[str, dict[Any, float]], name: str) -> float:
    return sum(m.get(NS + name, {}).values())


def interval(prev: dict[float, float], cur: dict[float, float], quantile: float) -> float | None:
    """The upper bound of the bucket holding `quantile` of the observations made between two
    scrapes of a histogram (1.0: the largest); None when nothing was observed."""
    total = cur.get(math.inf, 0.0) - prev.get(math.inf, 0.0)
    if total <= 0:
        return None
    for le in sorted(cur):
        if cur[le] - prev.get(le, 0.0) >= quantile * total:
            return le
    return math.inf


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    events_per_s: float
    lag_max_s: float | None
    lag_mean_s: float | None
    stalled_s: float
    queues: dict[str, int]
    critical: dict[str, int]
    t2o_count: int
    t2o_mean_ms: float | None
    t2o_p99_ms: float | None
    orders: dict[str, int]

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "t_s": round(self.t_s, 2),
            "rss_mb": round(self.rss_mb, 2),
            "events_per_s": round(self.events_per_s),
            "lag_max_s": self.lag_max_s,
            "lag_mean_ms": None if self.lag_mean_s is None else round(self.lag_mean_s * 1e3, 3),
            "stalled_s": round(self.stalled_s, 3),
            "t2o_count": self.t2o_count,
            "t2o_mean_ms": None if self.t2o_mean_ms is None else round(self.t2o_mean_ms, 3),
            "t2o_p99_ms": self.t2o_p99_ms,
            "orders_filled": self.orders.get("filled", 0),
            "orders_total": sum(self.orders.values()),
        }
        for q, d in sorted(self.queues.items()):
            row[f"queue_{q}"] = d
            row[f"queue_{q}_critical"] = self.critical.get(q, 0)
        return row


class Sampler:
    def __init__(self, pid: int, admin_port: int) -> None:
        self.pid = pid
        self.port = admin_port
        self.t0 = time.monotonic()
        self.prev_t = self.t0
        self.prev = scrape(admin_port)

    def sample(self) -> Sample:
        m = scrape(self.port)
        now = time.monotonic()
        dt = max(now - self.prev_t, 1e-6)
        p = self.prev
        lag_b, lag_pb = _buckets(m, "event_loop_lag_seconds"), _buckets(p, "event_loop_lag_seconds")
        lag_n = _total(m, "event_loop_lag_seconds_count") - _total(
            p, "event_loop_lag_seconds_count"
        )
        lag_sum = _total(m, "event_loop_lag_seconds_sum") - _total(p, "event_loop_lag_seconds_sum")
        t2o_b, t2o_pb = _buckets(m, "tick_to_order_seconds"), _buckets(p, "tick_to_order_seconds")
        t2o_n = _total(m, "tick_to_order_seconds_count") - _total(p, "tick_to_order_seconds_count")
        t2o_sum = _total(m, "tick_to_order_seconds_sum") - _total(p, "tick_to_order_seconds_sum")
        t2o_p99 = interval(t2o_pb, t2o_b, 0.99)
        queues: dict[str, int] = {}
        critical: dict[str, int] = {}
        for labels, v in m.get(NS + "queue_depth", {}).items():
            d = dict(labels)
            (queues if d["kind"] == "all" else critical)[d["consumer"]] = int(v)
        orders = {dict(k)["state"]: int(v) for k, v in m.get(NS + "orders", {}).items()}
        events = _total(m, "events_in_total") - _total(p, "events_in_total")
        s = Sample(
            t_s=now - self.t0,
            rss_mb=rss_mb(self.pid),
            events_per_s=events / dt,
            lag_max_s=interval(lag_pb, lag_b, 1.0),
            lag_mean_s=lag_sum / lag_n if lag_n else None,
            stalled_s=_total(m, "event_loop_stalled_seconds"),
            queues=queues,
            critical=critical,
            t2o_count=int(t2o_n),
            t2o_mean_ms=t2o_sum / t2o_n * 1e3 if t2o_n else None,
            t2o_p99_ms=None if t2o_p99 is None else t2o_p99 * 1e3,
            orders=orders,
        )
        self.prev, self.prev_t = m, now
        return s


# --- the run and its verdict ---------------------------------------------------------------------


@dataclass
class Result:
    samples: list[Sample]
    warmup_s: float
    exit_code: int | None
    log_errors: list[str]
    strategy_errors: dict[str, int]
    bus_handler_errors: int
    status: dict[str, Any]
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks.values())


def verdict(r: Result) -> dict[str, tuple[bool, str]]:
    after = [s for s in r.samples if s.t_s >= r.warmup_s]
    checks: dict[str, tuple[bool, str]] = {}
    if len(after) < 10:
        checks["samples"] = (False, f"{len(after)} samples after warm-up")
        return checks
    growth = after[-1].rss_mb - after[0].rss_mb
    checks["rss_growth"] = (
        growth < RSS_GROWTH_MAX_MB,
        f"{after[0].rss_mb:.1f} -> {after[-1].rss_mb:.1f} MB: {growth:+.1f} MB "
        f"(goal < {RSS_GROWTH_MAX_MB:.0f} MB)",
    )
    lag_max = max((s.lag_max_s or 0.0) for s in after)
    lags = [s.lag_mean_s for s in after if s.lag_mean_s is not None]
    lag_mean = sum(lags) / len(lags) if lags else math.inf
    checks["loop_lag"] = (
        lag_max <= LAG_MAX_S and lag_mean < LAG_MEAN_S,
        f"worst second <= {lag_max * 1e3:.0f} ms (bound {LAG_MAX_S * 1e3:.0f} ms), "
        f"mean {lag_mean * 1e3:.1f} ms (bound {LAG_MEAN_S * 1e3:.0f} ms)",
    )
    half = len(after) // 2
    grown = []
    for q in sorted({q for s in after for q in s.queues}):
        first = max(s.queues.get(q, 0) for s in after[:half])
        last = max(s.queues.get(q, 0) for s in after[half:])
        floor = min(s.queues.get(q, 0) for s in after[half:])
        if last >= QUEUE_ROOM and last > 2 * first + QUEUE_ROOM:
            grown.append(f"{q}: peak {first} then {last}")
        elif floor >= QUEUE_ROOM:
            # Never drained in the whole second half: the consumer does not keep up, even if
            # an overflow policy caps the depth.
            grown.append(f"{q}: never below {floor} in the second half")
        crit_last = max(s.critical.get(q, 0) for s in after[half:])
        if crit_last >= QUEUE_ROOM:
            grown.append(f"{q} critical: {crit_last}")
    peaks = {q: max(s.queues.get(q, 0) for s in after) for q in after[-1].queues}
    checks["queues_bounded"] = (not grown, "; ".join(grown) or f"peaks {peaks}")
    rates = [s.events_per_s for s in after]
    rate = sum(rates) / len(rates)
    checks["load"] = (
        rate >= MIN_RATE_SHARE * EVENTS_PER_S and after[-1].orders.get("filled", 0) > 0,
        f"{rate:.0f} events/s (asked {EVENTS_PER_S}), "
        f"{sum(after[-1].orders.values())} orders, {after[-1].orders.get('filled', 0)} filled",
    )
    errors = (
        r.log_errors[:3]
        + [f"strategy {k}: {v} errors" for k, v in r.strategy_errors.items() if v]
        + ([f"bus handler errors: {r.bus_handler_errors}"] if r.bus_handler_errors else [])
        + ([f"exit code {r.exit_code}"] if r.exit_code != 0 else [])
    )
    checks["no_errors"] = (not errors, "; ".join(errors) or "none; exit 0 on SIGTERM")
    return checks


def log_errors(path: Path) -> list[str]:
    bad = []
    for line in path.read_text(errors="replace").splitlines():
        if "Traceback" in line:
            bad.append(line[:300])
            continue
        with suppress(orjson.JSONDecodeError):
            rec = orjson.loads(line)
            if isinstance(rec, dict) and rec.get("level") in ("error", "critical"):
                bad.append(line[:300])
    return bad


def run(minutes: float, out: Path, warmup_s: float = 30.0, echo: bool = True) -> Result:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        setup = Setup(Path(tmp))
        with processes(setup) as daemon:
            sampler = Sampler(daemon.pid, setup.admin_port)
            samples: list[Sample] = []
            end = sampler.t0 + minutes * 60
            tick = sampler.t0
            while time.monotonic() < end:
                tick += 1.0
                time.sleep(max(0.0, tick - time.monotonic()))
                if daemon.poll() is not None:
                    break
                s = sampler.sample()
                samples.append(s)
                if echo and len(samples) % 10 == 0:
                    print(
                        f"t={s.t_s:5.0f}s rss={s.rss_mb:6.1f}MB events/s={s.events_per_s:6.0f} "
                        f"lag<={(s.lag_max_s or 0) * 1e3:4.0f}ms queues={s.queues} "
                        f"t2o_mean={s.t2o_mean_ms}ms orders={sum(s.orders.values())}",
                        flush=True,
                    )
            final = status(setup.admin_port) if daemon.poll() is None else {}
            daemon.send_signal(signal.SIGTERM)
            try:
                code: int | None = daemon.wait(60)
            except subprocess.TimeoutExpired:
                code = None
        shutil.copy(setup.dir / "daemon.log", out / "soak-daemon.log")
        errors = log_errors(setup.dir / "daemon.log")
    result = Result(
        samples=samples,
        warmup_s=warmup_s,
        exit_code=code,
        log_errors=errors,
        strategy_errors={s["name"]: s["errors"] for s in final.get("strategies", [])},
        bus_handler_errors=int(final.get("bus", {}).get("handler_errors", 0)),
        status=final,
    )
    result.checks = verdict(result)
    write_csv(samples, out / "soak.csv")
    return result


def write_csv(samples: list[Sample], path: Path) -> None:
    rows = [s.row() for s in samples]
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def plot(r: Result, path: Path, title: str) -> bool:
    """soak.png: RSS, loop lag, queue depths, tick-to-order and the event rate over time.
    False (with a message) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (uv run --group plot python -m bench.soak)")
        return False
    t = [s.t_s for s in r.samples]
    fig, ax = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    ax[0].plot(t, [s.rss_mb for s in r.samples])
    base = next((s.rss_mb for s in r.samples if s.t_s >= r.warmup_s), None)
    if base is not None:
        ax[0].axhline(base + RSS_GROWTH_MAX_MB, color="r", ls="--", lw=0.8, label="warm-up + 20 MB")
        ax[0].legend(loc="lower right")
    ax[0].set_ylabel("RSS (MB)")
    ax[1].plot(t, [(s.lag_max_s or 0) * 1e3 for s in r.samples], label="worst (bucket bound)")
    ax[1].plot(t, [(s.lag_mean_s or 0) * 1e3 for s in r.samples], label="mean")
    ax[1].set_yscale("symlog", linthresh=1)
    ax[1].set_ylabel("loop lag (ms)")
    ax[1].legend(loc="upper right")
    for q in sorted({q for s in r.samples for q in s.queues}):
        ax[2].plot(t, [s.queues.get(q, 0) for s in r.samples], label=q)
    ax[2].set_ylabel("queue depth")
    ax[2].legend(loc="upper right")
    ax[3].plot(t, [s.t2o_mean_ms or math.nan for s in r.samples], ".", ms=3, label="mean")
    ax[3].plot(t, [s.t2o_p99_ms or math.nan for s in r.samples], ".", ms=3, label="p99 bucket")
    ax[3].set_yscale("log")
    ax[3].set_ylabel("tick-to-order (ms)")
    ax[3].legend(loc="upper right")
    ax[4].plot(t, [s.events_per_s for s in r.samples])
    ax[4].set_ylabel("events/s")
    ax[4].set_xlabel("seconds")
    for a in ax:
        a.axvline(r.warmup_s, color="grey", ls=":", lw=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def summary(r: Result, after: list[Sample]) -> None:
    """The run's figures as `JSON` lines for `make bench`'s table (bench/results.py)."""
    n = sum(s.t2o_count for s in after)
    t2o_mean = sum(s.t2o_count * (s.t2o_mean_ms or 0.0) for s in after) / n if n else math.nan
    lags = [s.lag_mean_s for s in after if s.lag_mean_s is not None]
    rate = sum(s.events_per_s for s in after) / len(after)
    grow = after[-1].rss_mb - after[0].rss_mb
    emit("soak RSS growth after warm-up", grow, "MB", None, "", f"< {RSS_GROWTH_MAX_MB:.0f} MB")
    orders = sum(after[-1].orders.values()) - sum(after[0].orders.values())
    if orders > 0:
        # Reconciliation re-reads the day's whole order history (kt00007) every reconcile_s:
        # its peak, and so RSS, grows with the orders of the day.
        emit("soak RSS growth per 1000 orders", grow / orders * 1000, "MB", None, "", "")
    emit("soak orders/s", orders / (after[-1].t_s - after[0].t_s), "orders/s", None, "", "")
    emit(
        "soak loop lag, worst second",
        max((s.lag_max_s or 0.0) for s in after) * 1e3,
        "ms (bucket bound)",
        None,
        "",
        f"<= {LAG_MAX_S * 1e3:.0f} ms",
    )
    emit(
        "soak loop lag, mean",
        (sum(lags) / len(lags) if lags else math.nan) * 1e3,
        "ms",
        None,
        "",
        f"< {LAG_MEAN_S * 1e3:.0f} ms",
    )
    emit(
        "soak events/s delivered",
        rate,
        "events/s",
        EVENTS_PER_S,
        "sim.events_per_s",
        f">= {MIN_RATE_SHARE:.1f}x",
    )
    emit(
        "soak tick_to_order mean",
        t2o_mean,
        "ms",
        None,
        f"{n} orders",
        "(10 strategies, mirror on)",
    )
    peaks = {q: max(s.queues.get(q, 0) for s in after) for q in after[-1].queues}
    for q, peak in sorted(peaks.items()):
        emit(f"soak queue {q} peak depth", peak, "events", None, "", "bounded")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before growth counts")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "soak")
    args = ap.parse_args()
    r = run(args.minutes, args.out, args.warmup)
    title = (
        f"soak: {args.minutes:g} min, {EVENTS_PER_S} events/s, {len(STRATEGIES)} strategies, "
        "MQTT mirror on"
    )
    plot(r, args.out / "soak.png", title)
    print(f"{title}: {len(r.samples)} samples in {args.out}")
    for name, (ok, text) in r.checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {text}")
    after = [s for s in r.samples if s.t_s >= r.warmup_s] or r.samples
    if after:
        summary(r, after)
    return 0 if r.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
