"""OptunaSearch that tells Optuna the truth about trials ASHA stopped early.

Ray's OptunaSearch records a trial stopped by the scheduler as COMPLETE with its
low-fidelity value, which misleads TPE. Here a trial that ended before its last
epoch is told as PRUNED (its intermediate values were reported epoch by epoch),
and a trial that failed or diverged is told as FAIL. A trial whose end is anything
else (interrupted by Ctrl-C) is not told: it stays RUNNING until --resume ends it.
A trial the persistent study already holds as finished (told before a restore from
an older searcher checkpoint) is never told twice. A trial the study holds but the restored
searcher never asked (a driver killed between Optuna's ask and Tune's next save of its state)
will never run: it is told as FAIL, with a note, so that the study matches the search.
"""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from augkd.basics.metric_names import EPOCH, EPOCHS
from augkd.search.run.study import TUNE_TRIAL_ATTR

log = logging.getLogger(__name__)


def trial_outcome(result: dict | None, error: bool) -> str:
    """completed, pruned or failed, from a trial's last result."""
    if error or not result or result.get("failed") or EPOCH not in result:
        return "failed"  # also a trial that ended before reporting any epoch
    if result.get(EPOCH, 0) < result.get(EPOCHS, float("inf")):
        return "pruned"
    return "completed"


TOLD = ("completed", "pruned", "failed")
LOST_ATTR = "augkd_lost"
"""User attr of a study trial failed on --resume because Tune never recorded it."""
LOST_NOTE = (
    "asked by a driver that was killed before Tune saved the trial; it never ran, and "
    "--resume ended it"
)


class PruningAwareOptunaSearch(OptunaSearch):
    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        trial = self._ot_trials.get(trial_id)
        if trial is not None and TUNE_TRIAL_ATTR not in trial.user_attrs:
            trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)  # the dashboard names Tune's trial
        return params

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.fail_trials_tune_never_saw()

    def fail_trials_tune_never_saw(self) -> list[int]:
        """Tell as FAIL every running study trial this searcher did not ask; returns their
        numbers. Interrupted trials (asked, saved, resumable) stay running."""
        asked = {trial.number for trial in self._ot_trials.values()}
        storage = self._ot_study._storage
        lost = []
        for trial in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number in asked:
                continue
            storage.set_trial_user_attr(trial._trial_id, LOST_ATTR, LOST_NOTE)
            self._ot_study.tell(trial.number, state=TrialState.FAIL)
            lost.append(trial.number)
        if lost:
            log.warning("Optuna trial(s) %s: %s", lost, LOST_NOTE)
        return lost

    def _finished_in_study(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return True
        return self._ot_study._storage.get_trial(trial._trial_id).state.is_finished()

    def _report_last(self, trial_id: str, result: dict) -> None:
        """Tune hands the result ASHA stopped a trial on to on_trial_complete only: it is
        the pruned trial's last intermediate value."""
        step = result.get(TRAINING_ITERATION)
        trial = self._ot_trials[trial_id]
        reported = self._ot_study._storage.get_trial(trial._trial_id).intermediate_values
        if self.metric in result and step is not None and step not in reported:
            trial.report(result[self.metric], step)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if all(name in result for name in metrics) and not self._finished_in_study(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        outcome = trial_outcome(result, error)
        if outcome not in TOLD or trial_id in self._completed_trials:
            return None
        if self._finished_in_study(trial_id):
            self._completed_trials.add(trial_id)
            return None
        if outcome == "completed":
            return super().on_trial_complete(trial_id, result, error)
        state = TrialState.PRUNED if outcome == "pruned" else TrialState.FAIL
        if state == TrialState.PRUNED and isinstance(self.metric, list):
            state = TrialState.FAIL  # Optuna has no pruning for several objectives
        if state == TrialState.PRUNED:
            self._report_last(trial_id, result or {})
        try:
            self._ot_study.tell(self._ot_trials[trial_id], None, state=state)
        except Exception as exc:
            log.warning("Optuna refused the end of trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)
        return None
