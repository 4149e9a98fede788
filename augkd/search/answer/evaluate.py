"""A search's final answer, decided: the candidates (answer/candidates.py: the top-k configs,
the defaults, the baselines) re-run over fresh seeds, the same seeds for every method so that
differences are paired, in rounds until the verdict is decided (answer/racing.py).

Every (config, seed) is one Ray task with the trial's resources that runs the search's one
trial entry (run/trial_entry.py), reading and filling the search's stage cache. The winner
and the best baseline are chosen by the mean of the search's objective (val), never by test.
The outcome goes to the search folder (answer/evaluation_files.py), to MLflow under the
search's parent run (answer/evaluation_mlflow.py), and to the table of mean ± std with the
paired differences (95 % intervals) to the best baseline and to the defaults
(answer/evaluation_table.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from augkd.basics.config import with_overrides
from augkd.basics.dotted import get_dotted
from augkd.basics.eta import LinePrinter, RunsProgress
from augkd.basics.metric_names import BEST_VAL_ACC1, STEP, STEPS, TEST_ACC1, label
from augkd.search.answer.candidates import (
    BASELINES,
    Candidate,
    kept_metrics,
    plan,
    top_k_shortfall,
)
from augkd.search.answer.evaluation_files import FinishedRuns, write_evaluation_files
from augkd.search.answer.evaluation_mlflow import find_parent_run, log_evaluation_runs
from augkd.search.answer.racing import (
    DEFAULT_MARGIN,
    DEFAULT_MAX_SEEDS,
    Evaluation,
    RaceSettings,
    judge,
    race,
)
from augkd.search.prepare.space import objective_of, recorded_space
from augkd.search.run.trial_entry import run_search_trial, trial_stage_sizes
from augkd.storage.progress_files import ProgressFiles


def _resources(search_path: str) -> dict[str, float]:
    resources = (recorded_space(search_path) or {}).get("resources") or {}
    return {"cpu": float(resources.get("cpu", 1.0)), "gpu": float(resources.get("gpu", 0.0))}


def _run_one(
    config_dict: dict[str, Any], kept: tuple[str, ...], progress: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A Ray task: one full run through the trial entry Tune's trials use; bad input comes
    back as an error, not an exception. ``progress``: (prefix, label) of the files its
    stages' progress goes to, as a shared-stage task's; Module 3's at each val pass."""
    started = time.perf_counter()
    cache_root = get_dotted(config_dict, "teacher.cache_dir") or ""
    hooks = None if progress is None else functools.partial(_progress_hooks, cache_root, progress)
    end = run_search_trial(config_dict, {}, cache_root, log=lambda _: None, hooks=hooks)
    if end.error is not None:
        return {"error": end.error, "run_seconds": time.perf_counter() - started}
    return {
        **{k: float(v) for k, v in end.result.metrics.items() if k in kept},
        "config_yaml": end.config.to_yaml(),
        "run_seconds": time.perf_counter() - started,
    }


def _progress_hooks(
    cache_root: str, progress: tuple[str, str], _config: Any, _device: Any
) -> dict[str, Any]:
    """run_trial's on_step and on_epoch writing one run's progress files."""
    from augkd.storage.files import resolve_filesystem
    from augkd.storage.progress_files import ProgressFile

    on_step = ProgressFile(resolve_filesystem(cache_root)[0], *progress).on_step

    def on_epoch(metrics: dict[str, float], _state: Any) -> None:
        if STEP in metrics and STEPS in metrics:
            on_step("module3", int(metrics[STEP]), int(metrics[STEPS]))

    return {"on_step": on_step, "on_epoch": on_epoch}


def run_evaluation(
    search_path: str,
    top_k: int = 3,
    seeds: int = 3,
    baselines: list[str] | tuple[str, ...] = BASELINES,
    tracking_uri: str | None = None,
    echo: Callable[[str], None] = print,
    max_seeds: int | None = None,
    margin: float | None = None,
    tune_baselines: bool = False,
) -> Evaluation:
    """Race the candidates over fresh seeds (Ray tasks); write the table, baselines, runs
    and the verdict. ``tune_baselines``: each baseline's own search first
    (answer/tuned_baselines.py)."""
    import ray

    settings = RaceSettings(
        first_seeds=seeds,
        max_seeds=max_seeds if max_seeds is not None else max(seeds, DEFAULT_MAX_SEEDS),
        margin=DEFAULT_MARGIN if margin is None else margin,
    )
    # The same fresh seeds in the same order as plan's first round, then the later rounds'.
    tuned = None
    if tune_baselines:
        from augkd.search.answer.tuned_baselines import tune_baselines as run_baseline_searches

        tuned = run_baseline_searches(search_path, list(baselines), tracking_uri, echo)
    candidates, seed_order = plan(search_path, top_k, settings.max_seeds, list(baselines), tuned)
    find_parent_run(search_path, tracking_uri)  # a wrong store fails before any run
    objective = objective_of(recorded_space(search_path))
    kept = kept_metrics(objective)
    resources = _resources(search_path)
    threads = max(1, int(resources["cpu"]))
    # Re-run by hand (below) when a node dies: Ray's own max_retries would also re-run a run
    # its OOM killer ended, without end.
    task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=0)(_run_one)
    device = "auto" if resources["gpu"] > 0 else "cpu"
    shortfall = top_k_shortfall(candidates, top_k)
    if shortfall:
        echo(f"[evaluate] {shortfall}")
    for candidate in candidates:
        if candidate.judged_at is not None:
            echo(f"[evaluate] {candidate.label}: trial {candidate.trial_id}, judged at step "
                 f"{candidate.judged_at:g}")  # fmt: skip

    def progress_files(candidate: Candidate, seed: int, attempt: int) -> tuple[str, str]:
        """(prefix, label) of one run's progress files (augkd.storage.progress_files)."""
        name = f"{candidate.label}-seed{seed}-try{attempt}"
        return watch.path_for(name), f"{candidate.label} seed {seed}"

    finished = FinishedRuns(search_path)

    def record(candidate: Candidate, seed: int, outcome: dict[str, Any], note: str = "") -> None:
        candidate.runs.append({"seed": seed, **outcome})
        if "error" in outcome:
            echo(f"[evaluate] {candidate.label} seed {seed} failed: {outcome['error']}")
            return
        shown = dict.fromkeys([objective.metric, BEST_VAL_ACC1, TEST_ACC1])
        values = " ".join(f"{label(m)} {outcome[m]:.3g}" for m in shown if m in outcome)
        echo(f"[evaluate] {candidate.label} seed {seed}: {values}{note}")

    def run_round(work: list[tuple[Candidate, int]]) -> None:
        to_run = []
        for candidate, seed in work:
            config = with_overrides(
                candidate.config, {"seed": seed, "threads": threads, "device": device}
            )
            as_dict = config.to_dict()  # the task's input and the finished run's key
            earlier = finished.get(as_dict)
            if earlier is None:
                to_run.append((candidate, seed, config, as_dict))
            else:
                record(candidate, seed, earlier, " (finished earlier: read, not run)")
        pending = {}
        progress = RunsProgress(len(to_run), echo) if to_run else None
        for candidate, seed, config, as_dict in to_run:
            files = progress_files(candidate, seed, 0)
            pending[task.remote(as_dict, kept, files)] = (candidate, seed, config, as_dict, 0)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            watch.poll()  # the stage each run is in: step/total, rate, ETA
            if not done:
                continue
            candidate, seed, config, as_dict, lost = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.OutOfMemoryError:
                from augkd.method.memory import KILLED_FOR_MEMORY

                sizes = trial_stage_sizes(config)
                outcome = {"error": f"Ray killed the run {KILLED_FOR_MEMORY} ({sizes})"}
            except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError) as error:
                if lost < RUN_RETRIES:
                    files = progress_files(candidate, seed, lost + 1)
                    pending[task.remote(as_dict, kept, files)] = (
                        candidate, seed, config, as_dict, lost + 1,
                    )  # fmt: skip
                    continue
                outcome = {
                    "error": f"the run lost its worker {lost + 1} times ({type(error).__name__})"
                }
            finished.put(as_dict, outcome)
            progress.finished(f"{candidate.label} seed {seed}")
            record(candidate, seed, outcome)

    # Each run writes its stages' progress (Module 1 of a fresh seed takes minutes) where the
    # driver reads it while it waits, as for the shared stages.
    watch = ProgressFiles(
        candidates[0].config.teacher.cache_dir or "", LinePrinter(echo), prefix="[evaluate]"
    )
    try:
        seed_list, verdict = race(candidates, seed_order, objective, settings, run_round, echo)
    finally:
        watch.close()
    evaluation = judge(search_path, seed_list, candidates, objective)
    evaluation.verdict = verdict
    write_evaluation_files(evaluation)
    log_evaluation_runs(evaluation, tracking_uri)
    echo(f"[evaluate] verdict: {verdict.sentence}")
    return evaluation


POLL_S = 2.0
"""How often the driver reads the runs' progress files while it waits for them."""
RUN_RETRIES = 3
"""How often an evaluation run whose node or worker died is run again (Ray's default)."""
