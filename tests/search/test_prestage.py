"""Which stages the tasks before a search produce: the ones no searched key changes."""

from __future__ import annotations

from augkd.search.prestage import plan_shared_stages
from augkd.search.space import load_space


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
