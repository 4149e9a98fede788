"""Which stages the tasks before a search produce: the ones no searched key changes."""

from __future__ import annotations

import re

import pytest

from augkd.basics.dotted import get_dotted
from augkd.search.prepare.space import load_space
from augkd.search.stages.prestage import plan_shared_stages


def _plan(params: dict, base: dict | None = None):
    raw = {"params": params, "base": {"method": "augkd", **(base or {})}}
    return plan_shared_stages(load_space("digits", raw))


def test_the_adapted_encoder_is_shared_when_none_of_its_inputs_is_searched():
    anchors_searched = _plan({"module2.anchor_weight": {"type": "float", "low": 0.1, "high": 1}})
    assert anchors_searched.module1 and anchors_searched.encoder
    assert not anchors_searched.module2


def test_a_searched_adaptation_key_leaves_the_encoder_to_the_trials():
    plan = _plan({"encoder_adapt.lr": {"type": "log_float", "low": 1e-4, "high": 1e-2}})
    assert plan.module1 and not plan.encoder and not plan.module2


def test_no_adaptation_means_no_shared_encoder():
    plan = _plan(
        {"module3.a": {"type": "float", "low": 0.1, "high": 1}}, {"encoder_adapt": {"epochs": 0}}
    )
    assert plan.module1 and plan.module2 and not plan.encoder


GRID = {
    "module2.anchor_weight": {"type": "categorical", "choices": [0.03, 0.1, 0.3]},
    "module2.temperature": {"type": "categorical", "choices": [0.5, 1.0]},
    "module3.a": {"type": "float", "low": 0.1, "high": 1},
}


def test_a_categorical_module2_grid_is_trained_before_the_trials_point_by_point():
    plan = _plan(GRID)
    assert plan.module1 and plan.encoder and plan.module2 and not plan.notes
    assert len(plan.module2_grid) == 6
    assert {"module2.anchor_weight": 0.3, "module2.temperature": 0.5} in plan.module2_grid


def test_a_continuous_module2_key_leaves_anchor_nets_to_the_trials_and_says_how_to_share():
    plan = _plan({**GRID, "module2.invariant": {"type": "float", "low": 0.1, "high": 0.6}})
    assert not plan.module2 and plan.module2_grid == [{}]
    assert "module2.invariant" in plan.notes[0] and "categorical grid" in plan.notes[0]


def test_a_conditional_module2_key_is_not_shared():
    conditional = {
        **GRID,
        "module3.schedule": {"type": "categorical", "choices": ["linear", "step"]},
        "module2.invariant": {
            "type": "categorical", "choices": [0.25, 0.5], "when": {"module3.schedule": "step"}
        },
    }  # fmt: skip
    assert not _plan(conditional).module2


def test_a_grid_too_large_to_train_up_front_is_left_to_the_trials(monkeypatch):
    from augkd.search.stages import prestage

    monkeypatch.setattr(prestage, "MAX_SHARED_ANCHOR_NETS", 5)
    plan = _plan(GRID)
    assert not plan.module2 and "6 points" in plan.notes[0]


def test_the_smoke_test_trains_two_anchor_nets_including_the_base_setting():
    from augkd.search.prepare.overrides import SearchOptions, prepare_space

    space = prepare_space(SearchOptions(space="fonts", smoke_test=True))
    plan = plan_shared_stages(space)
    assert plan.module2 and len(plan.module2_grid) == 2
    base = {key: get_dotted(space.base_resolved, key) for key in plan.module2_grid[0]}
    assert base in plan.module2_grid and base["module2.anchor_weight"] == 0.1


def test_every_seed_a_trial_averages_over_gets_its_shared_stages():
    space = load_space("digits", {"params": GRID, "objective": {"seeds": 3}})
    plan = plan_shared_stages(space)
    assert plan.seeds == [0, 1, 2] and space.trial_seeds() == [0, 1, 2]
    assert plan.module2 and len(plan.module2_grid) == 6  # per seed


@pytest.mark.slow
def test_the_shared_stages_show_their_progress_in_a_log(local_ray, tmp_path):
    """Not a terminal (as in `ray job logs`): each stage of each task, from the teacher on,
    gets a line as it starts and one as it ends, through the stage cache's progress files."""
    from augkd.search.prepare.overrides import SearchOptions, prepare_space
    from augkd.search.stages.prestage import prepare_search
    from tests.conftest import TINY_SEARCH

    space = prepare_space(SearchOptions(space="digits", smoke_test=True, overrides=TINY_SEARCH))
    lines: list[str] = []
    prepare_search(space, str(tmp_path / "stages"), lines.append, local_cluster=True)
    for stage, unit in [("teacher", "steps"), ("module1", "iterations"), ("encoder", "steps")]:
        assert any(
            re.fullmatch(rf"\[search\] {stage} \(seed 0\): (\d+)/\1 {unit}, done in .+", line)
            for line in lines
        ), lines
    anchors = [line for line in lines if line.startswith("[search] module2 (seed 0")]
    assert len([line for line in anchors if "done in" in line]) == 2  # the grid's two points
    producing = next(i for i, line in enumerate(lines) if "producing shared stages" in line)
    first_module1 = next(i for i, line in enumerate(lines) if "module1 (seed 0)" in line)
    assert producing < first_module1
    assert not list((tmp_path / "stages" / ".live").glob("*/*.json"))  # the files are gone
