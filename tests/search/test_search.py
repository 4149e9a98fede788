"""Real searches: Ray Tune + Optuna + ASHA + MLflow on the built-in benchmark."""

from __future__ import annotations

import multiprocessing
import time

import mlflow
import optuna
import pytest
import torch
import yaml

from augkd.cli import main as augkd_main
from augkd.search.records.results import load_results
from augkd.search.run.runner import SearchOptions, run_full_budget_search, run_search
from augkd.search.run.study import open_storage
from augkd.storage.cache import StageCache

SMALL = ["module3.epochs=4", "scheduler.grace_period=1"]


@pytest.fixture(scope="module")
def smoke_search(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    options = SearchOptions(
        space="digits", storage=str(root / "runs"), tracking_uri=f"sqlite:///{root}/mlflow.db",
        smoke_test=True, num_samples=4, overrides=SMALL, name="smoke",
    )  # fmt: skip
    outcome = run_search(options, echo=lambda *a, **k: None)
    return root, outcome


@pytest.mark.slow
def test_smoke_search_records_every_trial_in_table_and_mlflow(smoke_search):
    root, outcome = smoke_search
    mlflow.set_tracking_uri(outcome.tracking_uri)
    rows = load_results(outcome.search_path)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert {r["status"] for r in rows} <= {"completed", "pruned"}
    assert any(r["status"] == "completed" for r in rows)
    runs = mlflow.search_runs(
        experiment_names=["augkd-digits"],
        filter_string="tags.`augkd.trial_id` != 'parent'",
    )  # fmt: skip
    assert len(runs) == 4
    assert set(runs["tags.augkd.trial_id"]) == {r["trial_id"] for r in rows}
    assert "params.module2.anchor_weight" in runs and "metrics.val_acc1" in runs
    assert set(runs["status"]) <= {"FINISHED", "KILLED"}
    parents = mlflow.search_runs(
        experiment_names=["augkd-digits"],
        filter_string="tags.`augkd.trial_id` = 'parent'",
    )  # fmt: skip
    assert len(parents) == 1 and parents["metrics.trials"].iloc[0] == 4
    assert set(runs["tags.mlflow.parentRunId"]) == {parents["run_id"].iloc[0]}


@pytest.mark.slow
def test_stages_are_produced_once_before_the_trials_which_only_read_them(smoke_search):
    root, outcome = smoke_search
    rows = load_results(outcome.search_path)
    assert [r["module1_cache_hit"] for r in rows] == [1.0] * 4
    assert len(list((root / "runs" / "stage_cache" / "module1").glob("*.pt"))) == 1
    shared = outcome.shared
    # The digits space searches Module 2 on a categorical grid (two points in a smoke test):
    # each AnchorNet is trained once, before the trials, and every trial only reads one.
    assert shared.module1 and shared.module2 and len(shared.module2_grid) == 2
    assert [r["module2_cache_hit"] for r in rows] == [1.0] * 4
    assert len(list((root / "runs" / "stage_cache" / "module2").glob("*.pt"))) == 2
    produced = [stage for stage, _, hit, _ in shared.produced if not hit]
    assert produced == ["teacher", "module1", "encoder", "module2", "diagnostics", "module2",
                        "diagnostics"]  # fmt: skip
    assert shared.preflight["classes"] == 10 and shared.preflight["device"] == "cpu"
    # What each trial spent before its first report, and in Module 3, is in the table.
    assert all(r["setup_seconds"] > 0 and r["module3_seconds"] > 0 for r in rows)
    assert all(r["trial_seconds"] >= r["setup_seconds"] + r["module3_seconds"] for r in rows)
    # ... and the parent run says where the search's compute went
    mlflow.set_tracking_uri(outcome.tracking_uri)
    parent = mlflow.search_runs(
        experiment_names=["augkd-digits"], filter_string="tags.`augkd.trial_id` = 'parent'"
    ).iloc[0]
    assert parent["metrics.shared_stage_seconds"] == pytest.approx(shared.seconds)
    assert parent["metrics.trial_seconds"] == pytest.approx(sum(r["trial_seconds"] for r in rows))
    assert 0 < parent["metrics.before_first_report_share"] < 1


@pytest.mark.slow
def test_a_trial_off_the_shared_grid_trains_its_own_anchor_net(smoke_search):
    from augkd.basics.config import load_config
    from augkd.trial.pipeline import run_trial

    root, outcome = smoke_search
    row = next(r for r in load_results(outcome.search_path) if r.get("config_yaml"))
    path = root / "rank.yaml"
    path.write_text(row["config_yaml"])
    config = load_config(path, ["module2.anchor_weight=0.2", "module3.epochs=1"])
    result = run_trial(config, log=lambda _l: None)
    assert result.metrics["module1_cache_hit"] == 1.0  # the search's stages, from its cache
    assert result.metrics["module2_cache_hit"] == 0.0
    assert len(list((root / "runs" / "stage_cache" / "module2").glob("*.pt"))) == 3


@pytest.mark.slow
def test_trials_judged_over_two_seeds_report_their_mean_and_each_seed(local_ray, tmp_path):
    # The full-budget search the space study runs: random draws, FIFO, objective.seeds.
    outcome = run_full_budget_search(
        "digits", tmp_path / "runs", 2, ["objective.seeds=2"], echo=lambda *a, **k: None,
        smoke_test=True, name="two-seeds",
    )  # fmt: skip
    assert outcome.shared.seeds == [0, 1]  # both seeds' stages produced before the trials
    assert len(list((tmp_path / "runs" / "stage_cache" / "module1").glob("*.pt"))) == 2
    rows = load_results(outcome.search_path)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"completed"}
    for row in rows:
        seeds = (row["best_val_acc1_seed0"], row["best_val_acc1_seed1"])
        assert row["best_val_acc1"] == pytest.approx(sum(seeds) / 2)  # the objective: the mean
        assert row["test_acc1"] == pytest.approx(
            (row["test_acc1_seed0"] + row["test_acc1_seed1"]) / 2
        )
    study = optuna.load_study(
        study_name="two-seeds", storage=open_storage(outcome.search_path)
    )  # fmt: skip
    values = sorted(t.value for t in study.trials)
    assert values == pytest.approx(sorted(r["best_val_acc1"] for r in rows))


@pytest.mark.slow
def test_export_writes_a_config_that_train_accepts(smoke_search, tmp_path):
    _, outcome = smoke_search
    assert (
        augkd_main(
            ["export", "--search", outcome.search_path, "--top-k", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    exported = yaml.safe_load((tmp_path / "rank1.yaml").read_text())
    best = [r for r in load_results(outcome.search_path) if r["status"] == "completed"]
    best.sort(key=lambda r: -r["best_val_acc1"])
    assert exported["module2"]["anchor_weight"] == pytest.approx(
        best[0]["param:module2.anchor_weight"]
    )
    assert augkd_main(["compare", "--search", outcome.search_path]) == 0


@pytest.mark.slow
def test_failed_and_diverged_trials_are_recorded_and_the_search_goes_on(
    local_ray, tmp_path, tiny_config
):
    from tests.trial.test_pipeline import nan_teacher

    bad = nan_teacher(tiny_config, tmp_path / "nan.pt")
    space = {
        "name": "faults",
        "base": {"method": "kd", "teacher": {"cache_dir": tiny_config.teacher.cache_dir, "epochs": 12},
                 "module3": {"epochs": 2}},
        "params": {
            "teacher.checkpoint": {"type": "categorical", "choices": [None, bad, "/no/such/teacher.pt"]}
        },
        "sampler": {"name": "grid"},
        "scheduler": {"name": "fifo"},
        "num_samples": 3,
    }  # fmt: skip
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(space))
    outcome = run_search(
        SearchOptions(space=str(path), storage=str(tmp_path / "runs"),
                      tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
        echo=lambda *a, **k: None,
    )  # fmt: skip
    mlflow.set_tracking_uri(outcome.tracking_uri)
    rows = {r["param:teacher.checkpoint"]: r for r in load_results(outcome.search_path)}
    assert rows[None]["status"] == "completed"
    assert rows[bad]["status"] == "failed" and "diverged" in rows[bad]["error"]
    assert rows["/no/such/teacher.pt"]["status"] == "failed"
    assert "cannot be read" in rows["/no/such/teacher.pt"]["error"]
    runs = mlflow.search_runs(experiment_names=["augkd-faults"],
                              filter_string="tags.`augkd.trial_id` != 'parent'")  # fmt: skip
    assert sorted(runs["status"]) == ["FAILED", "FAILED", "FINISHED"]


def _produce_in_process(root: str, out: str) -> None:
    def slow_producer():
        with open(out, "a") as handle:
            handle.write("produced\n")
        time.sleep(1.5)
        return {"weights": torch.ones(3)}

    artifact = StageCache(root, poll_s=0.1).get_or_create("module1", "shared-key", slow_producer)
    assert torch.equal(artifact["weights"], torch.ones(3))


@pytest.mark.slow
def test_concurrent_trials_needing_one_artifact_compute_it_once(tmp_path):
    out = tmp_path / "producers.txt"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_produce_in_process, args=(str(tmp_path / "cache"), str(out)))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert out.read_text().count("produced") == 1
    assert len(list((tmp_path / "cache" / "module1").glob("*.pt"))) == 1
