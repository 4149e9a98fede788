"""The evaluation's race: rounds of paired fresh seeds until the verdict is decided.

The race's control flow is driven here by a deterministic table of per-seed results (what
a run returned), so that each ending (resolved, equivalent, --max-seeds) is pinned exactly;
tests/search/answer/test_evaluate.py runs the same race with real Ray tasks on a real search."""

from __future__ import annotations

import json

import pytest

from augkd.basics.config import Config
from augkd.basics.errors import ConfigError
from augkd.basics.seed_stats import PairedDifference
from augkd.search.answer.candidates import Candidate, baseline_recipes
from augkd.search.answer.racing import RaceSettings, decide, outcome_of, race
from augkd.search.prepare.space import Objective
from augkd.search.records.results import ranked_at_common_step

OBJECTIVE = Objective()  # best_val_acc1, max


def _runner(results: dict[str, callable], log: list):
    """run_round that records which (label, seed) ran and appends the table's outcome."""

    def run_round(work):
        for candidate, seed in work:
            log.append((candidate.label, seed))
            value = results[candidate.label](seed)
            candidate.runs.append(
                {"seed": seed, "best_val_acc1": value, "test_acc1": value, "run_seconds": 1.0}
            )

    return run_round


def _field(**kinds: str) -> list[Candidate]:
    return [
        Candidate(name, Config(), kind=kind, is_defaults=kind == "defaults")
        for name, kind in kinds.items()
    ]


def _noisy(mean: float, spread: float = 0.4):
    """A deterministic per-seed wobble around ``mean`` (the same for every candidate, so
    paired differences keep it small, plus a seed-specific part)."""
    return lambda seed: mean + spread * ((seed * 7919) % 11 - 5) / 5 + 0.3 * (seed % 3)


def test_a_clear_winner_is_decided_in_the_first_round():
    candidates = _field(rank1="searched", defaults="defaults", ce="baseline")
    results = {"rank1": _noisy(95.0), "defaults": _noisy(92.0), "ce": _noisy(90.0)}
    ran: list = []
    seeds, verdict = race(candidates, list(range(1, 11)), OBJECTIVE, RaceSettings(), _runner(results, ran), echo=lambda _: None)  # fmt: skip
    assert seeds == [1, 2, 3] and verdict.decision == "take the winner"
    assert (
        verdict.versus_defaults.outcome == "better" and verdict.versus_baseline.outcome == "better"
    )
    assert verdict.sentence.startswith("rank1 beats defaults by 3.0 ± ")
    assert (
        "and beats ce by 5.0 ± " in verdict.sentence
        and "over 3 seeds (95 % intervals)" in verdict.sentence.replace("95%", "95 %")
    )
    assert verdict.runs == 9 and verdict.compute_seconds == 9.0


def test_racing_adds_seeds_in_rounds_until_the_difference_resolves():
    # rank1 leads the defaults by 0.6 with a seed noise that needs several seeds to resolve
    candidates = _field(rank1="searched", defaults="defaults")
    wobble = {1: 0.9, 2: -0.5, 3: 0.8, 4: 0.6, 5: 0.7, 6: 0.5, 7: 0.9, 8: 0.4, 9: 0.6, 10: 0.7}
    results = {"rank1": lambda s: 90.0 + wobble[s], "defaults": lambda s: 90.0}
    seeds, verdict = race(candidates, list(range(1, 11)), OBJECTIVE, RaceSettings(margin=0.1), _runner(results, []), echo=lambda _: None)  # fmt: skip
    assert len(seeds) in (5, 7, 9) and seeds == list(range(1, len(seeds) + 1))
    assert verdict.resolved and verdict.versus_defaults.outcome == "better"
    # every round before the last was unresolved, so the race could not have stopped there
    for shorter in range(3, len(seeds), 2):
        early = [Candidate(c.label, c.config, runs=[r for r in c.runs if r["seed"] <= shorter],
                           kind=c.kind, is_defaults=c.is_defaults) for c in candidates]  # fmt: skip
        assert not decide(
            early[0], early[1], None, seeds[:shorter], RaceSettings(margin=0.1)
        ).resolved


def test_racing_stops_at_max_seeds_unresolved():
    candidates = _field(rank1="searched", defaults="defaults")
    alternating = lambda s: 90.0 + (1.0 if s % 2 else -1.0)  # noqa: E731
    results = {"rank1": alternating, "defaults": lambda s: 90.0}
    seeds, verdict = race(candidates, list(range(1, 20)), OBJECTIVE, RaceSettings(max_seeds=6, margin=0.2), _runner(results, []), echo=lambda _: None)  # fmt: skip
    assert seeds == [1, 2, 3, 4, 5, 6] and verdict.decision == "unresolved"
    assert verdict.sentence.startswith("not resolved after 6 seeds")


def test_equivalence_inside_the_margin_ends_with_keep_the_defaults():
    candidates = _field(rank1="searched", defaults="defaults", ce="baseline")
    same = _noisy(94.0)
    results = {"rank1": lambda s: same(s) + 0.05 * (s % 2), "defaults": same, "ce": _noisy(89.0)}
    seeds, verdict = race(candidates, list(range(1, 11)), OBJECTIVE, RaceSettings(), _runner(results, []), echo=lambda _: None)  # fmt: skip
    assert verdict.versus_defaults.outcome == "equivalent"
    assert verdict.decision == "keep the defaults"
    assert verdict.sentence.startswith(
        "no searched config differs from the defaults by more than 0.5 points"
    )
    assert verdict.sentence.endswith("keep the defaults")


def test_candidates_clearly_behind_on_val_leave_the_race_and_the_rest_keep_paired_seeds():
    candidates = _field(rank1="searched", rank2="searched", defaults="defaults")
    wobble = {1: 0.9, 2: -0.5, 3: 0.8, 4: 0.6, 5: 0.7, 6: 0.5, 7: 0.9, 8: 0.4, 9: 0.6, 10: 0.7}
    results = {
        "rank1": lambda s: 90.0 + wobble[s],
        "rank2": lambda s: 80.0 + 0.1 * s,
        "defaults": lambda s: 90.0,
    }
    ran: list = []
    seeds, verdict = race(candidates, list(range(1, 11)), OBJECTIVE, RaceSettings(margin=0.1), _runner(results, ran), echo=lambda _: None)  # fmt: skip
    rank2 = candidates[1]
    assert rank2.dropped and "behind rank1 on val" in rank2.dropped
    assert sorted(s for label, s in ran if label == "rank2") == [1, 2, 3]
    assert sorted(s for label, s in ran if label == "rank1") == seeds
    assert sorted(s for label, s in ran if label == "defaults") == seeds


def test_each_baseline_keeps_the_recipe_with_the_better_val():
    defaults = Config()
    best = Candidate("rank1", Config.model_validate({"module3": {"lr": 3e-3, "weight_decay": 1e-5, "ce_share": 0.2}}))  # fmt: skip
    ce_own, ce_tuned = baseline_recipes("ce", defaults, best)
    assert ce_own.label == "ce" and ce_own.recipe == "own defaults"
    assert ce_tuned.label == "ce@rank1" and ce_tuned.recipe == "rank1's"
    assert ce_tuned.config.module3.lr == 3e-3 and ce_tuned.config.module3.weight_decay == 1e-5
    # the recipe is the shared one: a key of AuG-KD alone stays at the baseline's defaults
    assert ce_tuned.config.module3.ce_share == defaults.module3.ce_share
    assert ce_own.config.module3.lr == defaults.module3.lr
    same = baseline_recipes("kd", defaults, Candidate("rank1", Config()))
    assert len(same) == 1 and same[0].recipe == "own defaults = rank1's"
    candidates = [Candidate("rank1", Config()), Candidate("defaults", Config(), kind="defaults", is_defaults=True), ce_own, ce_tuned]  # fmt: skip
    results = {"rank1": _noisy(95.0), "defaults": _noisy(92.0), "ce": _noisy(88.0), "ce@rank1": _noisy(90.0)}  # fmt: skip
    ran: list = []
    race(candidates, list(range(1, 11)), OBJECTIVE, RaceSettings(), _runner(results, ran), echo=lambda _: None)  # fmt: skip
    assert ce_own.dropped and "lower best_val_acc1 than ce@rank1" in ce_own.dropped
    assert ce_tuned.dropped is None


def test_race_settings_refuse_what_cannot_run():
    with pytest.raises(ConfigError, match="--max-seeds 2 is below the first round's 3 seeds"):
        RaceSettings(first_seeds=3, max_seeds=2)
    with pytest.raises(ConfigError, match="--margin must be 0 or more"):
        RaceSettings(margin=-1)


def test_an_interval_decides_better_worse_equivalent_or_nothing():
    assert outcome_of(PairedDifference(1.0, 0.1, 5), 0.5, 0.95) == "better"
    assert outcome_of(PairedDifference(-1.0, 0.1, 5), 0.5, 0.95) == "worse"
    assert outcome_of(PairedDifference(0.05, 0.05, 5), 0.5, 0.95) == "equivalent"
    assert outcome_of(PairedDifference(0.3, 0.3, 3), 0.5, 0.95) == "unresolved"
    assert outcome_of(PairedDifference(3.0, math_nan := float("nan"), 1), 0.5, 0.95) == "unresolved"
    assert math_nan != math_nan


def _row(trial: str, status: str, curve: list[tuple[int, float]]) -> dict:
    history = [{"step": step, "best_val_acc1": value} for step, value in curve]
    return {"trial_id": trial, "status": status, "history_json": json.dumps(history)}


def test_top_k_candidates_are_judged_at_the_highest_step_that_k_trials_reached():
    rows = [
        _row("a", "completed", [(50, 80.0), (100, 85.0), (200, 90.0)]),
        _row("b", "pruned", [(50, 84.0), (100, 88.0)]),
        _row("c", "pruned", [(50, 82.0)]),
        _row("d", "pruned", [(50, 86.0)]),
        _row("e", "failed", [(50, 99.0), (100, 99.0)]),
    ]
    one = ranked_at_common_step(rows, OBJECTIVE, 1)
    assert [(r["trial_id"], step) for r, step in one] == [("a", 200.0)]
    two = ranked_at_common_step(rows, OBJECTIVE, 2)
    assert [(r["trial_id"], step) for r, step in two] == [("b", 100.0), ("a", 100.0)]
    three = ranked_at_common_step(rows, OBJECTIVE, 3)
    assert [(r["trial_id"], step) for r, step in three] == [("d", 50.0), ("b", 50.0), ("c", 50.0)]
    assert len(ranked_at_common_step(rows, OBJECTIVE, 10)) == 4  # never a failed trial


def test_a_baselines_own_search_adds_a_third_recipe_unless_it_is_one_of_the_two():
    from augkd.basics.config import with_overrides

    defaults = Config()
    best = Candidate("rank1", Config.model_validate({"module3": {"lr": 3e-3}}))
    searched = with_overrides(defaults, {"method": "kd", "module3.ce_share": 0.9})
    own, at_best, tuned = baseline_recipes("kd", defaults, best, searched)
    assert tuned.label == "kd@tuned" and tuned.recipe == "its own search's best"
    assert tuned.config.module3.ce_share == 0.9 and own.recipe == "own defaults"
    # a search whose best is the baseline's own defaults adds no candidate: one row, named so
    merged = baseline_recipes("kd", defaults, best, with_overrides(defaults, {"method": "kd"}))
    assert [c.label for c in merged] == ["kd", "kd@rank1"]
    assert merged[0].recipe == "own defaults = its own search's best"
    # and the race keeps one recipe of the three by val, as of two
    candidates = [Candidate("rank1", Config()), own, at_best, tuned]
    results = {"rank1": _noisy(95.0), "kd": _noisy(88.0), "kd@rank1": _noisy(89.0), "kd@tuned": _noisy(93.0)}  # fmt: skip
    race(candidates, list(range(1, 11)), OBJECTIVE, RaceSettings(), _runner(results, []), echo=lambda _: None)  # fmt: skip
    assert tuned.dropped is None and own.dropped and at_best.dropped


def test_top_k_candidates_that_tie_at_the_common_step_go_lowest_val_loss_first():
    def saturated(trial: str, loss: float) -> dict:
        history = [{"step": 50, "best_val_acc1": 100.0, "val_loss": loss}]
        return {"trial_id": trial, "status": "pruned", "history_json": json.dumps(history)}

    rows = [saturated("sure", 0.02), saturated("unsure", 0.4), saturated("surest", 0.01)]
    ranked = ranked_at_common_step(rows, OBJECTIVE, 2)
    assert [row["trial_id"] for row, _ in ranked] == ["surest", "sure"]
