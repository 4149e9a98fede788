"""The search's persistent Optuna study (a journal file next to its results)."""

from __future__ import annotations

import shlex
import subprocess
import sys

from optuna.trial import TrialState

from augkd.search.run.study import journal_path, load_study, open_commands

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def test_the_study_holds_every_trial_once_with_its_true_state(tiny_search):
    study = load_study(tiny_search["path"])
    assert study.study_name == tiny_search["path"].rsplit("/", 1)[-1]
    by_tune_id = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert len(by_tune_id) == len(study.trials) == len(tiny_search["rows"])
    for row in tiny_search["rows"]:
        trial = by_tune_id[row["trial_id"]]
        assert trial.state == STATES[row["status"]]
        if trial.state == TrialState.PRUNED:  # its last value is the one ASHA cut it at
            last = max(trial.intermediate_values)
            assert trial.intermediate_values[last] == row["best_val_acc1"]
        else:
            assert trial.value == row["best_val_acc1"]


def test_the_first_trial_is_the_configs_defaults(tiny_search):
    first = min(load_study(tiny_search["path"]).trials, key=lambda t: t.number)
    assert first.params == {
        "module2.anchor_weight": 0.1,
        "module2.temperature": 1.0,
        "module2.invariant": 0.25,
        "module3.schedule": "linear",
        "module3.a": 0.6,
        "module3.b": 0.2,
        "module3.ce_share": 0.5,
        "module3.kd_temperature": 1.0,
        "module3.teacher_term": "mixed",
        "module3.teacher_fade": True,
    }


def test_the_printed_load_command_opens_the_study(tiny_search):
    dashboard, load = open_commands(tiny_search["path"])
    assert shlex.split(dashboard) == ["optuna-dashboard", journal_path(tiny_search["path"])]
    program, flag, code = shlex.split(load)
    assert (program, flag) == ("python", "-c")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert "PRUNED" in printed.stdout or "COMPLETE" in printed.stdout
