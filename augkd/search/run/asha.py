"""ASHA whose rungs survive `Tuner.restore`.

Ray restores the searcher but not the scheduler: a resumed search would start with
empty rungs and stop nothing until they refill. ResumableASHA replays the per-epoch
history of every trial that already reported (read from the experiment's own
results before ``fit``) into its rungs, so cut-offs continue where they were.
"""

from __future__ import annotations

import zlib
from types import SimpleNamespace

from ray.tune.schedulers import AsyncHyperBandScheduler


class ResumableASHA(AsyncHyperBandScheduler):
    def __init__(self, *args, search_path: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._search_path = search_path
        self._replayed: set[str] = set()
        self._history_loaded = False

    def on_trial_add(self, tune_controller, trial) -> None:
        if not self._history_loaded:
            self._history_loaded = True
            self.replay(_histories_from_table(self._search_path))
        super().on_trial_add(tune_controller, trial)

    def replay(self, histories: dict[str, list[dict]]) -> int:
        """Record finished results into the rungs; returns how many rung entries were made."""
        entries = 0
        for trial_id, history in histories.items():
            # Ray draws a new trial's bracket at random and does not save it: a restored
            # history goes to a bracket chosen by a stable hash of its trial id.
            bracket = self._brackets[zlib.crc32(trial_id.encode()) % len(self._brackets)]
            stub = SimpleNamespace(trial_id=trial_id)
            for result in history:
                if self._time_attr not in result or self._metric not in result:
                    continue
                before = sum(len(recorded) for _, recorded in bracket._rungs)
                bracket.on_result(
                    stub, result[self._time_attr], self._metric_op * result[self._metric]
                )
                entries += sum(len(recorded) for _, recorded in bracket._rungs) - before
            self._replayed.add(trial_id)
        return entries


def _histories_from_table(search_path: str | None) -> dict[str, list[dict]]:
    """Per-epoch history of every trial already in the results table (none on a new search)."""
    if search_path is None:
        return {}
    from augkd.basics.errors import ConfigError
    from augkd.search.records.results import history_of, load_results

    try:
        rows = load_results(search_path)
    except ConfigError:
        return {}
    return {row["trial_id"]: history_of(row) for row in rows}
