"""The MLflow recorder: its record survives a driver killed between two table writes, and
each trial's peak memory reaches the table and MLflow."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from augkd.search.records.results import load_results
from augkd.search.records.tracking import SearchRecorder


def _result(epoch: int) -> dict:
    return {"epoch": epoch, "epochs": 4, "val_acc1": 50.0 + epoch, "best_val_acc1": 50.0 + epoch}


def test_a_restarted_driver_takes_back_the_epochs_the_table_lost(tmp_path):
    uri, search_path = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "search")
    trial = SimpleNamespace(trial_id="t1", config={"module3.a": 0.5}, checkpoint=None)
    first = SearchRecorder(uri, "augkd-test", "search", search_path)
    first.setup()
    first.on_trial_start(0, [], trial)
    for epoch in (1, 2, 3):  # the table is written at epoch 1, then not within 5 s
        first.on_trial_result(0, [], trial, _result(epoch))
    on_disk = json.loads(load_results(search_path)[0]["history_json"])
    assert [h["epoch"] for h in on_disk] == [1]  # the driver dies here

    restarted = SearchRecorder(uri, "augkd-test", "search", search_path)
    restarted.setup()
    restarted.on_trial_start(0, [], trial)
    restarted.on_trial_result(0, [], trial, _result(4))  # the trial goes on after epoch 3
    restarted.table.write()

    history = json.loads(load_results(search_path)[0]["history_json"])
    assert [int(h["epoch"]) for h in history] == [1, 2, 3, 4]
    assert [h["val_acc1"] for h in history] == [51.0, 52.0, 53.0, 54.0]


@pytest.mark.slow
def test_every_trial_records_its_peak_memory_in_the_table_and_mlflow(tiny_search):
    from mlflow.tracking import MlflowClient

    from augkd.hardware.peaks import PEAK_RSS

    rows = tiny_search["rows"]
    assert rows and all(row[PEAK_RSS] > 0 for row in rows)
    client = MlflowClient(tiny_search["uri"])
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`augkd.trial_id` != 'parent'",
    )
    with_peak = [run for run in runs if PEAK_RSS in run.data.metrics]
    assert len(with_peak) == len(rows)
    assert all(run.data.metrics[PEAK_RSS] > 0 for run in with_peak)


@pytest.mark.slow
def test_the_parent_run_records_the_peak_memory_of_every_shared_stage_task(tiny_search):
    """The preflight, each seed's shared-stage task and each Module-2 grid task: one metric
    each on the search's parent run (as the search prints the largest), and the largest as shared_peak_rss_mb."""
    from mlflow.tracking import MlflowClient

    from augkd.hardware.peaks import PEAK_RSS

    client = MlflowClient(tiny_search["uri"])
    (parent,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`augkd.trial_id` = 'parent'",
    )
    metrics = parent.data.metrics
    per_task = {k.removeprefix(f"{PEAK_RSS}."): v for k, v in metrics.items()
                if k.startswith(f"{PEAK_RSS}.")}  # fmt: skip
    # the digits space's Module-2 grid: its first point rides with seed 0's task, each other
    # point is a task of its own
    grid_tasks = set(per_task) - {"preflight", "shared_stage_seed_0"}
    assert len(per_task) - len(grid_tasks) == 2
    assert grid_tasks and all(name.startswith("module_2_seed_0_module2_") for name in grid_tasks)
    assert all(value > 0 for value in per_task.values())
    assert metrics[f"shared_{PEAK_RSS}"] == max(per_task.values())
