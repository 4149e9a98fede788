"""A live view of the search: running trials every few seconds, a line per ending, and the
search's ETA from the trial-steps done so far against those ASHA is expected to run
(augkd.search.prepare.trial_steps)."""

from __future__ import annotations

import time

from ray.tune import Callback

from augkd.basics.dotted import short_names
from augkd.basics.eta import Rate
from augkd.basics.metric_names import STEP, STEPS
from augkd.search.run.optuna_bridge import trial_outcome


class ProgressView(Callback):
    def __init__(
        self,
        params: list[str],
        metric: str,
        interval_s: float = 15.0,
        expected_steps: float | None = None,
    ) -> None:
        """``expected_steps``: the trial-steps the search is expected to run (its ETA)."""
        self.params = params
        self.names = short_names(params)
        self.metric = metric
        self.interval_s = interval_s
        self.last = 0.0
        self.expected_steps = expected_steps
        self.started: float | None = None
        self.steps_before = 0.0
        """Trial-steps already done when this view started (a resumed search)."""

    @staticmethod
    def echo(*args, **kwargs) -> None:
        # print is looked up at call time: Ray may replace it, and Tune pickles callbacks.
        print(*args, **kwargs)

    def eta(self, trials) -> str:
        """'; search 340/1200 expected trial-steps, 2.1 trial-steps/s, ETA 6m44s', or ''."""
        done = sum(float((trial.last_result or {}).get(STEP, 0)) for trial in trials)
        if self.started is None:
            self.started, self.steps_before = time.time(), done
        if not self.expected_steps:
            return ""
        if done >= self.expected_steps and any(t.status in ("RUNNING", "PENDING") for t in trials):
            # ASHA promoted more than the expectation (a draw far from the mean)
            return f"; search {done:.0f} trial-steps, past the {self.expected_steps:.0f} expected"
        total = max(self.expected_steps, done)
        rate = Rate(done, total, time.time() - self.started, self.steps_before)
        return "; search " + rate.describe("expected trial-steps").replace(
            " expected trial-steps/", " trial-steps/"
        )

    def on_step_end(self, iteration, trials, **info) -> None:
        eta = self.eta(trials)
        if time.time() - self.last < self.interval_s:
            return
        self.last = time.time()
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        summary = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
        lines = [f"[search] {len(trials)} trials: {summary}{eta}"]
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
