"""Stop a search whose first few trials all failed with the same error.

Such a failure is shared (unreadable data, a missing teacher, no GPU): every later trial
would fail alike, so the search stops instead of burning its budget on them."""

from __future__ import annotations

from typing import Any

from ray import tune

from augkd.basics.metric_names import EPOCH


class SameFailureStopper(tune.Stopper):
    def __init__(self, count: int) -> None:
        """``count``: how many first outcomes must be the same failure (0: never stop)."""
        self.count = count
        self.outcomes: dict[str, str | None] = {}
        """First outcome of each trial, in the order they came: an error, or None once a
        trial reported an epoch."""
        self.shared_error: str | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        failed = bool(result.get("failed"))
        if trial_id not in self.outcomes and (failed or EPOCH in result):
            self.outcomes[trial_id] = str(result.get("error")) if failed else None
        return failed

    def stop_all(self) -> bool:
        first = list(self.outcomes.values())[: self.count]
        shared = self.count and len(first) == self.count and first[0] is not None
        if shared and all(outcome == first[0] for outcome in first):
            self.shared_error = first[0]
            return True
        return False
