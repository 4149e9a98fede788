"""``search.py --estimate``: what a search will cost, before it is paid.

It calibrates (prepare/calibration.py: the search's stages planned as the search plans
them, a few iterations of each timed on the device, precision and threads its tasks and
trials would use; a stage already in the stage cache costs nothing). The seconds a unit takes
(augkd.basics.eta.Rate) times the units each stage runs give the shared stages' time; the trials'
time is the trial-steps ASHA is expected to run (augkd.search.prepare.trial_steps) at the measured
step and val-pass times, spread over ``max_concurrent``. Nothing trains beyond the
calibration; what it decodes (the data) is cached as the search would cache it. With
``--evaluate`` it also prices the evaluation's first round (and its most): each fresh seed's
stages, timed even where seed 0's are cached, and one full-budget run per candidate and seed.

With ``--address`` (or $RAY_ADDRESS) the calibration runs as a Ray task with a trial's
resources, where the search's tasks run; otherwise in this process.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from augkd.basics.errors import ConfigError
from augkd.basics.eta import UNITS, format_duration
from augkd.search.prepare.calibration import StageCost, calibrate, calibrate_task
from augkd.search.prepare.shared_plan import plan_shared_stages
from augkd.search.prepare.space import SearchSpace
from augkd.search.prepare.trial_steps import (
    TrialSteps,
    expected_trial_steps,
    mixing_share,
    trial_step_s,
    unpruned,
)


@dataclass
class Phase:
    name: str
    wall_s: float
    device_s: float
    """Seconds of device (GPU, or CPU cores on CPU) the phase holds, summed over tasks."""


@dataclass(frozen=True)
class EvaluationAsk:
    """What ``--evaluate K`` asks of the evaluation after the search (its flags)."""

    top_k: int
    first_seeds: int
    max_seeds: int
    baselines: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationCost:
    candidates: int
    """The top k, the defaults and each baseline at two recipes (at most: fewer when the
    defaults are among the top k or a baseline's recipes coincide)."""
    first_runs: int
    first_device_s: float
    most_runs: int
    most_device_s: float
    """Every candidate over --max-seeds (the race dropped none and never decided early)."""
    parallel: int
    seed_stages_s: float
    """What a fresh seed's shared stages cost (its first runs produce them)."""


@dataclass
class Forecast:
    space: str
    device: str
    precision: str
    stages: list[StageCost]
    trial_steps: TrialSteps
    step_s: float
    val_s: float
    trial_peak_mib: float
    """Peak memory of Module 3's steps and val pass (CUDA reserved on a GPU, else RSS)."""
    setup_s: float
    """A trial's work before Module 3, per seed: loading the teacher and the data, and its
    own part of the diagnostics (loading the cached stages and starting a worker process
    are not counted)."""
    val_every: int
    num_samples: int
    max_concurrent: int
    seeds_per_trial: int
    gpu_per_trial: float
    cpu_per_trial: float
    calibration_s: float
    phases: list[Phase] = field(default_factory=list)
    task_setup_s: float = 0.0
    """What a shared-stage task pays before its stage: loading the teacher and the data."""
    stage_diagnostics_s: float = 0.0
    """An AnchorNet's diagnostics, computed by its Module-2 task (0: diagnostics off)."""
    slots: int | None = None
    """Trials (and stage tasks) a local Ray fits at once by its CPUs and GPUs; None on a
    cluster (``max_concurrent`` is taken as what it will fit)."""
    evaluation: EvaluationCost | None = None
    """With --evaluate: what its first round costs, and its most (every seed, nobody out)."""
    step_s_by_teacher_term: dict[str, float] = field(default_factory=dict)
    """A step that builds x_mix (s < 1), under each searched teacher term."""
    plain_step_s_by_teacher_term: dict[str, float] = field(default_factory=dict)
    """A step after the schedule reached s = 1 (batches [x ; x]), under each term."""
    mixing_share: float = 0.0
    """The share of the expected trial-steps that build x_mix (trial_steps.mixing_share);
    ``step_s`` is the two kinds of step, each the mean over the terms, weighed by it."""

    @property
    def concurrent(self) -> int:
        """Trials at a time: ``max_concurrent``, or fewer when a local Ray fits fewer."""
        limit = self.max_concurrent if self.slots is None else min(self.max_concurrent, self.slots)
        return max(1, limit)

    @property
    def workers(self) -> int:
        """Machines the concurrent trials need: one GPU each (GPU searches), else one."""
        if self.gpu_per_trial > 0:
            return max(1, math.ceil(self.max_concurrent * self.gpu_per_trial))
        return 1

    @property
    def wall_s(self) -> float:
        return sum(phase.wall_s for phase in self.phases)


def project(
    space: SearchSpace, measured: dict[str, Any], shared_threads: int, slots: int | None = None
) -> Forecast:
    """The calibration's rates times what the search would run, phase by phase; ``slots``:
    the tasks a local Ray fits at once (None: max_concurrent)."""
    stages = [StageCost(**cost) for cost in measured["stages"]]
    max_steps = space.max_steps(measured["train_images"])
    steps = expected_trial_steps(space, max_steps)
    seeds = space.objective.seeds
    mixing = mixing_share(space, steps)
    forecast = Forecast(
        space.name, measured["device"], measured["precision"], stages, steps,
        trial_step_s(measured, mixing), measured["val_s"], measured["trial_peak_mib"],
        measured["setup_s"],
        measured["val_every"],
        space.num_samples, space.max_concurrent, seeds, space.resources.gpu,
        space.resources.cpu, measured["calibration_s"], slots=slots,
        task_setup_s=measured.get("task_setup_s", 0.0),
        stage_diagnostics_s=measured.get("stage_diagnostics_s", 0.0),
        step_s_by_teacher_term=measured.get("step_s_by_teacher_term", {}),
        plain_step_s_by_teacher_term=measured.get("plain_step_s_by_teacher_term", {}),
        mixing_share=mixing,
    )  # fmt: skip
    device_share = space.resources.gpu or space.resources.cpu
    # Shared stages: the teacher first (the preflight), then one task per seed (Module 1,
    # the encoder, the first grid point) side by side, then the rest of the grid.
    teacher = sum(c.seconds for c in stages if c.stage == "teacher")
    by_seed: dict[str, float] = {}
    rest = []
    firsts: set[str] = set()
    # A task that produces a stage first loads the teacher and the data; a Module-2 task also
    # computes its AnchorNet's diagnostics.
    task_s, diagnostics_s = forecast.task_setup_s, forecast.stage_diagnostics_s
    loading: set[str] = set()
    for cost in stages:
        if cost.per_trial or cost.stage == "teacher":
            continue
        seed = cost.label.split(" ")[1]
        extra = 0.0 if cost.cached or cost.stage != "module2" else diagnostics_s
        if cost.stage == "module2" and seed in firsts:
            if not cost.cached:
                rest.append(cost.seconds + task_s + extra)
            continue
        if cost.stage == "module2":
            firsts.add(seed)
        if not cost.cached and seed not in loading:
            loading.add(seed)
            extra += task_s
        by_seed[seed] = by_seed.get(seed, 0.0) + cost.seconds + extra
    parallel = forecast.concurrent
    shared_wall = teacher + max(by_seed.values(), default=0.0) + makespan(rest, parallel)
    shared_device = teacher + sum(by_seed.values()) + sum(rest)
    forecast.phases.append(
        Phase("shared stages", shared_wall, shared_device * max(device_share, 0.0))
    )
    # Trials: expected trial-steps (each trial runs every seed in lockstep) with a val pass
    # every val_every steps, plus each trial's setup and the stages it cannot share.
    own = sum(c.seconds for c in stages if c.per_trial)
    per_run = measured["setup_s"] + own
    trial_s = seeds * (
        steps.expected * (forecast.step_s + measured["val_s"] / measured["val_every"])
        + space.num_samples * per_run
    )
    forecast.phases.append(Phase("trials", trial_s / parallel, trial_s * max(device_share, 0.0)))
    return forecast


def makespan(durations: list[float], slots: int) -> float:
    """Wall time of tasks started in this order, each on the first of ``slots`` to free up
    (as Ray starts queued tasks): the Module-2 grid's 40-, 120- and 360-step points in turn
    take about their sum over the slots, not a round per slot of the longest."""
    free_at = [0.0] * max(1, slots)
    for duration in durations:
        heapq.heapreplace(free_at, free_at[0] + duration)
    return max(free_at)


def project_evaluation(
    forecast: Forecast, measured: dict[str, Any], ask: EvaluationAsk, space: SearchSpace
) -> EvaluationCost:
    """The evaluation's runs (one seed each, the full budget) at the calibrated rates, plus
    each fresh seed's shared stages, which its first run produces: Module 1, the encoder and
    one Module-2 point per searched candidate (at most the grid's size)."""
    from augkd.method.plans import METHOD_PLANS

    plan = plan_shared_stages(space)
    fresh = measured["fresh_seed_s"]
    searched = ask.top_k + 1  # the defaults, unless they are among the top k
    points = min(searched, len(plan.module2_grid)) if plan.module2 else 0
    seed_stages = fresh.get("module1", 0.0) + fresh.get("encoder", 0.0)
    seed_stages += points * fresh.get("module2", 0.0)
    per_seed = seed_stages
    val_share = measured["val_s"] / measured["val_every"]
    steps = forecast.trial_steps.max_steps
    own = sum(c.seconds for c in forecast.stages if c.per_trial)
    whole = mixing_share(space, unpruned(steps, 1))  # a run of the whole budget
    run_s = measured["setup_s"] + own + steps * (trial_step_s(measured, whole) + val_share)
    per_seed += searched * run_s
    for name in ask.baselines:
        step_s = measured["step_s"]
        if METHOD_PLANS[name].batches == "student":
            step_s = measured["student_step_s"]
        per_seed += 2 * (measured["setup_s"] + steps * (step_s + val_share))
    candidates = searched + 2 * len(ask.baselines)
    device_share = max(space.resources.gpu or space.resources.cpu, 0.0)
    parallel = max(1, forecast.slots if forecast.slots is not None else forecast.max_concurrent)
    cost = EvaluationCost(
        candidates, candidates * ask.first_seeds, per_seed * ask.first_seeds * device_share,
        candidates * ask.max_seeds, per_seed * ask.max_seeds * device_share, parallel,
        seed_stages,
    )  # fmt: skip
    first_wall = per_seed * ask.first_seeds / parallel
    forecast.phases.append(Phase("evaluation", first_wall, cost.first_device_s))
    forecast.evaluation = cost
    return cost


def format_forecast(forecast: Forecast, price_per_hour: float | None) -> str:
    """The forecast as the search prints it: stages, phases, trial-steps and cost."""
    unit_name = "GPU" if forecast.gpu_per_trial > 0 else "CPU-core"
    lines = [
        f"[estimate] {forecast.space}: calibrated on {forecast.device} ({forecast.precision}) "
        f"in {format_duration(forecast.calibration_s)}; a cached stage costs nothing",
        "  stage      what                          units          s/unit   projected  peak MiB  key",
    ]
    for cost in forecast.stages:
        unit = UNITS.get(cost.stage, "steps")
        cost_text = "cached" if cost.cached else format_duration(cost.seconds)
        per_unit = "-" if cost.cached else f"{cost.seconds_per_unit:.3g}"
        peak = "-" if cost.cached else f"{cost.peak_mib:.0f}"
        key = cost.key if cost.key is not None else "(known once the teacher is trained)"
        lines.append(
            f"  {cost.stage:<10} {cost.label[:29]:<29} {cost.units:>6} {unit:<10} "
            f"{per_unit:>6}   {cost_text:>9}  {peak:>8}  {key}"
        )
    lines.append(
        f"  module3    a step ({forecast.seeds_per_trial} seed(s) a trial)        "
        f"{_step_text(forecast)};  a val pass {forecast.val_s:.3g} s every "
        f"{forecast.val_every} steps;  a trial's setup {forecast.setup_s:.3g} s;  "
        f"peak {forecast.trial_peak_mib:.0f} MiB"
    )
    lines.append(
        f"  tasks      a stage task's loading (teacher, data) {forecast.task_setup_s:.3g} s;  "
        f"an AnchorNet's diagnostics {forecast.stage_diagnostics_s:.3g} s"
    )
    steps = forecast.trial_steps
    rungs = ", ".join(f"{r:g}" for r in steps.rungs) or "none"
    lines.append(
        f"[estimate] trials: {forecast.num_samples} x up to {steps.max_steps} steps, rungs "
        f"[{rungs}]: {steps.expected:,.0f} trial-steps expected (assumes {steps.assumption}); "
        f"{steps.upper:,.0f} if none were stopped; {forecast.concurrent} at a time"
        + (
            f" (max_concurrent {forecast.max_concurrent}; this machine's Ray fits {forecast.slots})"
            if forecast.concurrent < forecast.max_concurrent
            else ""
        )
    )
    lines.append(f"  {'phase':<15} {'wall time':>10} {unit_name + '-hours':>12}")
    for phase in forecast.phases:
        lines.append(
            f"  {phase.name:<15} {format_duration(phase.wall_s):>10} {phase.device_s / 3600:>12.3g}"
        )
    total_device = sum(p.device_s for p in forecast.phases)
    lines.append(
        f"  {'total':<15} {format_duration(forecast.wall_s):>10} {total_device / 3600:>12.3g}"
    )
    if forecast.evaluation is not None:
        cost = forecast.evaluation
        share = cost.most_device_s / max(cost.first_device_s, 1e-9)
        lines.append(
            f"[estimate] evaluation: {cost.candidates} candidates; its first round "
            f"{cost.first_runs} runs (the phase above); at most {cost.most_runs} runs, "
            f"{format_duration(forecast.phases[-1].wall_s * share)}, if every candidate "
            "stays to --max-seeds"
        )
    if price_per_hour is None:
        lines.append("[estimate] pass --price-per-hour (a worker's $/h) to price it")
    else:
        cost = forecast.wall_s / 3600 * forecast.workers * price_per_hour
        lines.append(
            f"[estimate] cost: {forecast.workers} worker(s) x {format_duration(forecast.wall_s)}"
            f" x ${price_per_hour:g}/h = ${cost:,.2f} (the cluster's head node not counted)"
        )
    return "\n".join(lines)


def _step_text(forecast: Forecast) -> str:
    """A trial-step's seconds, and what they weigh: building x_mix or not, and each term."""
    mixing, plain = forecast.step_s_by_teacher_term, forecast.plain_step_s_by_teacher_term
    text = f"{forecast.step_s:.3g} s"
    if not mixing:
        return text
    parts = []
    if forecast.mixing_share > 0:
        parts.append(f"{forecast.mixing_share:.0%} of the trial-steps build x_mix")
    if len(mixing) > 1:
        each = ", ".join(
            f"{term} {mixing[term]:.3g}/{plain.get(term, mixing[term]):.3g}" for term in mixing
        )
        parts.append(f"the mean over module3.teacher_term, with x_mix/without: {each}")
    return text + (f" ({'; '.join(parts)})" if parts else "")


def estimate_search(
    options: Any, echo: Callable[[str], None] = print, evaluation: EvaluationAsk | None = None
) -> Forecast:
    """Calibrate and project the search ``options`` describe (a prepare.SearchOptions),
    and the evaluation after it when ``evaluation`` is asked."""
    from augkd.search.prepare.request import requested_space
    from augkd.search.run.ray_session import requested_address
    from augkd.storage.locations import default_storage, stage_cache_root, storage_root

    space = requested_space(options)
    cache_root = stage_cache_root(storage_root(options.storage or default_storage()))
    plan_seeds = len(plan_shared_stages(space).seeds)
    pinned = space.base_config_object().threads  # --set threads=N: every task and trial's
    trial_threads = pinned or max(1, int(space.resources.cpu))
    device = "auto" if space.resources.gpu > 0 else "cpu"
    if requested_address(options.address) is not None:
        import ray

        from augkd.search.run.ray_session import init_ray

        echo(f"[estimate] {init_ray(options.address).summary}")
        task = ray.remote(num_cpus=space.resources.cpu, num_gpus=space.resources.gpu)(
            calibrate_task
        )
        fresh = evaluation is not None
        measured = ray.get(
            task.remote(space, cache_root, device, trial_threads, trial_threads, fresh)
        )
        forecast = project(space, measured, trial_threads)
    else:
        import torch

        if space.resources.gpu > 0 and not torch.cuda.is_available():
            raise ConfigError(
                f"resources.gpu={space.resources.gpu:g} but this machine has no usable CUDA "
                "GPU; pass --address of a cluster that has one (the estimate runs on a "
                "worker), or --set resources.gpu=0."
            )
        # As on the local Ray a search starts: each seed's stage task gets its share of
        # every CPU.
        shared_threads = pinned or max(trial_threads, _cpus() // max(1, plan_seeds))
        measured = calibrate(
            space, cache_root, device, shared_threads, trial_threads, None, evaluation is not None
        )
        forecast = project(space, measured, shared_threads, _local_slots(space))
    if evaluation is not None:
        project_evaluation(forecast, measured, evaluation, space)
    return forecast


def _local_slots(space: SearchSpace) -> int:
    """Trials a local Ray started here runs at once: its CPUs (and GPUs) over a trial's."""
    slots = int(_cpus() // space.resources.cpu) if space.resources.cpu > 0 else 1 << 30
    if space.resources.gpu > 0:
        import torch

        slots = min(slots, int(torch.cuda.device_count() // space.resources.gpu))
    return max(1, slots)


def _cpus() -> int:
    """The CPUs a local Ray started here would count (those this process may run on)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
