"""config.toml and the schema say the same: every `key =` line of the shipped file (commented
out or not) is a key of its table in engine/config.py, and every key the loader reads is shown
there (strategy keys may be shown in strategies/README.md instead). Secrets are never in the
file: they only name their environment variable."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engine import config

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Key:
    path: str
    """Dotted, tables of a list (`[[strategies]]`) without an index."""
    table: bool
    """A sub-table (`[alerts.telegram]`) rather than a value."""
    free: bool
    """Any key may stand below it (a free-form table, a table per api-id)."""
    secret: bool


def schema(cls: type[Any] = config.Config, prefix: str = "") -> Iterator[Key]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        path = prefix + f.metadata.get("key", f.name)
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            yield Key(path, True, False, False)
            yield from schema(tp, path + ".")
            continue
        free = typing.get_origin(tp) in (Mapping, dict)
        yield Key(path, free, free, bool(f.metadata.get("secret")))


KEYS = {k.path: k for k in schema()}


def toml_keys(text: str) -> Iterator[tuple[int, str]]:
    """(line number, dotted key) of each `key = ...` line and each table header, commented
    out or not. A key belongs to the last header above it, commented out or not: what a user
    gets who uncomments the examples."""
    table = ""
    for n, line in enumerate(text.splitlines(), 1):
        body = line.lstrip("#").strip()
        header = re.match(r"^\[\[?([\w.]+)\]\]?\s*(#.*)?$", body)
        if header:
            table = header.group(1)
            yield n, table
            continue
        key = re.match(r"^([A-Za-z_]\w*)\s*=\s*\S", body)
        if key:
            yield n, f"{table}.{key.group(1)}" if table else key.group(1)


def test_every_key_in_config_toml_is_one_the_loader_reads() -> None:
    unknown = []
    for n, path in toml_keys((ROOT / "config.toml").read_text(encoding="utf-8")):
        parent = path.rpartition(".")[0]
        if path in KEYS or (parent in KEYS and KEYS[parent].free):
            continue
        unknown.append(f"config.toml:{n}: {path}")
    assert unknown == []


def test_every_key_the_loader_reads_is_shown_in_config_toml() -> None:
    shown = {path for _n, path in toml_keys((ROOT / "config.toml").read_text(encoding="utf-8"))}
    plugins = (ROOT / "strategies" / "README.md").read_text(encoding="utf-8")
    missing = []
    for key in KEYS.values():
        if key.secret:
            assert key.path not in shown, f"{key.path}: a secret is never written in the file"
            continue
        if key.path in shown or any(s.startswith(key.path + ".") for s in shown):
            continue
        name = key.path.rpartition(".")[2]
        if key.path.startswith("strategies.") and re.search(rf"\b{name}\b", plugins):
            continue
        missing.append(key.path)
    assert missing == [], missing
