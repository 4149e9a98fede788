"""Packaging matches the imports: a non-editable `pip install .` that has only the declared
core dependencies imports every module and ships the search spaces (`--space office31` is
found); every third-party import, lazy ones included, is declared in core or an extra."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import REPO as ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CORE = PROJECT["dependencies"]
EXTRAS = PROJECT["optional-dependencies"]


def declared_closure(requirements: list[str]) -> set[str]:
    """The distributions pip installs for ``requirements``, read from the installed
    metadata (extras and environment markers honoured)."""
    asked: dict[str, set[str]] = {}
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name == "augkd":  # a self-reference of an extra (dev = augkd[cluster,...])
            todo += [Requirement(r) for extra in requirement.extras for r in EXTRAS[extra]]
            continue
        extras = asked.get(name)
        if extras is not None and set(requirement.extras) <= extras:
            continue
        asked[name] = (extras or set()) | set(requirement.extras)
        for text in metadata.distribution(name).requires or []:
            needed = Requirement(text)
            environments = [{"extra": extra} for extra in ("", *asked[name])]
            if needed.marker is None or any(needed.marker.evaluate(e) for e in environments):
                todo.append(needed)
    return set(asked)


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the augkd files that import it, at any depth (lazy ones too)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "augkd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top != "augkd" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_package_is_listed_for_the_wheel():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "augkd").rglob("__init__.py")
    }
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
    assert "augkd.search_spaces" in listed


def test_every_third_party_import_is_declared_where_it_is_needed():
    """A module a user imports (core) or one of an extra's features: declared by name, not
    borrowed from some other package's dependencies."""
    providers = metadata.packages_distributions()
    declared = {canonicalize_name(Requirement(r).name) for r in CORE}
    for extra in EXTRAS.values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    undeclared = {
        module: sorted(files)
        for module, files in _third_party_imports().items()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & declared
    }
    assert not undeclared, f"declare these in pyproject.toml: {undeclared}"


def test_the_constraints_pin_every_package_of_the_dev_install():
    pinned = {
        canonicalize_name(line.split("==")[0])
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert declared_closure([*CORE, *EXTRAS["dev"]]) <= pinned
    assert {"torch", "torchvision"} <= pinned  # else pip may fetch a CUDA build of GBs


@pytest.fixture(scope="module")
def core_install(tmp_path_factory):
    """A fresh venv holding augkd, installed from a built wheel (not editable), and only
    the distributions its core dependencies pull in: each linked file by file from this
    venv (no download), so an undeclared package is simply not there."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "checkout"  # a copy: building leaves nothing in the repository
    for name in ("augkd", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "search.py"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    here = Path(sysconfig.get_path("purelib")).resolve()
    for name in sorted(declared_closure(CORE)):
        distribution = metadata.distribution(name)
        assert distribution.files, f"{name} has no RECORD of its files"
        for file in distribution.files:
            real = Path(distribution.locate_file(file)).resolve()
            if here not in real.parents or not real.is_file():
                continue  # scripts in bin/, files the package never wrote
            link = site / real.relative_to(here)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(real)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp / "dist"), str(source)],
        check=True, env=env, cwd=tmp,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         *map(str, (tmp / "dist").glob("augkd-*.whl"))],
        check=True, env=env, cwd=tmp,
    )  # fmt: skip
    alone = tmp / "alone"  # as `ray submit` runs it: search.py and nothing else
    alone.mkdir()
    shutil.copy(ROOT / "search.py", alone / "search.py")
    return {"python": python, "site": site, "env": env, "alone": alone, "tmp": tmp}


IMPORT_EVERY_MODULE = """
import importlib, pkgutil, augkd
names = [m.name for m in pkgutil.walk_packages(augkd.__path__, "augkd.")]
for name in names:
    importlib.import_module(name)
print(augkd.__file__, len(names))
"""


@pytest.mark.slow
def test_a_wheel_with_only_the_core_dependencies_imports_every_module(core_install):
    run = subprocess.run(
        [core_install["python"], "-c", IMPORT_EVERY_MODULE],
        capture_output=True, text=True, env=core_install["env"], cwd=core_install["alone"],
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    where, count = run.stdout.split()
    assert where.startswith(str(core_install["site"])) and int(count) > 60
    missing = subprocess.run(  # what the core install really lacks: the notebook extra
        [core_install["python"], "-c", "import IPython"],
        capture_output=True, text=True, env=core_install["env"],
    )  # fmt: skip
    assert missing.returncode != 0


@pytest.mark.slow
def test_search_py_finds_its_space_after_a_non_editable_install(core_install):
    python, env, alone, tmp = (core_install[k] for k in ("python", "env", "alone", "tmp"))
    found = subprocess.run(
        [python, "-c", "from augkd.search.prepare.space_file import resolve_space_path as r; "
         "print(r('office31'))"],
        capture_output=True, text=True, env=env, cwd=alone, check=True,
    ).stdout.strip()  # fmt: skip
    assert found.startswith(str(core_install["site"]))
    assert found.endswith("augkd/search_spaces/office31.yaml")

    run = subprocess.run(
        [python, "search.py", "--space", "office31", "--smoke-test", "--storage",
         str(tmp / "runs"), "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--set", "resources.gpu=0", "--set", "resources.cpu=1"],
        capture_output=True, text=True, env=env, cwd=alone,
    )  # fmt: skip
    # The space was found and validated; the preflight then stops on the teacher the space
    # names (the user passes theirs with --set teacher.checkpoint=...).
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Preflight on a worker failed" in run.stderr
    assert "/data/teachers/office31_resnet34.pt" in run.stderr
