"""`kiwoom-engine history`: pull chart history into the store, list what is stored, export it.

The pull shares the account's query limits with a daemon that may be running: it paces
itself at HISTORY_SHARE of the mode's rates and waits out a rate-limit refusal ([1700]),
so the daemon keeps the larger part. On a terminal it draws a progress bar per symbol;
otherwise it logs one line per PAGE_BATCH pages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

import structlog

from engine import config as config_mod
from engine.clock import SYSTEM_CLOCK, Clock
from engine.data.layout import check_symbol, dataset_name
from engine.data.pull import Puller, PullStats
from engine.data.store import Store, StoreError
from engine.kiwoom.settings import GovernorSettings, RestSettings

log = structlog.get_logger(__name__)

HISTORY_SHARE = 0.5
"""Share of the mode's request rates the pull takes; the rest is left to the daemon."""
PAGE_BATCH = 10


class HistoryUsageError(ValueError):
    """Arguments that do not make a history command."""


def parse_day(text: str) -> date:
    """YYYY-MM-DD or YYYYMMDD."""
    t = text.strip()
    try:
        if len(t) == 8 and t.isdigit():
            return date(int(t[:4]), int(t[4:6]), int(t[6:]))
        if len(t) == 10 and t[4] == "-" and t[7] == "-":
            return date.fromisoformat(t)
    except ValueError:
        pass
    raise ValueError(f"expected a date YYYY-MM-DD, got {text!r}")


def shared_pacing(g: GovernorSettings) -> GovernorSettings:
    """`g` at HISTORY_SHARE of its rates, bursts of at most half (at least 1)."""
    return dataclasses.replace(
        g,
        account_per_s=g.account_per_s * HISTORY_SHARE,
        account_burst=max(1, int(g.account_burst * HISTORY_SHARE)),
        per_api_per_s=g.per_api_per_s * HISTORY_SHARE,
        per_api_burst=max(1, int(g.per_api_burst * HISTORY_SHARE)),
        per_api={k: v * HISTORY_SHARE for k, v in g.per_api.items()},
    )


def store_of(cfg: config_mod.Config) -> Store:
    return Store(Path(cfg.data.dir))


def list_store(cfg: config_mod.Config, out: TextIO) -> int:
    entries = store_of(cfg).listing()
    if not entries:
        print(f"{cfg.data.dir}: nothing stored", file=out)
        return 0
    for e in entries:
        spans = ", ".join(f"{a}..{b}" for a, b in e.covered) or "-"
        print(
            f"{e.dataset:<9} {e.symbol:<8} {e.rows:>9} rows {e.files:>4} files  {spans}", file=out
        )
    return 0


def export(
    cfg: config_mod.Config,
    symbols: Sequence[str],
    interval: str,
    start: date,
    end: date,
    fmt: str,
    directory: str,
    adjusted: bool,
    out: TextIO,
) -> int:
    if fmt != "csv":
        raise HistoryUsageError(f"--export supports csv, got {fmt!r}")
    for path in store_of(cfg).export_csv(
        interval, symbols, start, end, Path(directory), adjusted=adjusted
    ):
        print(path, file=out)
    return 0


class _Bar:
    """One progress line per symbol on a terminal, redrawn in place."""

    def __init__(self, err: TextIO, label: str, clock: Clock) -> None:
        self._err = err
        self._label = label
        self._clock = clock
        self._t0 = clock.monotonic()
        self._last_logged = 0

    def __call__(self, s: PullStats) -> None:
        elapsed = max(1e-6, self._clock.monotonic() - self._t0)
        rate = s.pages / elapsed
        eta = elapsed * (1 - s.fraction) / s.fraction if 0 < s.fraction < 1 else 0.0
        width = 24
        filled = int(width * s.fraction)
        self._err.write(
            f"\r{self._label} [{'#' * filled}{'.' * (width - filled)}] "
            f"pages {s.pages} rows {s.rows} {rate:.1f} p/s ETA {eta:.0f}s   "
        )
        self._err.flush()

    def close(self) -> None:
        self._err.write("\n")
        self._err.flush()


class _Lines:
    """Off a terminal: one log line per PAGE_BATCH pages."""

    def __init__(self, label: str, clock: Clock) -> None:
        self._label = label
        self._clock = clock
        self._t0 = clock.monotonic()
        self._next = PAGE_BATCH

    def __call__(self, s: PullStats) -> None:
        if s.pages >= self._next:
            self._next = s.pages + PAGE_BATCH
            log.info(
                "history_progress",
                symbol=s.symbol,
                interval=s.interval,
                pages=s.pages,
                rows=s.rows,
                done_pct=round(100 * s.fraction, 1),
                elapsed_s=round(self._clock.monotonic() - self._t0, 1),
            )

    def close(self) -> None:
        pass


def summary(s: PullStats) -> str:
    if not s.gaps:
        return f"{s.symbol} {s.interval}: already stored, nothing fetched"
    gaps = ", ".join(f"{a}..{b}" for a, b in s.gaps)
    return (
        f"{s.symbol} {s.interval}: fetched {gaps}: {s.pages} pages, {s.rows} rows, "
        f"{s.reread_pages} pages read again, {s.halted} halted rows left out, "
        f"{s.factor_pages} factor pages, {s.busy_waits} rate-limit waits"
    )


async def pull(
    cfg: config_mod.Config,
    symbols: Sequence[str],
    interval: str,
    start: date,
    end: date,
    *,
    out: TextIO,
    err: TextIO,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Pull every symbol in turn. Raises what the puller raises (the CLI turns it into a
    message and an exit code); what was stored before an error stays stored."""
    from engine.data.source import SourceBusy, SourceRefused
    from engine.kiwoom.charts import KiwoomCharts
    from engine.kiwoom.rest import KiwoomRest

    settings = RestSettings.from_config(cfg)
    settings = dataclasses.replace(settings, governor=shared_pacing(settings.governor))
    store = store_of(cfg)
    dataset_name(interval)  # refuses an unknown interval before connecting
    tty = err.isatty()
    t0 = clock.monotonic()
    # Never revoke: Kiwoom hands this app key's one token to the daemon too.
    async with KiwoomRest(settings, clock, revoke_on_close=False) as rest:
        puller = Puller(KiwoomCharts(rest, clock), store, clock)
        for symbol in symbols:
            label = f"{symbol} {interval}"
            progress: _Bar | _Lines = _Bar(err, label, clock) if tty else _Lines(label, clock)
            try:
                stats = await puller.pull(symbol, interval, start, end, progress)
            except (SourceBusy, SourceRefused):
                progress.close()
                raise
            progress.close()
            print(summary(stats), file=out)
            log.info(
                "history_pulled",
                symbol=symbol,
                interval=interval,
                pages=stats.pages,
                rows=stats.rows,
                reread_pages=stats.reread_pages,
                halted=stats.halted,
                elapsed_s=round(clock.monotonic() - t0, 2),
            )
    return 0


def import_file(cfg: config_mod.Config, recording: str, out: TextIO) -> int:
    """`--import RECORDING`: normalise a recording into the store. Malformed lines are
    counted, skipped and reported; a file that cannot be read raises OSError."""
    from engine.data.recorded import ImportCounts, import_recording
    from engine.kiwoom.recording_import import recorded_events

    counts = ImportCounts()
    import_recording(Path(cfg.data.dir), recorded_events(recording, counts), counts)
    market = {k: v for k, v in sorted(counts.rows.items()) if not k.startswith("account_")}
    account = {k: v for k, v in sorted(counts.rows.items()) if k.startswith("account_")}
    shown = ", ".join(f"{k} {v}" for k, v in market.items()) or "no market data"
    print(f"{recording}: {counts.lines} lines, {counts.entries} entries: {shown}", file=out)
    if account:
        kept = ", ".join(f"{k} {v}" for k, v in account.items())
        print(f"{recording}: the account's own notices kept apart: {kept}", file=out)
    if counts.malformed_lines or counts.bad_entries:
        print(
            f"{recording}: skipped {counts.malformed_lines} malformed lines and "
            f"{counts.bad_entries} undecodable entries",
            file=out,
        )
    log.info(
        "history_imported",
        path=recording,
        lines=counts.lines,
        malformed_lines=counts.malformed_lines,
        bad_entries=counts.bad_entries,
        rows=dict(counts.rows),
    )
    return 0


def symbols_of(raw: Sequence[str]) -> list[str]:
    try:
        return [check_symbol(s) for s in raw]
    except ValueError as e:
        raise HistoryUsageError(str(e)) from None


__all__ = [
    "HistoryUsageError",
    "StoreError",
    "export",
    "list_store",
    "parse_day",
    "pull",
    "symbols_of",
]
