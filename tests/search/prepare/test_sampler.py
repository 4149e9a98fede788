"""A space's Optuna sampler, and the pairings with ASHA that work worse than expected."""

from __future__ import annotations

import optuna

from augkd.search.prepare.sampler import build_sampler, sampler_warnings
from augkd.search.prepare.space_file import load_space


def test_gp_under_asha_warns_and_cmaes_learns_from_pruned_trials():
    gp = load_space("digits", {"sampler": {"name": "gp"}})
    assert "COMPLETE trials only" in sampler_warnings(gp)[0]
    assert sampler_warnings(load_space("digits")) == []
    cmaes = build_sampler(load_space("digits", {"sampler": {"name": "cmaes"}}))
    assert isinstance(cmaes, optuna.samplers.CmaEsSampler)
    assert cmaes._consider_pruned_trials
