"""The package's structure, measured from its own imports: the layers (folders) and the arrows
between them, arrows that run back up, circles between files, the largest files, the modules
at the package's root, and the functions that take more than six parameters.

    python benchmarks/structure.py [--root augkd]

Every import counts, lazy ones inside functions included. The layers are LAYERS, bottom up
(docs/development.md, "Where things live"): a folder may import from its own floor and the
floors below it.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

LAYERS: list[set[str]] = [
    {"basics"},
    {"storage", "hardware"},
    {"data"},
    {"models"},
    {"method"},
    {"trial"},
    {"search"},
    {"report"},
    {"cli"},
]
"""Rooms of augkd/ by floor, bottom up; a room is a sub-package or a root module."""
MOST_PARAMETERS = 6


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def room(module: str) -> str:
    """augkd.search.run.tuner -> search; augkd.cli -> cli."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def floor_of(name: str) -> int | None:
    return next((i for i, rooms in enumerate(LAYERS) if name in rooms), None)


def measure(root: Path) -> dict:
    found = modules(root)
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    arrows: dict[tuple[str, str], int] = defaultdict(int)
    for source, targets in graph.items():
        for target in targets:
            if room(source) != room(target) and room(target) != root.name:
                arrows[(room(source), room(target))] += 1
    back_up = {
        pair: count
        for pair, count in arrows.items()
        if floor_of(pair[0]) is not None
        and floor_of(pair[1]) is not None
        and floor_of(pair[1]) > floor_of(pair[0])
    }
    return {
        "rooms": sorted({room(m) for m in found if m != root.name}),
        "unplaced": sorted(
            {room(m) for m in found if m != root.name and floor_of(room(m)) is None}
        ),
        "arrows": dict(arrows),
        "back_up": back_up,
        "circles": circles(graph),
        "root_modules": sorted(p.name for p in root.glob("*.py")),
        "largest": sorted(
            ((len(p.read_text().splitlines()), str(p)) for p in found.values()), reverse=True
        )[:5],
        "long_signatures": long_signatures(found),
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def long_signatures(found: dict[str, Path]) -> list[tuple[str, int]]:
    """Public functions and methods with more than MOST_PARAMETERS parameters (self aside)."""
    long = []
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
                if args.args and args.args[0].arg in ("self", "cls"):
                    count -= 1
                if count > MOST_PARAMETERS and not node.name.startswith("_"):
                    long.append((f"{name}.{node.name}", count))
    return sorted(long)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="augkd")
    found = measure(Path(parser.parse_args().root))
    print(f"rooms: {len(found['rooms'])} ({', '.join(found['rooms'])})")
    print(f"modules at the package's root: {', '.join(found['root_modules'])}")
    print(f"arrows between rooms: {len(found['arrows'])}")
    print(f"arrows that run back up: {len(found['back_up'])} {found['back_up'] or ''}")
    print(f"circles between files: {len(found['circles'])} {found['circles'] or ''}")
    print("largest files: " + ", ".join(f"{path} {lines}" for lines, path in found["largest"]))
    print(f"public functions with more than {MOST_PARAMETERS} parameters: "
          + ", ".join(f"{name} ({count})" for name, count in found["long_signatures"]))  # fmt: skip


if __name__ == "__main__":
    main()
