"""A live view of the search: running trials every few seconds, a line per ending."""

from __future__ import annotations

import time

from ray.tune import Callback

from augkd.dotted import short_names
from augkd.metric_names import STEP, STEPS
from augkd.search.optuna_bridge import trial_outcome


class ProgressView(Callback):
    def __init__(self, params: list[str], metric: str, interval_s: float = 15.0) -> None:
        self.params = params
        self.names = short_names(params)
        self.metric = metric
        self.interval_s = interval_s
        self.last = 0.0

    @staticmethod
    def echo(*args, **kwargs) -> None:
        # print is looked up at call time: Ray may replace it, and Tune pickles callbacks.
        print(*args, **kwargs)

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.time() - self.last < self.interval_s:
            return
        self.last = time.time()
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        summary = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
        lines = [f"[search] {len(trials)} trials: {summary}"]
        for trial in trials:
            if trial.status != "RUNNING":
                continue
            result = trial.last_result or {}
            settings = " ".join(
                f"{self.names[key]}={_short(trial.config.get(key))}"
                for key in self.params
                if key in trial.config
            )
            if STEP in result:  # budgets and ASHA's rungs count optimizer steps
                state = (
                    f"step {result[STEP]:.0f}/{result[STEPS]:.0f} "
                    f"{self.metric} {result.get(self.metric, float('nan')):.1f}"
                )
            else:
                state = "preparing (teacher, modules 1-2)"
            lines.append(f"  {trial.trial_id} {state}  {settings}")
        self.echo("\n".join(lines), flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        outcome = trial_outcome(result, error=False)
        detail = result.get("error") or f"{self.metric} {result.get(self.metric, float('nan')):.1f}"
        self.echo(f"[search] {trial.trial_id} {outcome} after step "
                  f"{result.get(STEP, 0):.0f}: {detail}", flush=True)  # fmt: skip

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.echo(
            f"[search] {trial.trial_id} failed with an exception (see its error file)", flush=True
        )


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
