"""Every third-party package the engine imports is declared in pyproject.toml (issue 14,
item 23): one that only comes along with another (paho-mqtt with aiomqtt) may be dropped by
that package's next release and break an install that resolves afresh."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_levels() -> dict[str, Path]:
    """Top-level module name -> a file of engine/ that imports it (absolute imports only)."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        _canonical(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in project["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, path in _imported_top_levels().items():
        if module == "engine" or module in sys.stdlib_module_names:
            continue
        dists = {_canonical(d) for d in providers.get(module, [module])}
        if not dists & declared:
            undeclared[module] = (sorted(dists), str(path.relative_to(ROOT)))
    assert undeclared == {}
