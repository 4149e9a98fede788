"""One objective everywhere: a real tiny search that minimises train_loss is ranked by
train_loss in the leaderboard, the parent run, export, the report and the evaluation."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient

from augkd import report
from augkd.basics.metric_names import TRAIN_LOSS
from augkd.cli import main as augkd_main
from augkd.report.loading import history_step, trial_history
from augkd.search.answer.candidates import DEFAULTS, plan
from augkd.search.answer.evaluate import run_evaluation
from augkd.search.answer.evaluation_table import format_table
from augkd.search.prepare.space import Objective, recorded_objective, recorded_space
from augkd.search.records.results import format_leaderboard, load_results, rank
from augkd.search.records.tracking import TRIAL_TAG
from augkd.search.run.runner import SearchOptions, run_search
from tests.conftest import TINY_SEARCH
from tests.search.conftest import trial_worker_pids

pytestmark = pytest.mark.slow

MIN_LOSS = Objective(metric=TRAIN_LOSS, mode="min")


@pytest.fixture(scope="module")
def loss_search(local_ray, tmp_path_factory):
    """Three trials that all run to the end (FIFO), ranked by their last train loss; the
    first is the space's defaults. Then its three configs on one fresh seed."""
    root = tmp_path_factory.mktemp("objective")
    settings = ["objective.metric=train_loss", "objective.mode=min", "scheduler.name=fifo"]
    outcome = run_search(
        SearchOptions(
            space="digits", storage=str(root / "runs"), tracking_uri=f"sqlite:///{root}/mlflow.db",
            smoke_test=True, num_samples=3, overrides=[*TINY_SEARCH, *settings], name="loss",
        ),
        echo=lambda *_: None,
    )  # fmt: skip
    evaluation = run_evaluation(
        outcome.search_path, top_k=3, seeds=1, baselines=[], tracking_uri=outcome.tracking_uri,
        echo=lambda *_: None, max_seeds=1,
    )  # fmt: skip
    return {"outcome": outcome, "evaluation": evaluation, "root": root}


def _losses(rows):
    return [row[TRAIN_LOSS] for row in rows]


def test_the_search_records_its_objective_for_every_trial(loss_search):
    outcome = loss_search["outcome"]
    assert recorded_objective(outcome.search_path) == MIN_LOSS
    rows = load_results(outcome.search_path)
    assert [row["status"] for row in rows] == ["completed"] * 3
    for row in rows:  # the last epoch's train loss, also kept per epoch
        history = json.loads(row["history_json"])
        assert row[TRAIN_LOSS] == history[-1][TRAIN_LOSS] > 0


def test_the_leaderboard_and_the_parent_run_follow_the_min_objective(loss_search):
    outcome = loss_search["outcome"]
    ranked = rank(load_results(outcome.search_path), MIN_LOSS)
    assert _losses(ranked) == sorted(_losses(ranked))
    printed = format_leaderboard(outcome.rows, MIN_LOSS).splitlines()
    assert printed[0].split()[3:5] == ["train", "loss"]  # the objective's column comes first
    assert [line.split()[1] for line in printed[1:]] == [r["trial_id"] for r in ranked]
    client = MlflowClient(outcome.tracking_uri)
    experiment = client.get_experiment_by_name("augkd-digits")
    parent = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = 'parent'"
    )[0]
    assert parent.data.metrics[TRAIN_LOSS] == ranked[0][TRAIN_LOSS]
    assert parent.data.tags["augkd.best_trial_id"] == ranked[0]["trial_id"]
    assert parent.data.tags["augkd.objective"] == "train_loss (min)"


def test_export_rank1_is_the_trial_with_the_lowest_loss(loss_search, tmp_path):
    outcome = loss_search["outcome"]
    args = ["export", "--search", outcome.search_path, "--top-k", "3", "--out", str(tmp_path)]
    assert augkd_main(args) == 0
    ranked = rank(load_results(outcome.search_path), MIN_LOSS)
    for place, row in enumerate(ranked, start=1):
        exported = (tmp_path / f"rank{place}.yaml").read_text()
        assert f"trial {row['trial_id']}, rank {place} by train_loss (min)" in exported
        assert yaml.safe_load(exported) == yaml.safe_load(row["config_yaml"])


def test_the_report_ranks_and_colours_by_the_objective(loss_search):
    outcome = loss_search["outcome"]
    data = report.load_search(outcome.search_path, outcome.tracking_uri)
    assert data.objective == MIN_LOSS
    table = report.leaderboard(data).table
    assert list(table["train loss"]) == sorted(table["train loss"])
    assert "train_loss (min)" in report.leaderboard(data).title
    study, step, _ = report.importance_study(data)
    last_steps = {history_step(trial_history(row)[-1]) for row in data.rows}
    assert study.direction.name == "MINIMIZE" and last_steps == {step}  # FIFO: the full budget


def test_the_evaluations_winner_has_the_lowest_mean_objective(loss_search):
    evaluation = loss_search["evaluation"]
    searched = [c for c in evaluation.candidates if c.kind == "searched"]
    assert len(searched) == 3 and evaluation.seeds == [1]
    assert evaluation.winner is min(searched, key=lambda c: c.mean(TRAIN_LOSS))
    rows = pq.read_table(f"{evaluation.search_path}/evaluation.parquet").to_pylist()
    winner_rows = [r for r in rows if r["winner"]]
    assert [r[TRAIN_LOSS] for r in winner_rows] == [min(r[TRAIN_LOSS] for r in rows)]
    assert "* the winner by mean train_loss (min)" in format_table(evaluation)


def test_the_defaults_are_evaluated_once_when_a_top_k_trial_is_them(loss_search):
    evaluation = loss_search["evaluation"]
    defaults = [c for c in evaluation.candidates if c.is_defaults]
    base = recorded_space(evaluation.search_path)["base_resolved"]["module3"]
    first_trial = next(  # Optuna's first trial is enqueued at the space's starting point
        c for c in evaluation.candidates
        if (c.config.module3.a, c.config.module3.b) == (base["a"], base["b"])
    )  # fmt: skip
    assert defaults == [first_trial]  # the first trial is the defaults, so no extra run
    assert DEFAULTS not in [c.label for c in evaluation.candidates]
    header, *lines, note, verdict = format_table(evaluation).splitlines()
    assert "Δ Acc@1 vs defaults (95%)" in header and verdict.startswith("verdict: ")
    assert any(line.startswith(f"{first_trial.label} ({first_trial.trial_id}) = defaults")
               for line in lines)  # fmt: skip
    assert f"({first_trial.label} is them)" in note
    payload = json.loads((loss_search["root"] / "runs" / "loss" / "baselines.json").read_text())
    assert payload["defaults"] == first_trial.label
    assert payload["methods"][DEFAULTS]["test_acc1"] == first_trial.values("test_acc1")


def test_the_defaults_are_a_candidate_of_their_own_when_no_top_k_trial_is_them(
    loss_search, tmp_path
):
    search = tmp_path / "moved"
    shutil.copytree(loss_search["root"] / "runs" / "loss", search)
    space_file = search / "search_space.json"
    space = json.loads(space_file.read_text())
    space["base_resolved"]["module3"]["a"] = 0.55  # a starting point no trial sampled
    space_file.write_text(json.dumps(space))
    candidates, seeds = plan(str(search), top_k=3, seeds=2, baselines=["ce"])
    labels = [c.label for c in candidates]
    assert labels[:4] == ["rank1", "rank2", "rank3", DEFAULTS] and labels[4] == "ce"
    assert labels[5:] in ([], ["ce@rank1"])  # the best config's recipe, when it differs
    assert [c.is_defaults for c in candidates] == [False, False, False, True] + [False] * len(
        labels[4:]
    )
    assert candidates[3].config.module3.a == 0.55 and seeds == [1, 2]


def test_a_finished_trials_worker_process_runs_a_later_trial(loss_search):
    """reuse_actors (on by default): three trials, two at a time, run to their ends in two
    worker processes; the third did not pay for a process of its own."""
    pids = trial_worker_pids(loss_search["outcome"].search_path)
    assert len(pids) == 3 and all(len(of_trial) == 1 for of_trial in pids.values())
    assert len(set().union(*pids.values())) == 2, pids
