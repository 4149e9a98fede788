"""Shared fixtures: a tiny but real configuration and a session-wide stage cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from augkd.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "teacher.epochs=12",
    "module1.epochs=1",
    "module1.iters_per_epoch=4",
    "module1.student_steps=2",
    "module2.epochs=2",
    "module3.epochs=3",
]


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("augkd_cache"))


@pytest.fixture
def tiny_config(cache_home: str) -> Config:
    return load_config(None, [*TINY, f"teacher.cache_dir={cache_home}"])


@pytest.fixture(scope="session")
def search_main():
    """search.py's main(), run in-process: `python search.py` exits with what it returns."""
    spec = importlib.util.spec_from_file_location("search_script", ROOT / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
