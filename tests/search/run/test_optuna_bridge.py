"""The searcher tells Optuna how each trial truly ended, and restores a study that matches
the search."""

from __future__ import annotations

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from augkd.search.run.optuna_bridge import LOST_ATTR, PruningAwareOptunaSearch


def _space(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0, 1)


def _searcher(storage=None) -> PruningAwareOptunaSearch:
    return PruningAwareOptunaSearch(
        space=_space,
        metric="best_val_acc1", mode="max", sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage, study_name="bridge",
    )  # fmt: skip


def test_early_stopped_trials_reach_optuna_as_pruned():
    searcher = _searcher()
    for trial_id in ("stopped", "finished", "broken"):
        searcher.suggest(trial_id)
    searcher.on_trial_result(
        "stopped", {"best_val_acc1": 10.0, "training_iteration": 1, "epoch": 1, "epochs": 4}
    )
    searcher.on_trial_complete("stopped", {"best_val_acc1": 10.0, "epoch": 1, "epochs": 4})
    searcher.on_trial_result(
        "finished", {"best_val_acc1": 50.0, "training_iteration": 4, "epoch": 4, "epochs": 4}
    )
    searcher.on_trial_complete("finished", {"best_val_acc1": 50.0, "epoch": 4, "epochs": 4})
    searcher.on_trial_complete("broken", {"failed": 1.0, "error": "diverged"})
    states = {t.number: t.state for t in searcher._ot_study.trials}
    assert states == {0: TrialState.PRUNED, 1: TrialState.COMPLETE, 2: TrialState.FAIL}
    assert searcher._ot_study.trials[0].intermediate_values == {1: 10.0}


def test_a_restored_searcher_fails_the_trials_asked_after_its_saved_state(tmp_path):
    """A driver killed between Optuna's ask and Tune's next save: the journal holds a trial
    that the restored search will never run. Trials the saved state knows stay running
    (they resume); the unknown one ends as FAIL with a note saying why."""
    journal = str(tmp_path / "optuna.journal")
    searcher = _searcher(JournalStorage(JournalFileBackend(journal)))
    searcher.suggest("saved-a")
    searcher.suggest("saved-b")
    searcher.save(str(tmp_path / "searcher.pkl"))
    searcher.suggest("asked-then-killed")

    restored = _searcher(JournalStorage(JournalFileBackend(journal)))
    restored.restore(str(tmp_path / "searcher.pkl"))

    study = optuna.load_study(
        study_name="bridge", storage=JournalStorage(JournalFileBackend(journal))
    )
    by_tune_id = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert {k: t.state for k, t in by_tune_id.items()} == {
        "saved-a": TrialState.RUNNING,
        "saved-b": TrialState.RUNNING,
        "asked-then-killed": TrialState.FAIL,
    }
    assert "killed" in by_tune_id["asked-then-killed"].user_attrs[LOST_ATTR]
    assert LOST_ATTR not in by_tune_id["saved-a"].user_attrs
    # the restored searcher goes on with the trials it knows, and asks new ones
    restored.on_trial_complete("saved-a", {"best_val_acc1": 5.0, "epoch": 4, "epochs": 4})
    assert restored.suggest("new") is not None
    assert restored._ot_study.trials[0].state == TrialState.COMPLETE
