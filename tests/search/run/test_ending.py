"""How a search ends when it did not do what was asked: every trial failed (exit 3,
naming the shared error) or an exception escaped it. Either way MLflow and the results
table hold a true record and nothing stays RUNNING. A time budget's end is the search's own
ending: the trials it cut stay resumable. (Ctrl-C: test_interrupt.py.)"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from ray import tune

from augkd.basics.errors import ExitCode
from augkd.search.records.results import load_results
from augkd.search.records.tracking import SEARCH_TAG, TRIAL_TAG
from augkd.search.run.progress import ProgressView
from augkd.search.run.runner import SearchOptions, run_search
from augkd.search.run.study import TUNE_TRIAL_ATTR, load_study
from tests.basics.test_exit_codes import one_line
from tests.trial.test_pipeline import nan_teacher

QUICK = ["teacher.epochs=2", "module3.epochs=2", "scheduler.name=fifo"]


def _runs(tracking_uri: str, name: str) -> dict[str, object]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("augkd-digits")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{name}'"
    )
    return {run.data.tags[TRIAL_TAG]: run for run in runs}


@pytest.mark.slow
def test_search_whose_every_trial_failed_exits_3_naming_the_error(
    local_ray, search_main, tiny_config, tmp_path, capsys
):
    teacher = nan_teacher(tiny_config, tmp_path / "nan_teacher.pt")  # every trial diverges
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = [*QUICK, "method=kd", f"teacher.checkpoint={teacher}"]
    code = search_main(
        ["--space", "digits", "--smoke-test", "--num-samples", "2", "--name", "doomed", "--storage", str(tmp_path),
         "--tracking-uri", tracking_uri, *(f"--set={item}" for item in settings)]
    )  # fmt: skip
    line = one_line(capsys.readouterr())
    assert code == ExitCode.ALL_TRIALS_FAILED
    assert line == (
        "error: All 2 trials failed with the same error: Module 3 training loss at epoch 1 "
        "became nan (training diverged); lower module3.lr or check the data."
    )
    rows = load_results(str(tmp_path / "doomed"))
    assert [row["status"] for row in rows] == ["failed", "failed"]
    runs = _runs(tracking_uri, "doomed")
    assert {runs[row["trial_id"]].info.status for row in rows} == {"FAILED"}
    assert runs["parent"].info.status == "FAILED"
    assert runs["parent"].data.tags["augkd.status"] == "failed"
    assert runs["parent"].data.metrics["trials_failed"] == 2
    assert not (tmp_path / "doomed" / "best_configs").exists()


@pytest.mark.slow
def test_exception_escaping_the_search_leaves_nothing_running(local_ray, tmp_path, monkeypatch):
    def disk_full(self, iteration, trials, trial, result, **info):
        raise OSError("injected: no space left on device")

    monkeypatch.setattr(ProgressView, "on_trial_result", disk_full, raising=False)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = SearchOptions(
        space="digits", storage=str(tmp_path), name="crashed", tracking_uri=tracking_uri, smoke_test=True,
        num_samples=1, overrides=[*QUICK, "method=ce"],
    )  # fmt: skip
    with pytest.raises(Exception, match="injected"):
        run_search(options, echo=lambda *a, **k: None)
    runs = _runs(tracking_uri, "crashed")
    assert runs["parent"].info.status == "FAILED"
    assert "injected: no space left on device" in runs["parent"].data.tags["augkd.error"]
    assert all(run.info.status != "RUNNING" for run in runs.values())
    assert all(row["status"] != "running" for row in load_results(str(tmp_path / "crashed")))


@pytest.mark.slow
def test_time_budget_end_keeps_the_trials_it_cut_interrupted_and_resumable(
    local_ray, search_main, tmp_path, capsys
):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = ["teacher.epochs=2", "module3.epochs=300", "scheduler.name=fifo", "method=ce"]
    code = search_main(
        ["--space", "digits", "--smoke-test", "--num-samples", "2", "--name", "budget",
         "--storage", str(tmp_path), "--tracking-uri", tracking_uri, "--time-budget", "60",
         *(f"--set={item}" for item in settings)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == ExitCode.OK  # the search did what was asked: it ran for its budget
    rows = load_results(str(tmp_path / "budget"))
    assert rows and {row["status"] for row in rows} == {"interrupted"}  # none ran 300 epochs
    said = [line for line in printed.splitlines() if "time budget" in line]
    assert len(said) == 1 and said[0].startswith(
        f"[search] time budget of 60 s reached: {len(rows)} trial(s) stopped and kept as "
        "interrupted; continue the search with: python "
    )
    assert "--resume --name budget" in said[0] and "--time-budget" not in said[0]
    runs = _runs(tracking_uri, "budget")
    for row in rows:
        run = runs[row["trial_id"]]
        assert run.info.status == "KILLED" and run.data.tags["augkd.status"] == "interrupted"
    assert runs["parent"].info.status == "FINISHED"
    assert runs["parent"].data.tags["augkd.status"] == "time_budget"
    assert all(run.info.status != "RUNNING" for run in runs.values())
    study = load_study(str(tmp_path / "budget"))
    states = {trial.user_attrs[TUNE_TRIAL_ATTR]: trial.state for trial in study.trials}
    assert {row["trial_id"] for row in rows} <= set(states)
    assert set(states.values()) == {TrialState.RUNNING}  # not told FAIL: --resume ends them
    assert tune.Tuner.can_restore(str(tmp_path / "budget"))
