"""Every benchmark's imports from the package resolve, the ones inside its functions too: a
benchmark is run by hand, long after the refactor that moved what it imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parents[2] / "benchmarks").glob("*.py"))


def _package_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("augkd")
        for alias in node.names
    ]


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_every_name_a_benchmark_imports_from_the_package_exists(path: Path) -> None:
    missing = []
    for module_name, name in _package_imports(path):
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{name} from {module_name}")
    assert not missing, f"{path.name} imports what the package no longer has: {missing}"
