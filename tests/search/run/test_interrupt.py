"""Ctrl-C of a real `python search.py`, then the `--resume` command it prints.

The interrupted search must exit 130 with one line holding the exact resume command;
its running trials must be recorded as interrupted (MLflow KILLED with
augkd.status=interrupted, the table "interrupted", Optuna not told FAIL or COMPLETE),
never as failed or pruned. The resume must finish every trial in the same MLflow runs,
leaving nothing RUNNING, also when Ctrl-C came before a trial's first report. The output of
both runs carries no library noise.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from augkd.basics.errors import ExitCode
from augkd.search.records.results import load_results
from augkd.search.records.tracking import SEARCH_TAG, TRIAL_TAG
from augkd.search.run.optuna_bridge import PruningAwareOptunaSearch
from augkd.search.run.study import TUNE_TRIAL_ATTR, load_study
from tests.conftest import ROOT, sigint_as_from_a_terminal

pytestmark = pytest.mark.slow

NAME, EPOCHS, TRIALS = "ctrl-c", 10, 2
SETTINGS = [
    "method=ce",  # the teacher and Module 3 only: enough for a trial to be mid-way
    "teacher.epochs=2",
    f"module3.epochs={EPOCHS}",
    "module3.batch_size=16",  # epochs long enough to be mid-way when Ctrl-C lands
    "scheduler.name=fifo",  # every trial runs to the end once resumed
]
NOISE = (
    "Token authentication",  # Ray's notice about its own default
    "Started a local Ray instance",
    "A new study created",  # Optuna
    "Creating initial MLflow database tables",
    "Updating database tables",
    "alembic",
    "Configuration for experiment",  # Tune's box
    "View detailed results here",
    "tensorboard",
    "Tuner.restore",  # Tune's own resume advice, not ours
    "Stop signal received",
    "Wrote the latest version",
)


def _first_result_written(search_path: Path) -> bool:
    """The driver has recorded a trial's first epoch in the results table (Tune's own
    result.json can be ahead of the driver's callbacks by a moment)."""
    try:
        rows = load_results(str(search_path))
    except Exception:  # not written yet, or caught mid-write
        return False
    return any((row.get("epochs_run") or 0) >= 1 for row in rows)


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctrl_c")
    storage, tracking_uri = root / "runs", f"sqlite:///{root / 'mlflow.db'}"
    command = [
        sys.executable, str(ROOT / "search.py"), "--space", "digits", "--smoke-test",
        "--num-samples", str(TRIALS),
        "--storage", str(storage), "--name", NAME, "--tracking-uri", tracking_uri,
        "--address", "local", *(item for setting in SETTINGS for item in ("--set", setting)),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    out, err = root / "first.out", root / "first.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        search = subprocess.Popen(
            command, cwd=root, env=env, stdout=stdout, stderr=stderr,
            preexec_fn=sigint_as_from_a_terminal,
        )  # fmt: skip
        while not _first_result_written(storage / NAME):
            assert search.poll() is None, out.read_text() + err.read_text()
            time.sleep(0.2)
        search.send_signal(signal.SIGINT)
        first_code = search.wait()
    first = {
        "code": first_code,
        "out": out.read_text(),
        "err": err.read_text(),
        "rows": load_results(str(storage / NAME)),
        "optuna": _optuna_states(storage / NAME),
        "runs": _runs(tracking_uri),
    }
    resume = shlex.split(first["err"].split("resume it with: ", 1)[-1])
    resumed = subprocess.run(
        [sys.executable, *resume[1:]], cwd=root, env=env, capture_output=True, text=True
    )
    return {
        "command": command,
        "storage": storage,
        "tracking_uri": tracking_uri,
        "first": first,
        "resume": resume,
        "resumed": resumed,
    }


def _optuna_states(search_path: Path) -> dict[str, TrialState]:
    """Tune trial id -> Optuna state, as the saved searcher (what --resume restores) has it."""
    searcher = PruningAwareOptunaSearch()
    searcher.restore_from_dir(str(search_path))
    trials = searcher._ot_study.get_trials(deepcopy=False)
    return {trial_id: trials[trial.number].state for trial_id, trial in searcher._ot_trials.items()}


def _runs(tracking_uri: str, name: str = NAME) -> dict[str, object]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("augkd-digits")
    if experiment is None:
        return {}
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{name}'"
    )
    return {run.data.tags[TRIAL_TAG]: run for run in runs}


def test_ctrl_c_exits_130_with_the_exact_resume_command(interrupted_then_resumed):
    first, command = interrupted_then_resumed["first"], interrupted_then_resumed["command"]
    assert first["code"] == ExitCode.INTERRUPTED, first["err"]
    assert "Traceback" not in first["err"]
    assert first["err"].count("\n") == 1, first["err"]
    assert first["err"].startswith(f"interrupted: search '{NAME}' stopped with its trials saved")
    expected = [
        "python", command[1], "--resume", "--name", NAME,
        "--storage", str(interrupted_then_resumed["storage"]), "--space", "digits",
        "--tracking-uri", interrupted_then_resumed["tracking_uri"], "--smoke-test",
        "--num-samples", str(TRIALS), "--address", "local", *command[-2 * len(SETTINGS) :],
    ]  # fmt: skip
    assert interrupted_then_resumed["resume"] == expected


def test_ctrl_c_records_running_trials_as_interrupted_not_failed(interrupted_then_resumed):
    first = interrupted_then_resumed["first"]
    rows, runs, optuna = first["rows"], first["runs"], first["optuna"]
    assert {row["status"] for row in rows} <= {"interrupted", "completed"}
    stopped = [row for row in rows if row["status"] == "interrupted"]
    assert any((row.get("epochs_run") or 0) >= 1 for row in stopped), rows
    for row in stopped:
        run = runs[row["trial_id"]]
        assert run.info.status == "KILLED" and run.data.tags["augkd.status"] == "interrupted"
        assert run.info.run_id == row["mlflow_run_id"]
        assert optuna[row["trial_id"]] == TrialState.RUNNING  # left for --resume to finish
    parent = runs["parent"]
    assert parent.info.status == "KILLED" and parent.data.tags["augkd.status"] == "interrupted"
    assert parent.data.metrics["trials_interrupted"] == len(stopped)
    assert all(run.info.status != "RUNNING" for run in runs.values())


def test_resume_finishes_every_trial_in_its_own_run(interrupted_then_resumed):
    resumed, first = interrupted_then_resumed["resumed"], interrupted_then_resumed["first"]
    assert resumed.returncode == ExitCode.OK, resumed.stderr[-3000:]
    rows = load_results(str(interrupted_then_resumed["storage"] / NAME))
    runs = _runs(interrupted_then_resumed["tracking_uri"])
    assert sorted(row["trial_id"] for row in rows) == sorted(r["trial_id"] for r in first["rows"])
    assert len(rows) == TRIALS and set(runs) == {row["trial_id"] for row in rows} | {"parent"}
    for row in rows:
        assert row["status"] == "completed" and row["epochs_run"] == EPOCHS
        epochs = [int(h["epoch"]) for h in json.loads(row["history_json"])]
        assert epochs == list(range(1, EPOCHS + 1))
        run = runs[row["trial_id"]]
        assert run.info.run_id == row["mlflow_run_id"]  # the run the interruption closed
        assert run.info.status == "FINISHED" and run.data.tags["augkd.status"] == "completed"
    assert runs["parent"].info.status == "FINISHED"
    assert runs["parent"].data.tags["augkd.status"] == "completed"


def test_search_output_has_no_library_noise(interrupted_then_resumed):
    first, resumed = interrupted_then_resumed["first"], interrupted_then_resumed["resumed"]
    for text in (first["out"], first["err"], resumed.stdout, resumed.stderr):
        found = [marker for marker in NOISE if marker.lower() in text.lower()]
        assert not found, (found, text[:3000])
    assert first["out"].lstrip().startswith("[search] started a local Ray (")  # --address local
    assert "\n[search] preflight passed on a worker" in first["out"]
    assert f"\n[search] {NAME}: {TRIALS} trials" in first["out"]
    assert resumed.stderr == ""


EARLY = "early-ctrl-c"


def _trial_started(tracking_uri: str) -> bool:
    """A trial has its MLflow run: Tune started it (its first report is seconds away)."""
    try:
        runs = _runs(tracking_uri, EARLY)
    except Exception:  # the store is still being created
        return False
    return len(runs) >= 2  # the parent and a trial


@pytest.fixture(scope="module")
def interrupted_before_first_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctrl_c_early")
    storage, tracking_uri = root / "runs", f"sqlite:///{root / 'mlflow.db'}"
    settings = ["method=ce", "teacher.epochs=2", "module3.epochs=3", "scheduler.name=fifo"]
    command = [
        sys.executable, str(ROOT / "search.py"), "--space", "digits", "--smoke-test",
        "--num-samples", str(TRIALS), "--storage", str(storage), "--name", EARLY,
        "--tracking-uri", tracking_uri, "--address", "local",
        *(item for setting in settings for item in ("--set", setting)),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    search = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )  # fmt: skip
    while not _trial_started(tracking_uri):
        assert search.poll() is None, search.communicate()
        time.sleep(0.2)
    search.send_signal(signal.SIGINT)
    _, err = search.communicate()
    first = {"code": search.returncode, "err": err, "rows": load_results(str(storage / EARLY))}
    resume = shlex.split(err.split("resume it with: ", 1)[-1])
    resumed = subprocess.run(
        [sys.executable, *resume[1:]], cwd=root, env=env, capture_output=True, text=True
    )
    return {"first": first, "resumed": resumed, "storage": storage, "uri": tracking_uri}


def test_resume_after_ctrl_c_before_a_first_report_leaves_no_orphan(
    interrupted_before_first_report,
):
    first = interrupted_before_first_report["first"]
    resumed = interrupted_before_first_report["resumed"]
    assert first["code"] == ExitCode.INTERRUPTED, first["err"]
    assert first["err"].startswith(f"interrupted: search '{EARLY}' stopped with its trials saved")
    assert first["err"].count("\n") == 1, first["err"]  # the sentence alone
    assert any(not row.get("epochs_run") for row in first["rows"])  # cut before a report
    assert resumed.returncode == ExitCode.OK, resumed.stderr[-3000:]
    assert resumed.stderr == ""  # no Ray traceback
    search_path = interrupted_before_first_report["storage"] / EARLY
    rows = load_results(str(search_path))
    assert len(rows) == TRIALS  # the cut trials and any not started yet, each once
    cut = {row["trial_id"]: row["mlflow_run_id"] for row in first["rows"]}
    assert cut.items() <= {row["trial_id"]: row["mlflow_run_id"] for row in rows}.items()
    runs = _runs(interrupted_before_first_report["uri"], EARLY)
    assert set(runs) == {row["trial_id"] for row in rows} | {"parent"}  # no orphan run
    for row in rows:
        assert row["status"] == "completed" and runs[row["trial_id"]].info.status == "FINISHED"
        assert runs[row["trial_id"]].info.run_id == row["mlflow_run_id"]
    assert all(run.info.status != "RUNNING" for run in runs.values())
    study = load_study(str(search_path))
    states = {trial.user_attrs[TUNE_TRIAL_ATTR]: trial.state for trial in study.trials}
    assert len(study.trials) == TRIALS  # no second Optuna trial for a re-run
    assert states == {row["trial_id"]: TrialState.COMPLETE for row in rows}  # none RUNNING
