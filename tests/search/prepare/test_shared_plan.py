"""Which stages the tasks before a search produce: the ones no searched key changes."""

from __future__ import annotations

from augkd.basics.dotted import get_dotted
from augkd.search.prepare.shared_plan import plan_shared_stages
from augkd.search.prepare.space_file import load_space


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
    from augkd.search.prepare import shared_plan

    monkeypatch.setattr(shared_plan, "MAX_SHARED_ANCHOR_NETS", 5)
    plan = _plan(GRID)
    assert not plan.module2 and "6 points" in plan.notes[0]


def test_the_smoke_test_trains_two_anchor_nets_including_the_base_setting():
    from augkd.search.prepare.request import SearchOptions, requested_space

    space = requested_space(SearchOptions(space="fonts", smoke_test=True))
    plan = plan_shared_stages(space)
    assert plan.module2 and len(plan.module2_grid) == 2
    base = {key: get_dotted(space.base_resolved, key) for key in plan.module2_grid[0]}
    assert base in plan.module2_grid and base["module2.anchor_weight"] == 0.1


def test_every_seed_a_trial_averages_over_gets_its_shared_stages():
    space = load_space("digits", {"params": GRID, "objective": {"seeds": 3}})
    plan = plan_shared_stages(space)
    assert plan.seeds == [0, 1, 2]
    assert plan.module2 and len(plan.module2_grid) == 6  # per seed
