"""Finding strategy classes: a file in strategies/ or an installed entry point.

Loading is checked the same way for `run` and for `kiwoom-engine check`: every problem is a
`PluginError` whose text starts with the config key path (`strategies[0].class: ...`), so the
operator knows which line of config.toml to fix.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import structlog

from engine.clock import SYSTEM_CLOCK
from engine.config import Config, StrategyConfig
from engine.strategy import HANDLERS, Strategy
from engine.trading.bars import parse_interval
from engine.universe.rules import LIMIT_KEY, ref_problem

ENTRY_POINT_GROUP = "kiwoom_engine.strategies"
SYMBOL = re.compile(r"[0-9A-Z]{6}")
"""A KRX short code: six digits, or since 2024 six digits-and-capitals (e.g. 0088M0)."""


class PluginError(Exception):
    """A strategy cannot be loaded; the text names the config key."""


@dataclass(frozen=True)
class LoadedStrategy:
    cfg: StrategyConfig
    cls: type[Strategy]
    key: str
    """Its config key path, e.g. strategies[0]."""


def load_all(
    cfg: Config, base_dir: Path | None = None, *, include_disabled: bool = False
) -> tuple[list[LoadedStrategy], list[str]]:
    """Load every enabled strategy (and the disabled ones too when asked: `check`). Returns
    the loaded ones and the problems found (each a line naming its key); `run` refuses to
    start when there is any problem."""
    if base_dir is None:
        base_dir = Path(cfg.source).parent if cfg.source != "<defaults>" else Path.cwd()
    loaded: list[LoadedStrategy] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, sc in enumerate(cfg.strategies):
        key = f"strategies[{i}]"
        if sc.name in seen:
            problems.append(f"{key}.name: duplicate strategy name {sc.name!r}")
            continue
        seen.add(sc.name)
        if not sc.enabled and not include_disabled:
            continue
        try:
            loaded.append(LoadedStrategy(sc, load_class(sc, key, base_dir), key))
        except PluginError as e:
            problems.append(str(e))
    return loaded, problems


def condition_limit_problems(cfg: Config) -> list[str]:
    """The enabled strategies' `conditions`, counted as distinct realtime conditions against
    `kiwoom.max_realtime_conditions` (by how they are written: `check --online` counts by
    seq). One problem naming the first key past the limit, or none."""
    limit = cfg.kiwoom.max_realtime_conditions
    seen: dict[str, None] = {}
    for i, sc in enumerate(cfg.strategies):
        if not sc.enabled:
            continue
        for j, ref in enumerate(sc.conditions):
            if not isinstance(ref, str) or ref in seen:
                continue
            seen[ref] = None
            if len(seen) > limit:
                return [
                    f"strategies[{i}].conditions[{j}]: {ref!r} is realtime condition "
                    f"{len(seen)}; {LIMIT_KEY} allows {limit} (Kiwoom about 10 per login; "
                    "strategies watching the same condition share one)"
                ]
    return []


def load_class(sc: StrategyConfig, key: str, base: Path) -> type[Strategy]:
    """Import and check one strategy class. Raises PluginError."""
    # fullmatch: `$` also matches before a final newline, so "s1\n" passed
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", sc.name):
        raise PluginError(f"{key}.name: use letters, digits, '_', '-', '.' (got {sc.name!r})")
    for j, symbol in enumerate(sc.symbols):
        if not SYMBOL.fullmatch(symbol):
            raise PluginError(
                f"{key}.symbols[{j}]: not a KRX symbol (six digits or capitals): {symbol!r}"
            )
    for j, ref in enumerate(sc.conditions):
        problem = ref_problem(ref)
        if problem is not None:
            raise PluginError(f"{key}.conditions[{j}]: {problem}")
    if not sc.symbols and not sc.conditions:
        raise PluginError(
            f"{key}.symbols: a strategy needs at least one symbol (or `conditions`, whose "
            "hits it subscribes to at run time)"
        )
    for j, interval in enumerate(sc.bars):
        try:
            parse_interval(interval)
        except ValueError as e:
            raise PluginError(f"{key}.bars[{j}]: {e}") from None
    if sc.history and not sc.bars:
        raise PluginError(f"{key}.history: needs `bars` to know which intervals to load")
    if bool(sc.path) == bool(sc.entry_point):
        raise PluginError(f"{key}: give exactly one of `path` or `entry_point`")
    if not isinstance(sc.params, Mapping):
        raise PluginError(
            f"{key}.params: must be a table, e.g. params = {{ window = 20 }}; got {sc.params!r}"
        )
    cls = _from_path(sc, key, base) if sc.path else _from_entry_point(sc, key)
    _check_class(cls, f"{key}.class" if sc.path else f"{key}.entry_point")
    try:
        cls.check_params(sc.params)
    except (Exception, SystemExit) as e:
        raise PluginError(f"{key}.params: {e}") from None
    return cls


def _from_path(sc: StrategyConfig, key: str, base: Path) -> type[Strategy]:
    assert sc.path is not None
    path = Path(sc.path)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise PluginError(f"{key}.path: no such file: {path}")
    if not sc.class_name:
        raise PluginError(f"{key}.class: missing: name the class to load from {sc.path}")
    mod_name = f"kiwoom_strategies.{sc.name.replace('-', '_').replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{key}.path: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # sys.exit() in a plugin must not end `check` or `run`
        sys.modules.pop(mod_name, None)
        raise PluginError(f"{key}.path: importing {path} failed: {type(e).__name__}: {e}") from e
    cls = getattr(module, sc.class_name, None)
    if cls is None:
        raise PluginError(f"{key}.class: {path} has no class {sc.class_name!r}")
    return cls  # type: ignore[no-any-return]


def _from_entry_point(sc: StrategyConfig, key: str) -> type[Strategy]:
    assert sc.entry_point is not None
    target = sc.entry_point
    if ":" not in target:
        # A name registered in the entry-point group by an installed package.
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        match = [ep for ep in eps if ep.name == target]
        if not match:
            raise PluginError(
                f"{key}.entry_point: no {ENTRY_POINT_GROUP!r} entry point named {target!r}"
            )
        target = match[0].value
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:
        raise PluginError(
            f"{key}.entry_point: importing {module_name} failed: {type(e).__name__}: {e}"
        ) from e
    cls = getattr(module, attr, None)
    if cls is None:
        raise PluginError(f"{key}.entry_point: {module_name} has no attribute {attr!r}")
    if sc.class_name and sc.class_name != attr:
        raise PluginError(f"{key}.class: {sc.class_name!r} differs from the entry point's {attr!r}")
    return cls  # type: ignore[no-any-return]


def _check_class(cls: object, key: str) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise PluginError(f"{key}: {cls!r} is not a subclass of engine.strategy.Strategy")
    for name in HANDLERS:
        fn = getattr(cls, name, None)
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise PluginError(
                f"{key}: {cls.__name__}.{name} is async; handlers run in the event loop and "
                "must be plain methods (start a task yourself for slow work)"
            )


def lookalikes(ls: LoadedStrategy) -> list[str]:
    """Warnings for methods named like a handler that are not one (`on_trades`, `on_Trade`):
    the engine never calls them, which is almost always a typo. Each names the key."""
    where = f"{ls.key}.class" if ls.cfg.path else f"{ls.key}.entry_point"
    out = []
    for name in dir(ls.cls):
        if not name.lower().startswith("on_") or name in HANDLERS:
            continue
        if not callable(getattr(ls.cls, name, None)):
            continue
        guess = difflib.get_close_matches(name.lower(), HANDLERS, n=1, cutoff=0.6)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        out.append(
            f"{where}: {ls.cls.__name__}.{name} looks like a handler but is not one, so the "
            f"engine never calls it{hint}; the handlers are {', '.join(HANDLERS)}"
        )
    if getattr(ls.cls, "on_realtime", None) is not Strategy.on_realtime and not ls.cfg.realtime:
        out.append(
            f"{ls.key}.realtime: {ls.cls.__name__}.on_realtime is never called: name the "
            'realtime types it wants, e.g. realtime = [{type = "0J", items = ["001"]}]'
        )
    return out


class _CheckSlot:
    """What a strategy's constructor may read, for `check`: its name, params, symbols, log and
    clock. Anything else (orders, timers) does not exist before `run` starts it."""

    def __init__(self, ls: LoadedStrategy) -> None:
        self.name = ls.cfg.name
        self.params = (
            ls.cfg.params
            if isinstance(ls.cfg.params, types.MappingProxyType)
            else types.MappingProxyType(dict(ls.cfg.params))
        )
        self.symbols = ls.cfg.symbols
        self.log = structlog.get_logger("strategy").bind(strategy=ls.cfg.name)
        self.clock = SYSTEM_CLOCK

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{name} is not available in the constructor: use on_start")


def construct(ls: LoadedStrategy) -> str | None:
    """Build the strategy as `run` would, without a running engine (`check`): None when its
    constructor returns, else the problem with the key (`strategies[0].class: ...`). `run`
    disables a strategy whose constructor raises and goes on without it. A constructor that
    orders or sets timers fails here: that belongs in `on_start`."""
    where = f"{ls.key}.class" if ls.cfg.path else f"{ls.key}.entry_point"
    try:
        ls.cls(cast(Any, _CheckSlot(ls)))
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # what a strategy raises is its own fault, even SystemExit
        return f"{where}: {ls.cls.__name__}() raised {type(e).__name__}: {e}"
    return None
