"""Who an evaluation re-runs: the top-k configs, the defaults once, each baseline at its
recipes, and the fresh seeds they run on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from augkd.search.answer.candidates import (
    DEFAULTS,
    fresh_seeds,
    parse_baselines,
    plan,
    top_k_shortfall,
)
from augkd.search.records.results import load_results


def test_the_plan_holds_the_top_k_the_defaults_once_and_the_baselines(tiny_search):
    candidates, seeds = plan(tiny_search["path"], top_k=1, seeds=3, baselines=["ce", "kd"])
    labels = [c.label for c in candidates]
    assert labels[0] == "rank1" and seeds == [1, 2, 3]
    assert [c.method for c in candidates if c.is_baseline][-1] == "kd"
    assert sum(c.is_defaults for c in candidates) == 1
    if not candidates[0].is_defaults:
        assert labels[1] == DEFAULTS
        space = json.loads(Path(tiny_search["path"], "search_space.json").read_text())
        assert candidates[1].config.module3.a == space["base_resolved"]["module3"]["a"]
    # each baseline at its own defaults (the base config, the method changed), and at the
    # best config's shared recipe when that differs
    baseline = next(c for c in candidates if c.label == "kd")
    assert baseline.recipe.startswith("own defaults")
    defaults = next(c for c in candidates if c.is_defaults).config.to_dict()
    assert baseline.config.to_dict()["module3"] == defaults["module3"]
    assert baseline.config.method == "kd"


@pytest.fixture
def one_more_stopped(tiny_search, tmp_path) -> str:
    """A copy of the tiny search with one more trial stopped at its first report, as ASHA
    stops one: whether it stops any of the tiny search's three depends on the order their
    results arrive in, which the machine's load decides."""
    import pandas as pd

    copy = tmp_path / "search"
    shutil.copytree(tiny_search["path"], copy)
    table = pd.read_parquet(copy / "results.parquet")
    last = table.index[table["status"] == "completed"][-1]
    table.loc[last, "status"] = "pruned"
    table.loc[last, "history_json"] = json.dumps(json.loads(table.loc[last, "history_json"])[:1])
    table.to_parquet(copy / "results.parquet")
    return str(copy)


def test_top_k_returns_k_candidates_when_asha_completes_fewer(one_more_stopped):
    rows = load_results(one_more_stopped)
    completed = sum(r.get("status") == "completed" for r in rows)
    reported = sum(
        r.get("status") != "failed" and r.get("history_json") not in (None, "[]") for r in rows
    )
    assert completed < reported  # ASHA stopped some: the case this pins
    candidates, _ = plan(one_more_stopped, top_k=reported, seeds=1, baselines=["ce"])
    searched = [c for c in candidates if c.kind == "searched"]
    assert len(searched) == reported and top_k_shortfall(candidates, reported) is None
    steps = {c.judged_at for c in searched}
    assert len(steps) == 1 and steps.pop() > 0  # all judged at one common step
    # a pruned trial's config is the base with its sampled values
    assert all(c.config.method == "augkd" for c in searched)
    note = top_k_shortfall(candidates, reported + 2)
    assert note and f"only {reported} trial(s)" in note


def test_fresh_seeds_skip_the_searchs_and_bad_baselines_are_refused():
    assert fresh_seeds({0, 2}, 3) == [1, 3, 4]
    assert parse_baselines("ce, kd") == ["ce", "kd"]
    with pytest.raises(Exception, match="unknown methods"):
        parse_baselines("ce,bogus")
