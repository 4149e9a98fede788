"""benchmarks/importances.py: fANOVA importances of a finished search at the report's
fidelity, over the searched keys only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.paths import REPO as ROOT

spec = importlib.util.spec_from_file_location("importances", ROOT / "benchmarks" / "importances.py")
importances = importlib.util.module_from_spec(spec)
spec.loader.exec_module(importances)


def test_importances_of_a_real_search_cover_its_searched_keys_and_sum_to_one(tiny_search):
    found = importances.importances(tiny_search["path"], tiny_search["uri"])
    space = json.loads(Path(tiny_search["path"], "search_space.json").read_text())
    assert found["step"] is not None and len(found["values"]) >= 2
    if len(set(found["values"])) < 2:
        pytest.skip("the tiny search's trials tied at the report's fidelity")
    assert set(found["importance"]) <= set(space["params"])
    assert sum(found["importance"].values()) == pytest.approx(1.0)


def test_a_path_that_is_not_a_search_is_named(tmp_path):
    from augkd.basics.errors import ConfigError

    with pytest.raises(ConfigError, match=str(tmp_path)):
        importances.importances(str(tmp_path))
