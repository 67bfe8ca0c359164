"""Command line: kiwoom-engine run | check | sim | call | apis | watch | conditions | history |
backtest | report | status | halt | resume | enable.

Every command reads the same config (`-c PATH`, default ./config.toml when present) and the
same credentials as the daemon. Errors end with a one-line message and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from engine import config as config_mod
from engine import logs, secrets
from engine.kiwoom.errors import (
    BrokerError,
    KiwoomError,
    RequestRefusedError,
    TransportError,
    ValidationError,
)
from engine.terminal import inert_json, one_line

log = structlog.get_logger(__name__)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_BROKER = 4
EXIT_TRANSPORT = 5
EXIT_NO_DAEMON = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = """exit codes:
  0    done (run/sim: stopped by SIGTERM or SIGINT; watch: by SIGTERM; any: the output
       pipe was closed)
  1    run/sim could not start (reason logged), apis found nothing, the daemon refused
       (status/halt/resume), internal error
  2    usage: bad arguments, unknown api-id, missing or malformed field
  3    configuration error (file and key named)
  4    Kiwoom refused: an error answer (its message is printed), login or registration,
       an HTTP 4xx that retrying cannot change (e.g. 413: the request is too large)
  5    transport: Kiwoom unreachable, timed out, or the outcome of an order is unknown
  6    status/halt/resume: no daemon answers at the admin endpoint ([admin] in the config)
  7    run: the stall watchdog ended the daemon: a strategy handler it could not break (the
       strategy is held disabled until `enable NAME`), or a shutdown past its deadline
  130  interrupted (Ctrl-C) during a one-shot command
"""


class _UsageError(Exception):
    """A command-line argument is malformed (exit EXIT_USAGE)."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {port}")
    return port


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


def _parser() -> argparse.ArgumentParser:
    # The common options are accepted before and after the command (`-c X call ...` and
    # `call ... -c X`); SUPPRESS keeps a later default from overwriting an earlier value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="config file (default: ./config.toml if present)",
    )
    common.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=argparse.SUPPRESS
    )
    p = argparse.ArgumentParser(
        prog="kiwoom-engine",
        description=__doc__,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    command("run", help="run the daemon (against the simulator in mode sim)")
    check = command("check", help="load the config and every strategy without trading")
    check.add_argument(
        "--online",
        action="store_true",
        help="also log in and resolve the strategies' `conditions` (mode sim: a simulator)",
    )
    sim = command("sim", help="serve the Kiwoom-compatible simulator (REST + WebSocket)")
    sim.add_argument("--port", type=_port, help="override sim.port (0: any free port)")

    call = command("call", help="call one REST api-id and print the JSON body")
    call.add_argument("api_id")
    call.add_argument("fields", nargs="*", metavar="field=value")
    call.add_argument("--all", action="store_true", help="follow every page, merge the list")
    call.add_argument(
        "--allow-orders",
        action="store_true",
        help="send an order api-id (kt10000...) in mode mock or live; it bypasses the engine's risk",
    )

    apis = command("apis", help="list or search the api catalogue")
    apis.add_argument("query", nargs="?", default="")

    watch = command("watch", help="print realtime events as JSON lines")
    watch.add_argument("type", nargs="?", metavar="TYPE", help="realtime type, e.g. 0B, 0D, 00")
    watch.add_argument("items", nargs="*", metavar="ITEM")
    watch.add_argument("--count", type=_count, help="stop after N events (N >= 1)")
    watch.add_argument(
        "--condition",
        metavar="NAME",
        help="instead of TYPE: the hits of this condition search (its name, or seq:N)",
    )

    conds = command("conditions", help="list the login's condition searches (seq, name)")
    conds.add_argument("--json", action="store_true", help="JSON lines {seq, name}")

    hist = command("history", help="pull chart history into the store ([data] dir), list, export")
    hist.add_argument("symbols", nargs="*", metavar="SYMBOL")
    hist.add_argument(
        "--interval",
        choices=["tick", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "1d"],
        default="1d",
    )
    hist.add_argument("--from", dest="start", metavar="DATE", help="first day (YYYY-MM-DD)")
    hist.add_argument("--to", dest="end", metavar="DATE", help="last day (default: today)")
    hist.add_argument(
        "--adjusted", action="store_true", help="export with the adjustment factors applied"
    )
    hist.add_argument("--list", action="store_true", help="show what is stored")
    hist.add_argument(
        "--import",
        dest="recording",
        metavar="RECORDING",
        help="normalise a daemon.record NDJSON file into the store",
    )
    hist.add_argument(
        "--export", nargs=2, metavar=("FORMAT", "DIR"), help="write the stored range (csv)"
    )

    bt = command("backtest", help="run the config's [[strategies]] over the history store")
    bt.add_argument("--from", dest="start", metavar="DATE", required=True, help="first day")
    bt.add_argument("--to", dest="end", metavar="DATE", required=True, help="last day")
    src = bt.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", help="the history store (default: [data] dir)")
    src.add_argument("--recording", metavar="FILE", help="a daemon.record NDJSON file")
    bt.add_argument("--out", metavar="DIR", default="backtest-out", help="report directory")
    bt.add_argument(
        "--grid", nargs="+", metavar="NAME=V1,V2", help="run every combination of params"
    )
    bt.add_argument("--rank", default="sharpe", help="--grid: the metric that ranks (sharpe)")
    bt.add_argument("--split", metavar="DATE", help="--grid: out-of-sample from DATE")

    rep = command("report", help="write a day's report from the journal (beside a running daemon)")
    rep.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="the trading day")
    rep.add_argument(
        "--out", metavar="DIR", help="report directory (default: <daemon.state_dir>/reports/DAY)"
    )
    rep.add_argument(
        "--journal",
        metavar="DIR",
        help="the directory holding journal.sqlite3 (default: the daemon's, from the config)",
    )

    status = command("status", help="ask the running daemon: mode, feed, strategies, orders, PnL")
    status.add_argument("--json", action="store_true", help="print the daemon's JSON as is")
    for name, what in (("halt", "refuse every new order"), ("resume", "trade again")):
        switch = command(name, help=f"kill switch: {what} (the running daemon)")
        switch.add_argument("--reason", default="", help="logged with the change")
    enable = command(
        "enable",
        help="run again a strategy the stall watchdog held disabled (now, if the daemon runs)",
    )
    enable.add_argument("name", metavar="NAME")
    return p


DAEMON_COMMANDS = ("status", "halt", "resume")
"""Commands that ask the running daemon; they need no Kiwoom credentials."""
LOCAL_COMMANDS = ("enable",)
"""Commands that change the daemon's state directory only; no credentials either."""
NO_SECRETS = (*DAEMON_COMMANDS, *LOCAL_COMMANDS, "history", "backtest", "report")
"""Commands that load the config without credentials (`history` reads them only to pull)."""


NEEDS_CONFIG_FILE = ("check", *DAEMON_COMMANDS, *LOCAL_COMMANDS)
"""Commands that mean nothing on the defaults: `check` checks a file, and the others ask the
daemon that a file describes. Without -c and without ./config.toml they say so."""


def _load_config(
    path: str | None, *, with_secrets: bool = True, command: str = ""
) -> config_mod.Config:
    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    if path is None and command in NEEDS_CONFIG_FILE:
        raise config_mod.ConfigError(
            f"no config.toml in {Path.cwd()}: name the daemon's config with -c PATH "
            f"(e.g. kiwoom-engine -c /etc/kiwoom-engine/config.toml {command})"
        )
    return config_mod.load(path, with_secrets=with_secrets)


def _parse_fields(pairs: Sequence[str]) -> dict[str, str]:
    body: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"expected field=value, got {pair!r}")
        body[key] = value
    return body


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    args.log_level = getattr(args, "log_level", None)
    try:
        cfg = _load_config(
            args.config,
            with_secrets=args.command not in NO_SECRETS,
            command=args.command,
        )
    except config_mod.ConfigError as e:
        _complain(f"config error: {e}")
        return EXIT_CONFIG
    level = args.log_level or cfg.log.level
    # One-shot commands print results on stdout; keep their logs quiet unless asked.
    quiet = (
        "call",
        "apis",
        "watch",
        "conditions",
        "check",
        "backtest",
        "report",
        *DAEMON_COMMANDS,
        *LOCAL_COMMANDS,
    )
    if args.command in quiet and not args.log_level:
        level = "warning"
    if args.command == "history" and sys.stderr.isatty() and not args.log_level:
        level = "warning"  # the progress bars say it; log lines would tear them
    logs.setup(level, cfg.log.format)
    try:
        code = _dispatch(args, cfg)
        sys.stdout.flush()  # here, so that a reader gone away is caught below
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not an error of ours. Point stdout at
        # /dev/null, or the interpreter's final flush fails again and exits 120.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except _UsageError as e:
        _complain(str(e))
        return EXIT_USAGE
    except ValidationError as e:
        _complain(str(e))
        return EXIT_USAGE
    except (BrokerError, RequestRefusedError) as e:
        _complain(str(e))
        return EXIT_BROKER
    except KiwoomError as e:
        _complain(f"{type(e).__name__}: {e}")
        return EXIT_TRANSPORT
    except Exception as e:
        # A bug: the traceback goes through the log redactor (Python's own handler would print
        # it raw, secrets and all), and the one-line summary is scrubbed too.
        log.exception("command_failed", command=args.command)
        summary = secrets.scrub(f"{type(e).__name__}: {e}")
        _complain(f"internal error: {summary}")
        return EXIT_FAILURE


def _complain(message: str) -> None:
    """The one line on stderr that ends a failed command. It often carries the server's own
    message: controls are escaped and the length capped (engine.terminal)."""
    print(f"kiwoom-engine: {one_line(message)}", file=sys.stderr)


def _dispatch(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    if args.command == "apis":
        return _apis(args.query)
    if args.command == "call":
        body = _parse_fields(args.fields)
        return asyncio.run(_call(cfg, args.api_id, body, args.all, args.allow_orders))
    if args.command == "sim":
        from engine.sim.simulator import serve_forever

        return asyncio.run(serve_forever(cfg.sim, port=args.port))
    if args.command == "watch":
        if args.condition is not None:
            if args.type is not None:
                raise _UsageError("watch --condition takes no TYPE or ITEM")
            return asyncio.run(_watch_condition(cfg, args.condition, args.count))
        if args.type is None:
            raise _UsageError("watch: give a TYPE (e.g. 0B) or --condition NAME")
        return asyncio.run(_watch(cfg, args.type, list(args.items), args.count))
    if args.command == "conditions":
        from engine.watch import conditions

        return asyncio.run(conditions(cfg, as_json=args.json))
    if args.command == "check":
        return _check(cfg, online=args.online)
    if args.command in DAEMON_COMMANDS:
        return _ask_daemon(cfg, args)
    if args.command == "enable":
        return _enable(cfg, args.name)
    if args.command == "history":
        return _history(cfg, args)
    if args.command == "backtest":
        return _backtest(cfg, args)
    if args.command == "report":
        return _report(cfg, args)
    if args.command == "run":
        from engine.daemon import run
        from engine.plugins import load_all, lookalikes

        strategies, problems = load_all(cfg)
        problems += preflight(cfg)
        if problems:
            for problem in problems:
                _complain(f"config error: {cfg.source}: {problem}")
            return EXIT_CONFIG
        for ls in strategies:
            for warning in lookalikes(ls):
                log.warning("strategy_handler_lookalike", problem=warning)
        return asyncio.run(run(cfg, strategies=strategies))
    raise AssertionError(args.command)  # pragma: no cover


def preflight(cfg: config_mod.Config) -> list[str]:
    """What `run` would load from files besides strategies, loaded the same way (each problem
    names its key): today the MQTT mirror's CA bundle, which `run` reads as it starts (also
    refused when `tls` is off: a config that names a file it cannot read is a mistake)."""
    problems: list[str] = []
    mqtt = cfg.mqtt
    if mqtt is not None and mqtt.ca_file is not None:
        import ssl

        try:
            ssl.create_default_context(cafile=mqtt.ca_file)
        except FileNotFoundError:
            problems.append(f"mqtt.ca_file: no such file: {mqtt.ca_file}")
        except (OSError, ssl.SSLError) as e:
            problems.append(
                f"mqtt.ca_file: cannot use {mqtt.ca_file} as a PEM bundle of CA "
                f"certificates: {type(e).__name__}: {e}"
            )
    return problems


def _check(cfg: config_mod.Config, *, online: bool = False) -> int:
    """`check`: the config loaded (or main() already exited 3); now everything `run` would
    load (every strategy, built as `run` builds it, and the files the config names), each
    problem on its own line with its key path. Nothing connects, unless `online`: then it
    logs in and resolves the enabled strategies' `conditions`. A method named like a handler
    that is not one is a warning (exit 0)."""
    from engine.plugins import condition_limit_problems, construct, load_all, lookalikes

    strategies, problems = load_all(cfg, include_disabled=True)
    for ls in strategies:
        problem = construct(ls)
        if problem is not None:
            problems.append(problem)
    problems += preflight(cfg)
    problems += condition_limit_problems(cfg)
    if online and not problems:
        from engine.watch import check_conditions_online

        refs = [
            (f"strategies[{i}].conditions[{j}]", ref)
            for i, sc in enumerate(cfg.strategies)
            if sc.enabled
            for j, ref in enumerate(sc.conditions)
        ]
        problems += asyncio.run(check_conditions_online(cfg, refs))
    for problem in problems:
        _complain(f"config error: {cfg.source}: {problem}")
    if problems:
        return EXIT_CONFIG
    for ls in strategies:
        for warning in lookalikes(ls):
            _complain(f"warning: {cfg.source}: {warning}")
    names = ", ".join(ls.cfg.name for ls in strategies if ls.cfg.enabled) or "none"
    disabled = [sc.name for sc in cfg.strategies if not sc.enabled]
    print(f"{cfg.source}: ok; mode {cfg.kiwoom.mode}; strategies: {names}", end="")
    print(f" (disabled: {', '.join(disabled)})" if disabled else "")
    return 0


def _enable(cfg: config_mod.Config, name: str) -> int:
    """`enable NAME`: release a strategy the stall watchdog held disabled (engine/holds.py),
    and start it in the running daemon if one answers (it held it since its start-up);
    otherwise it runs from the daemon's next start."""
    from engine.holds import Holds

    holds = Holds(cfg.daemon.state_dir)
    try:
        released = holds.release(name)
    except (OSError, ValueError) as e:
        _complain(f"cannot update {holds.path}: {e}")
        return EXIT_FAILURE
    if not released and name not in {sc.name for sc in cfg.strategies}:
        raise _UsageError(f"no strategy {name!r} in {cfg.source}, and none held by that name")
    # A running daemon holding it since its start-up starts it now.
    from engine import control

    try:
        answer = control.request(cfg, "POST", "/enable", {"strategy": name})
    except control.NoDaemon:
        live = "it runs from the daemon's next start" if released else "nothing to do"
    except control.DaemonRefused as e:
        live = f"the running daemon did not start it ({e})"
    else:
        state = answer.get("state", "?") if isinstance(answer, dict) else "?"
        started = isinstance(answer, dict) and answer.get("started")
        live = f"started in the running daemon: {state}" if started else f"running daemon: {state}"
    held = "enabled" if released else "not held disabled"
    print(one_line(f"{name}: {held}; {live}"))
    return 0


def _history(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    """`history`: --list, --export FORMAT DIR, or a pull of SYMBOL... (the default)."""
    from engine import history_command as hc
    from engine.clock import SYSTEM_CLOCK
    from engine.data.source import SourceBusy, SourceRefused

    try:
        if args.list:
            return hc.list_store(cfg, sys.stdout)
        if args.recording:
            try:
                return hc.import_file(cfg, args.recording, sys.stdout)
            except OSError as e:
                _complain(f"{args.recording}: cannot read the recording: {e.strerror or e}")
                return EXIT_FAILURE
        symbols = hc.symbols_of(args.symbols)
        if not symbols:
            raise _UsageError("history: name at least one SYMBOL (or --list)")
        if args.start is None:
            raise _UsageError("history: --from DATE is required")
        start = hc.parse_day(args.start)
        end = hc.parse_day(args.end) if args.end else SYSTEM_CLOCK.now().date()
        if end < start:
            raise _UsageError(f"history: --to {end} is before --from {start}")
        if args.export:
            fmt, directory = args.export
            return hc.export(
                cfg, symbols, args.interval, start, end, fmt, directory, args.adjusted, sys.stdout
            )
        # Only the pull talks to Kiwoom: now the credentials (mode sim has its own).
        cfg = config_mod.load(args.config or (cfg.source if cfg.source != "<defaults>" else None))
        try:
            return asyncio.run(
                hc.pull(cfg, symbols, args.interval, start, end, out=sys.stdout, err=sys.stderr)
            )
        except TransportError as e:
            hint = (
                " (mode sim: is `kiwoom-engine sim` running?)" if cfg.kiwoom.mode == "sim" else ""
            )
            _complain(f"{type(e).__name__}: {e}{hint}; what was stored so far is kept")
            return EXIT_TRANSPORT
    except (hc.HistoryUsageError, ValueError) as e:
        raise _UsageError(str(e)) from None
    except config_mod.ConfigError as e:
        _complain(f"config error: {e}")
        return EXIT_CONFIG
    except hc.StoreError as e:
        _complain(f"history store: {e}")
        return EXIT_FAILURE
    except SourceBusy as e:
        _complain(f"rate limited for too long, stored so far is kept; run again later: {e}")
        return EXIT_BROKER
    except SourceRefused as e:
        _complain(str(e))
        return EXIT_BROKER


def _backtest(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    """`backtest`: the strategies over the store; the report in --out."""
    from engine.backtest.command import BacktestProblem, backtest, backtest_recording
    from engine.clock import parse_day

    try:
        start, end = parse_day(args.start), parse_day(args.end)
    except ValueError as e:
        raise _UsageError(f"backtest: {e}") from None
    if end < start:
        raise _UsageError(f"backtest: --to {end} is before --from {start}")
    data = Path(args.data or cfg.data.dir)  # as `history` writes it: from the working dir
    if args.grid:
        from engine.backtest.grid import GridError, parse_grid, run_grid

        if args.recording:
            raise _UsageError("backtest: --grid runs over --data, not --recording")
        try:
            split = parse_day(args.split) if args.split else None
            return run_grid(
                cfg, data, start, end, parse_grid(args.grid), Path(args.out),
                rank=args.rank, split=split, stdout=sys.stdout,
            )  # fmt: skip
        except (GridError, ValueError) as e:
            raise _UsageError(f"backtest: {e}") from None
    if args.split or args.rank != "sharpe":
        raise _UsageError("backtest: --split and --rank go with --grid")
    try:
        if args.recording:
            return backtest_recording(cfg, Path(args.recording), start, end, Path(args.out))
        return backtest(cfg, data, start, end, Path(args.out))
    except BacktestProblem as e:
        _complain(f"backtest: {e}")
        return EXIT_FAILURE


def _report(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    """`report --day`: the day's report files; their directory and summary on stdout."""
    from engine.clock import parse_day
    from engine.reports.command import ReportInputError, report_day

    try:
        day = parse_day(args.day)
    except ValueError as e:
        raise _UsageError(f"report: --day: {e}") from None
    try:
        files = report_day(
            cfg,
            day,
            out=Path(args.out) if args.out else None,
            journal=Path(args.journal) if args.journal else None,
        )
    except ReportInputError as e:
        _complain(f"report: {e}")
        return EXIT_FAILURE
    except OSError as e:
        _complain(f"report: cannot write the report: {e}")
        return EXIT_FAILURE
    sys.stdout.write(files.text)
    print(f"report in {files.directory}")
    return 0


def _ask_daemon(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    """`status`, `halt`, `resume`: one request to the running daemon's admin endpoint."""
    from engine import control

    try:
        if args.command == "status":
            answer = control.request(cfg, "GET", "/status")
            if args.json:
                sys.stdout.write(inert_json(orjson.dumps(answer, option=orjson.OPT_INDENT_2)))
                sys.stdout.write("\n")
            else:
                print(control.render_status(answer))
            return 0
        body = {"reason": args.reason} if args.reason else None
        answer = control.request(cfg, "POST", f"/{args.command}", body)
    except control.NoDaemon as e:
        _complain(str(e))
        return EXIT_NO_DAEMON
    except control.DaemonRefused as e:
        _complain(f"the daemon refused: {e}")
        return EXIT_FAILURE
    state = answer.get("trading_state", "?") if isinstance(answer, dict) else "?"
    reason = answer.get("reason", "") if isinstance(answer, dict) else ""
    print(one_line(f"trading {state}" + (f" ({reason})" if reason else "")))
    return 0


def _apis(query: str) -> int:
    from engine.kiwoom import catalog

    specs = catalog.search(query)
    for spec in specs:
        print(f"{spec.api_id:<9} {spec.path:<24} {spec.name}  [{spec.category}]")
    if not specs:
        _complain(f"no api matches {query!r}")
        return EXIT_FAILURE
    return 0


async def _call(
    cfg: config_mod.Config,
    api_id: str,
    body: dict[str, str],
    all_pages: bool,
    allow_orders: bool = False,
) -> int:
    from engine.kiwoom import catalog
    from engine.kiwoom.rest import KiwoomRest

    spec = catalog.validate_request(api_id, body)  # fail before connecting
    mode = cfg.kiwoom.mode
    if spec.is_order and mode != "sim" and not allow_orders:
        # A one-shot order skips every pre-trade check of the engine: only on purpose.
        raise _UsageError(f"{api_id} sends an order in mode {mode}; add --allow-orders to send it")
    # Never revoke: Kiwoom hands this app key's one token to the daemon too (see watch.py).
    async with KiwoomRest.from_config(cfg, revoke_on_close=False) as rest:
        out: dict[str, Any]
        if all_pages:
            out = await rest.call_merged(api_id, body)
        else:
            out = (await rest.call(api_id, body)).body
    sys.stdout.write(inert_json(orjson.dumps(out, option=orjson.OPT_INDENT_2)) + "\n")
    return 0


async def _watch(cfg: config_mod.Config, rt_type: str, items: list[str], count: int | None) -> int:
    from engine.watch import watch

    # SIGTERM is how a service manager or `timeout` ends an open-ended watch: a clean stop
    # (exit 0), as for run and sim. Ctrl-C stays an interruption (130).
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return await watch(cfg, rt_type, items, count, stop=stop)


async def _watch_condition(cfg: config_mod.Config, condition: str, count: int | None) -> int:
    from engine.watch import watch_condition

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return await watch_condition(cfg, condition, count, stop=stop)
