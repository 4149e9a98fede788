"""The package's folders are its layers (docs/development.md, "Where things live"): imports
point one way, no files import each other, every folder has its floor, the package's root
stays small and no module grows past 400 lines."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.paths import REPO


@pytest.fixture(scope="module")
def structure():
    spec = importlib.util.spec_from_file_location("structure", REPO / "benchmarks" / "structure.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["structure"] = module
    try:
        spec.loader.exec_module(module)
        yield module.measure(REPO / "augkd")
    finally:
        sys.modules.pop("structure", None)


def test_no_import_runs_back_up_a_floor(structure):
    assert structure["back_up"] == {}


def test_no_files_import_each_other(structure):
    assert structure["circles"] == []


def test_every_folder_has_its_floor(structure):
    assert structure["unplaced"] == [], "add the new folder to benchmarks/structure.py's LAYERS"


def test_the_packages_root_holds_at_most_eight_modules(structure):
    assert len(structure["root_modules"]) <= 8


def test_no_module_is_longer_than_400_lines(structure):
    lines, path = structure["largest"][0]
    assert lines <= 400, f"{path} has {lines} lines: split it by idea"
