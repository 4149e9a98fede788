"""OptunaSearch that tells Optuna the truth about trials ASHA stopped early.

Ray's OptunaSearch records a trial stopped by the scheduler as COMPLETE with its
low-fidelity value, which misleads TPE. Here a trial that ended before its last
epoch is told as PRUNED (its intermediate values were reported epoch by epoch),
and a trial that failed or diverged is told as FAIL.
"""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

log = logging.getLogger(__name__)


def trial_outcome(result: dict | None, error: bool) -> str:
    """completed, pruned or failed, from a trial's last result."""
    if error or not result or result.get("failed") or "epoch" not in result:
        return "failed"  # also a trial that ended before reporting any epoch
    if result.get("epoch", 0) < result.get("epochs", float("inf")):
        return "pruned"
    return "completed"


class PruningAwareOptunaSearch(OptunaSearch):
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if all(name in result for name in metrics):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        outcome = trial_outcome(result, error)
        if outcome == "completed":
            return super().on_trial_complete(trial_id, result, error)
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return None
        state = TrialState.PRUNED if outcome == "pruned" else TrialState.FAIL
        if state == TrialState.PRUNED and isinstance(self.metric, list):
            state = TrialState.FAIL  # Optuna has no pruning for several objectives
        try:
            self._ot_study.tell(self._ot_trials[trial_id], None, state=state)
        except Exception as exc:
            log.warning("Optuna refused the end of trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)
        return None
