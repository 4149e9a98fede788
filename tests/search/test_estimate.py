"""`search.py --estimate`: the stages a search would run, timed and priced before it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from augkd.locations import stage_cache_root
from augkd.search.estimate import estimate_search
from augkd.search.runner import SearchOptions
from tests.conftest import TINY_SEARCH

TRAINED = ("module1", "encoder", "module2")
"""The stages a search trains from the teacher on (the teacher itself aside)."""


def _options(storage: Path) -> SearchOptions:
    """The tiny_search fixture's search, on ``storage``."""
    return SearchOptions(
        space="digits", storage=str(storage), smoke_test=True, num_samples=3,
        overrides=[*TINY_SEARCH, "reuse_actors=false"],
    )  # fmt: skip


def _artifacts(storage: Path) -> set[tuple[str, str]]:
    cache = Path(stage_cache_root(str(storage)))
    return {(stage, p.stem) for stage in TRAINED for p in (cache / stage).glob("*.pt")}


@pytest.fixture(scope="module")
def with_teacher_only(tiny_search, tmp_path_factory) -> Path:
    """A fresh storage holding the tiny search's teacher alone (as a user's checkpoint would
    be): every stage after it is still to train."""
    storage = tmp_path_factory.mktemp("estimate") / "storage"
    source = Path(stage_cache_root(str(tiny_search["root"]))) / "teacher"
    shutil.copytree(source, Path(stage_cache_root(str(storage))) / "teacher")
    return storage


@pytest.mark.slow
def test_the_forecast_names_exactly_the_stages_the_search_ran(tiny_search, with_teacher_only):
    forecast = estimate_search(_options(with_teacher_only), echo=lambda _: None)
    named = {(c.stage, c.key) for c in forecast.stages if c.stage in TRAINED}
    assert named == _artifacts(tiny_search["root"])
    assert all(not c.cached and c.seconds > 0 for c in forecast.stages if c.stage in TRAINED)
    shared, trials = forecast.phases
    assert shared.wall_s > 0 and trials.wall_s > 0


@pytest.mark.slow
def test_a_cached_stage_costs_nothing(tiny_search):
    forecast = estimate_search(_options(tiny_search["root"]), echo=lambda _: None)
    assert {(c.stage, c.key) for c in forecast.stages if c.stage in TRAINED} == _artifacts(
        tiny_search["root"]
    )
    assert all(c.cached and c.seconds == 0 for c in forecast.stages)
    assert forecast.phases[0].wall_s == 0 and forecast.phases[1].wall_s > 0
    assert forecast.trial_steps.upper == 3 * forecast.trial_steps.max_steps


@pytest.mark.slow
def test_the_estimate_prints_phases_trial_steps_and_cost(search_main, capsys, tmp_path):
    args = ["--estimate", "--smoke-test", "--space", "digits", "--storage", str(tmp_path)]
    args += ["--num-samples", "2", "--price-per-hour", "1.5"]
    assert search_main([*args, *_tiny()]) == 0
    out = capsys.readouterr().out
    assert "teacher    built-in" in out  # not cached: its training is timed
    for heading in ("shared stages", "trials", "total", "trial-steps expected", "$1.5/h"):
        assert heading in out
    assert not (tmp_path / "digits").exists()  # nothing of a search was started


def _tiny() -> list[str]:
    return [arg for override in TINY_SEARCH for arg in ("--set", override)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_the_machine_lacks_is_refused_in_one_sentence(search_main, capsys, tmp_path):
    args = ["--estimate", "--smoke-test", "--storage", str(tmp_path)]
    code = search_main([*args, "--set", "resources.gpu=1"])
    assert code == 2
    assert "resources.gpu=1" in capsys.readouterr().err
