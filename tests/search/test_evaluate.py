"""`augkd evaluate`: a search's top-k configs and the baselines over fresh seeds."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient

from augkd import report
from augkd.config import Config
from augkd.dotted import get_dotted
from augkd.search.evaluate import (
    DEFAULTS,
    EVALUATION_TAG,
    Candidate,
    fresh_seeds,
    paired_difference,
    parse_baselines,
    plan,
    top_k_shortfall,
)
from augkd.search.results import load_results
from augkd.search.tracking import TRIAL_TAG
from tests.search.conftest import trial_worker_pids


@pytest.fixture(scope="module")
def evaluated(tiny_search, tmp_path_factory):
    """`augkd evaluate` as a user runs it (its own local Ray) on a copy of the tiny search's
    storage root (the fixture stays as it was): its best config, the defaults and `ce`,
    over 2 fresh seeds, as Ray tasks."""
    storage = tmp_path_factory.mktemp("evaluate") / "storage"
    shutil.copytree(tiny_search["root"], storage)
    uri = f"sqlite:///{storage}/mlflow.db"
    args = ["evaluate", "--search", str(storage), "--top-k", "1", "--seeds", "2"]
    args += ["--baselines", "ce", "--tracking-uri", uri]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, "-m", "augkd.cli", *args], capture_output=True, text=True, env=env
    )
    name = tiny_search["path"].rsplit("/", 1)[-1]
    rows = pq.read_table(storage / name / "evaluation.parquet").to_pylist()
    return {"run": run, "search": storage / name, "uri": uri, "out": run.stdout, "rows": rows}


def _labels(rows) -> list[str]:
    return list(dict.fromkeys(r["label"] for r in rows))


@pytest.mark.slow
def test_evaluate_writes_one_row_per_method_and_fresh_seed(evaluated):
    assert evaluated["run"].returncode == 0, evaluated["run"].stderr[-3000:]
    rows = evaluated["rows"]
    labels = _labels(rows)
    assert labels[0] == "rank1" and labels[-1] == "ce"
    # the search ran seed 0 only: the fresh seeds are 1 and 2, shared by every method
    assert sorted((r["label"], r["seed"]) for r in rows) == sorted(
        (label, seed) for label in labels for seed in (1, 2)
    )
    assert all(r["error"] is None and 0 <= r["test_acc1"] <= 100 for r in rows)
    assert {r["method"] for r in rows} == {"augkd", "ce"}
    assert [r["winner"] for r in rows if r["label"] == "rank1"] == [True, True]


@pytest.mark.slow
def test_the_defaults_are_evaluated_once_on_the_same_seeds(evaluated, tiny_search):
    rows = evaluated["rows"]
    defaults = [r for r in rows if r["defaults"]]
    assert len(defaults) == 2 and len({r["label"] for r in defaults}) == 1
    rank1_is_defaults = defaults[0]["label"] == "rank1"
    assert _labels(rows) == ["rank1", *([] if rank1_is_defaults else [DEFAULTS]), "ce"]
    # they run the space's base config (the first trial's values of every searched key)
    config = yaml.safe_load(defaults[0]["config_yaml"])
    space = json.loads((evaluated["search"] / "search_space.json").read_text())
    for key in space["params"]:
        assert get_dotted(config, key) == get_dotted(space["base_resolved"], key)
    header, *lines, note = evaluated["out"].strip().splitlines()[-(len(_labels(rows)) + 2) :]
    assert "Δ Acc@1 vs ce (± s.e.)" in header and "Δ Acc@1 vs defaults (± s.e.)" in header
    by = {(r["label"], r["seed"]): r["test_acc1"] for r in rows}
    label = defaults[0]["label"]
    winner_vs_defaults = paired_difference(
        Candidate("rank1", Config(), "t", [{"seed": s, "test_acc1": by[("rank1", s)]} for s in (1, 2)]),
        Candidate(label, Config(), None, [{"seed": s, "test_acc1": by[(label, s)]} for s in (1, 2)]),
    )  # fmt: skip
    rank1 = next(line for line in lines if line.startswith("rank1"))
    if rank1_is_defaults:
        assert rank1.rstrip().endswith("-")  # no difference to itself
    else:
        cell = str(winner_vs_defaults)
        assert rank1.rstrip().endswith((cell, f"{cell} (> 2 s.e.)")), rank1
    assert "defaults: the base config's values of the searched keys" in note


@pytest.mark.slow
def test_evaluate_starts_its_own_ray_and_prints_no_library_noise(evaluated):
    err = evaluated["run"].stderr
    assert "[evaluate] started a local Ray (--address auto or HOST:PORT joins a cluster)" in err
    for noise in ("Token authentication", "Started a local Ray instance", "alembic"):
        assert noise not in err, err[-3000:]


@pytest.mark.slow
def test_evaluate_counts_its_runs_down_with_an_eta_in_a_log(evaluated):
    """Not a terminal: a line before the first run ends, then one per finished run."""
    runs = len(evaluated["rows"])
    lines = [
        line
        for line in evaluated["run"].stderr.splitlines()
        if line.startswith("[evaluate] progress:")
    ]
    assert lines[0] == f"[evaluate] progress: 0/{runs} runs, timing"
    assert "ETA" in lines[1] or runs == 1
    assert re.fullmatch(rf"\[evaluate\] progress: {runs}/{runs} runs, done in .+", lines[-1])
    assert len(lines) == runs + 1


@pytest.mark.slow
def test_evaluate_writes_the_baselines_file_the_report_draws(evaluated):
    rows = pq.read_table(evaluated["search"] / "evaluation.parquet").to_pylist()
    payload = json.loads((evaluated["search"] / "baselines.json").read_text())
    defaults = next(r["label"] for r in rows if r["defaults"])
    for label, method in (("rank1", "augkd"), ("ce", "ce"), (defaults, DEFAULTS)):
        expected = [r["test_acc1"] for r in sorted(rows, key=lambda r: r["seed"])
                    if r["label"] == label]  # fmt: skip
        assert payload["methods"][method]["test_acc1"] == expected
    data = report.load_search(str(evaluated["search"]), evaluated["uri"])
    assert report.plot_baselines(data).figure is not None


@pytest.mark.slow
def test_evaluate_logs_its_runs_under_the_searchs_parent(evaluated):
    client = MlflowClient(evaluated["uri"])
    experiment = client.get_experiment_by_name("augkd-digits")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{EVALUATION_TAG}` != ''"
    )
    parent = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = 'parent'"
    )[0]
    assert len(runs) == len(evaluated["rows"]) == 2 * len(_labels(evaluated["rows"]))
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert all("test_acc1" in r.data.metrics and r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params["seed"] in ("1", "2") for r in runs)


@pytest.mark.slow
def test_evaluate_prints_a_paired_table_against_the_best_baseline(evaluated):
    rows = evaluated["rows"]
    by = {(r["label"], r["seed"]): r["test_acc1"] for r in rows}
    diffs = [by[("rank1", s)] - by[("ce", s)] for s in (1, 2)]
    mean = statistics.fmean(diffs)
    error = statistics.stdev(diffs) / 2**0.5
    ours = Candidate(
        "rank1", Config(), "t", [{"seed": s, "test_acc1": by[("rank1", s)]} for s in (1, 2)]
    )
    theirs = Candidate(
        "ce", Config(), None, [{"seed": s, "test_acc1": by[("ce", s)]} for s in (1, 2)]
    )
    difference = paired_difference(ours, theirs)
    assert (difference.mean, difference.error, difference.seeds) == pytest.approx((mean, error, 2))
    header, *lines, note = evaluated["out"].strip().splitlines()[-(len(_labels(rows)) + 2) :]
    assert "Δ Acc@1 vs ce (± s.e.)" in header and "fresh seeds [1, 2]" in note
    rank1 = next(line for line in lines if line.startswith("rank1"))
    ce = next(line for line in lines if line.startswith("ce"))
    assert f"{mean:+.1f} ± {error:.1f}" in rank1
    assert f"{statistics.fmean(by[('ce', s)] for s in (1, 2)):.1f} ±" in ce


def test_without_actor_reuse_every_trial_gets_a_fresh_worker_process(tiny_search):
    """tiny_search sets reuse_actors=false (the other searches reuse; test_objective.py)."""
    pids = trial_worker_pids(tiny_search["path"])
    assert len(pids) == 3 and all(len(of_trial) == 1 for of_trial in pids.values())
    assert len(set().union(*pids.values())) == 3, pids


def test_the_plan_holds_the_top_k_the_defaults_once_and_the_baselines(tiny_search):
    candidates, seeds = plan(tiny_search["path"], top_k=1, seeds=3, baselines=["ce", "kd"])
    labels = [c.label for c in candidates]
    assert labels[0] == "rank1" and labels[-2:] == ["ce", "kd"] and seeds == [1, 2, 3]
    assert sum(c.is_defaults for c in candidates) == 1
    if candidates[0].is_defaults:  # the best trial is the first one, the defaults
        assert labels == ["rank1", "ce", "kd"]
    else:
        assert labels == ["rank1", DEFAULTS, "ce", "kd"]
        space = json.loads(Path(tiny_search["path"], "search_space.json").read_text())
        assert candidates[1].config.module3.a == space["base_resolved"]["module3"]["a"]
    baseline = candidates[-1].config.to_dict()
    assert (
        baseline["method"] == "kd"
        and baseline["module3"] == candidates[0].config.to_dict()["module3"]
    )


def test_an_evaluation_says_when_fewer_trials_than_top_k_ran_to_the_full_budget(tiny_search):
    completed = sum(r.get("status") == "completed" for r in load_results(tiny_search["path"]))
    candidates, _ = plan(tiny_search["path"], top_k=completed + 2, seeds=1, baselines=["ce"])
    note = top_k_shortfall(candidates, completed + 2)
    assert note and f"only {completed} trial(s)" in note
    assert top_k_shortfall(candidates, completed) is None


def test_fresh_seeds_skip_the_searchs_and_bad_baselines_are_refused():
    assert fresh_seeds({0, 2}, 3) == [1, 3, 4]
    assert parse_baselines("ce, kd") == ["ce", "kd"]
    with pytest.raises(Exception, match="unknown methods"):
        parse_baselines("ce,bogus")
