"""A non-editable `pip install .` ships the search spaces: `--space office31` is found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def test_search_py_finds_its_space_after_a_non_editable_install(tmp_path):
    # A fresh venv that borrows this one's dependencies (no download), and a copy of the
    # checkout, so that building leaves nothing in the repository.
    source = tmp_path / "checkout"
    for name in ("augkd", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "search.py"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-build-isolation", str(source)],
        check=True, env=env, cwd=tmp_path,
    )  # fmt: skip

    alone = tmp_path / "alone"  # as `ray submit` runs it: search.py and nothing else
    alone.mkdir()
    shutil.copy(ROOT / "search.py", alone / "search.py")
    found = subprocess.run(
        [python, "-c", "from augkd.search.space import resolve_space_path as r; "
         "print(r('office31'))"],
        capture_output=True, text=True, env=env, cwd=alone, check=True,
    ).stdout.strip()  # fmt: skip
    assert found.startswith(site) and found.endswith("augkd/search_spaces/office31.yaml")

    run = subprocess.run(
        [python, "search.py", "--space", "office31", "--smoke-test", "--storage",
         str(tmp_path / "runs"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--set", "resources.gpu=0", "--set", "resources.cpu=1"],
        capture_output=True, text=True, env=env, cwd=alone, timeout=600,
    )  # fmt: skip
    # The space was found and validated; the preflight then stops on the teacher the space
    # names (the user passes theirs with --set teacher.checkpoint=...).
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Preflight on a worker failed" in run.stderr
    assert "/data/teachers/office31_resnet34.pt" in run.stderr
