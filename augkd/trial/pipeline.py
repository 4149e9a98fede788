"""One trial: teacher -> Module 1 -> Module 2 -> Module 3, reporting every Module-3 epoch.

A trial is a plan of stages (augkd.method.stages): this runner reads the section of the config
each one needs, passes it the artifacts of the stages before it, and passes its own on. The
search attaches ASHA to ``on_epoch``; the CLI attaches a progress printer. Val picks the best
epoch; test is computed once, at that epoch, after the last one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from augkd.basics.config import Config, with_overrides
from augkd.basics.eta import StepHook
from augkd.basics.metric_names import (
    DIAGNOSTICS_PREFIX,
    DIAGNOSTICS_SECONDS,
    SETUP_SECONDS,
    STAGE_DOWNLOADS,
    STAGE_NODE_READS,
    STUDENT_PARAMS,
    cache_hit,
)
from augkd.basics.seeds import Stream, stage_seed
from augkd.data import StudentSplits, load_student_splits
from augkd.hardware.peaks import peak_memory, reset_peak
from augkd.hardware.precision import AutocastModule, MixedPrecision
from augkd.hardware.runtime import configure_torch, resolve_device, seed_everything
from augkd.method.diagnostics import Diagnostics
from augkd.method.mixup import Carried, MixupInputs, Report, mixup_reports
from augkd.method.plans import METHOD_PLANS, MethodPlan
from augkd.method.stage_runs import StageRuns
from augkd.method.stages import (
    ENCODER,
    MODULE1,
    MODULE2,
    Inputs,
    PreparedTrial,
    Stages,
    anchor_stage,
    datafree_stage,
    encoder_stage,
    mixup_nets,
)
from augkd.models import build_student, count_parameters
from augkd.models.deployable import student_meta
from augkd.models.teacher import Teacher
from augkd.storage.cache import StageCache
from augkd.trial.diagnostics import cached_stage_diagnostics, trial_diagnostics, trial_judge
from augkd.trial.lockstep import val_passes
from augkd.trial.stage_keys import stage_keys
from augkd.trial.teacher import check_classes_match, default_cache_root, load_teacher

__all__ = [
    "PreparedTrial",
    "TrialResult",
    "check_memory",
    "load_inputs",
    "prepare_trial",
    "produce_shared_stages",
    "run_trial",
    "trial_diagnostics",
]

ReportHook = Callable[[dict[str, float], Callable[[], dict[str, Any]]], None]
"""on_epoch(metrics, make_state), at every val pass: make_state() builds the resume state
when wanted."""


@dataclass
class TrialResult:
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_student: dict[str, torch.Tensor]
    cache_events: list[Any] = field(default_factory=list)
    diagnostics: Diagnostics | None = None


@dataclass
class _Listeners:
    """Who hears of a trial's progress beside its reports."""

    log: Callable[[str], None] = print
    on_diagnostics: Callable[[Diagnostics], None] | None = None
    on_step: StepHook | None = None
    """The progress of every stage it trains before Module 3 (augkd.basics.eta)."""


def run_trial(
    config: Config,
    on_epoch: ReportHook | None = None,
    resume_state: dict[str, Any] | None = None,
    cache: StageCache | None = None,
    log: Callable[[str], None] = print,
    device: torch.device | None = None,
    on_diagnostics: Callable[[Diagnostics], None] | None = None,
    seeds: Sequence[int] | None = None,
    on_step: StepHook | None = None,
) -> TrialResult:
    """One trial; ``device`` is the one Ray assigned (see runtime.resolve_device), else
    config key ``device`` decides. ``on_diagnostics`` receives the diagnostics of Modules
    1-2 (when computed) before Module 3 starts; their metrics also ride on every epoch's
    report as ``diag_*``. ``on_step``: the progress of every stage it trains before Module 3.

    ``seeds``: the same settings on each of these seeds, advanced in lockstep
    (augkd.trial.lockstep). Default: ``config.seed`` alone."""
    started = time.perf_counter()
    seeds = list(seeds) if seeds else [config.seed]
    several = len(seeds) > 1
    resumed = resume_state or {"seeds": [None] * len(seeds), "history": []}
    configure_torch(config.threads)
    device = device or resolve_device(config.device)
    reset_peak(device)  # every report carries the trial's peak memory so far
    root = cache.root if cache is not None else default_cache_root(config)
    states = resumed["seeds"] if several else [resume_state]
    runs = []
    for index, (seed, state) in enumerate(zip(seeds, states, strict=True)):
        # One cache each (its events are that seed's); one seed uses the cache it was given.
        seed_cache = StageCache(root) if several or cache is None else cache
        precision = MixedPrecision(config.precision, device)  # a GradScaler of its own
        seed_everything(seed)  # the seed's global stream, before its teacher loads
        seeded = with_overrides(config, {"seed": seed}) if several else config
        hears = _Listeners(log, on_diagnostics if index == 0 else None, on_step)
        runs.append(_SeedRun.start(seeded, seed_cache, device, precision, hears, state, started))
    history = list(resumed["history"]) if several else []
    for now in val_passes([run.reports for run in runs], seeds, history):
        now.metrics.update(peak_memory(device))
        if on_epoch is not None:
            on_epoch(now.metrics, now.make_state)
    events = [event for run in runs for event in run.cache.events]
    return TrialResult(now.metrics, now.history, now.best_student, events, runs[0].diagnostics)


@dataclass
class _SeedRun:
    """One seed of a trial: its prepared stages, diagnostics and Module-3 reports."""

    reports: Iterator[Report]
    cache: StageCache
    diagnostics: Diagnostics | None

    @classmethod
    def start(
        cls,
        config: Config,
        cache: StageCache,
        device: torch.device,
        precision: MixedPrecision,
        listeners: _Listeners,
        resume_state: dict[str, Any] | None,
        started: float,
    ) -> _SeedRun:
        """Once its precision is made and its global stream seeded (as in prepare_trial)."""
        trial = _prepared(config, cache, device, precision, listeners.log, listeners.on_step)
        diagnostics = None
        if config.diagnostics.enabled and trial.stages.frozen_nets is not None:
            start = time.perf_counter()
            diagnostics = trial_diagnostics(trial, cache)
            trial.stages.timings[DIAGNOSTICS_SECONDS] = time.perf_counter() - start
            trial.stages.reported = {
                DIAGNOSTICS_PREFIX + name: value for name, value in diagnostics.metrics.items()
            }
            if listeners.on_diagnostics is not None:
                listeners.on_diagnostics(diagnostics)
        # What the trial spent before Module 3's first epoch: out of ASHA's reach.
        trial.stages.timings[SETUP_SECONDS] = time.perf_counter() - started
        # Module 3 from S0 (or a fresh student), one Report per val pass.
        splits, teacher, stages = trial.splits, trial.teacher, trial.stages
        meta = student_meta(
            teacher.normalize, config.data.image_size, splits.class_names, splits.val_x[:2]
        )
        seed_everything(stage_seed(config.seed, Stream.MODULE3))
        student = build_student(config.student, len(splits.class_names)).to(trial.device)
        if stages.student_init is not None:
            student.load_state_dict(stages.student_init)
        constant = {
            STUDENT_PARAMS: float(count_parameters(student)),
            **{name: float(value) for name, value in stages.timings.items()},
            **stages.reported,
            **_cache_metrics(cache),
        }
        rng = torch.Generator().manual_seed(stage_seed(config.seed, Stream.MODULE3_AUGMENT))
        inputs = MixupInputs(student, teacher.model, teacher.normalize, splits, stages.mixup_nets,
                             rng, trial.precision, config.data.augment)  # fmt: skip
        carried = Carried(constant, {"student_meta": meta})
        reports = mixup_reports(inputs, config.module3, trial.plan, carried, resume_state,
                                listeners.log)  # fmt: skip
        return cls(reports, cache, diagnostics)


def prepare_trial(
    config: Config,
    cache: StageCache,
    log: Callable[[str], None] = print,
    device: torch.device | None = None,
    on_step: StepHook | None = None,
) -> PreparedTrial:
    """Teacher, splits and Modules 1-2 (run or loaded from the cache), without Module 3;
    ``on_step``: the progress of each stage it trains."""
    device = device or resolve_device(config.device)
    precision = MixedPrecision(config.precision, device)
    seed_everything(config.seed)
    return _prepared(config, cache, device, precision, log, on_step)


def _prepared(
    config: Config,
    cache: StageCache,
    device: torch.device,
    precision: MixedPrecision,
    log: Callable[[str], None],
    on_step: StepHook | None,
) -> PreparedTrial:
    """``prepare_trial`` on its device, with its precision, its global stream seeded."""
    teacher, splits = load_inputs(config, cache, device, precision, on_step)
    plan = METHOD_PLANS[config.method]
    check_memory(config, plan, teacher, splits, device, cache)
    inputs = Inputs(teacher, splits, device, config.data.image_size)
    stages = prepare_stages(config, plan, inputs, _stage_runs(config, cache, log, on_step))
    return PreparedTrial(config, plan, teacher, splits, stages, device, precision)


def load_inputs(
    config: Config,
    cache: StageCache,
    device: torch.device,
    precision: MixedPrecision,
    on_step: StepHook | None = None,
) -> tuple[Teacher, StudentSplits]:
    """The teacher (forwards under the configured precision) and the student splits, checked
    against each other: all a trial needs before its stages, and all a preflight checks.
    The caller seeds the global stream first (``seed_everything(config.seed)``), with the
    rest of its torch set-up. ``on_step``: the progress of a built-in teacher's training, if
    it trains."""
    teacher = load_teacher(config, device, cache, on_step)
    if precision.dtype is not None:
        teacher = dataclasses.replace(teacher, model=AutocastModule(teacher.model, precision))
    splits = load_student_splits(config.data, config.seed, device, cache)
    check_classes_match(teacher, splits.class_names, config.data.image_size)
    return teacher, splits


def check_memory(
    config: Config,
    plan: MethodPlan,
    teacher: Teacher,
    splits: StudentSplits,
    device: torch.device,
    cache: StageCache,
    with_module3: bool = True,
) -> None:
    """Refuse, before any stage allocates, a stage of this plan whose memory estimate does not
    fit on ``device`` (augkd.method.memory), in one sentence naming the key that sets its size. A
    stage already in the cache is read, not run, and is not checked."""
    from augkd.hardware.free_memory import check_fits
    from augkd.hardware.runtime import gpu_memory_share
    from augkd.method.memory import estimate_stages, trial_stages

    keys = stage_keys(config, teacher, plan.module2)
    mixing = plan.batches == "mixup"
    planned = trial_stages(config, plan.module1, plan.module2, mixing)
    planned = [stage for stage in planned if stage != "module3" or with_module3]
    estimates = estimate_stages(
        config, len(splits.class_names), str(teacher.metadata.get("arch", config.teacher.arch)),
        planned, len(splits.train_y), bool(teacher.metadata.get("small_input", True)),
        keys.generator_channels, mixing,
    )  # fmt: skip
    trained = ((MODULE1, keys.module1), (ENCODER, keys.encoder), (MODULE2, keys.module2))
    cached = {stage.name: (stage.folder, key) for stage, key in trained}
    to_run = [
        estimate
        for stage, estimate in zip(planned, estimates, strict=True)
        if stage not in cached or not cache.contains(*cached[stage])
    ]
    check_fits(to_run, device, gpu_memory_share(device))


def produce_shared_stages(
    config: Config,
    cache: StageCache,
    device: torch.device,
    with_module2: bool,
    log: Callable[[str], None] = print,
    with_encoder: bool = True,
    on_step: StepHook | None = None,
) -> dict[str, float]:
    """Produce (or find) the decoded data, the teacher, Module 1 and optionally Module 2 in
    the cache, with Module 2's diagnostics: what a search does before its first trial, so
    that trials only read them. ``on_step``: every stage's progress (augkd.basics.eta)."""
    precision = MixedPrecision(config.precision, device)
    seed_everything(config.seed)
    teacher, splits = load_inputs(config, cache, device, precision, on_step)
    batches = "mixup" if with_encoder else "student"  # "mixup": E is adapted too, if asked
    plan = MethodPlan(module1=True, module2=with_module2, batches=batches, teacher_term="none")
    check_memory(config, plan, teacher, splits, device, cache, with_module3=False)
    inputs = Inputs(teacher, splits, device, config.data.image_size)
    stages = prepare_stages(config, plan, inputs, _stage_runs(config, cache, log, on_step))
    if with_module2 and config.diagnostics.enabled:
        trial = PreparedTrial(config, plan, teacher, splits, stages, device, precision)
        cached_stage_diagnostics(trial, cache, trial_judge(trial))
    return stages.timings


def prepare_stages(config: Config, plan: MethodPlan, inputs: Inputs, runs: StageRuns) -> Stages:
    """The plan's stages before Module 3, each given its section of ``config`` and the
    artifacts before it: Module 1, the encoder's adaptation, Module 2."""
    if not plan.module1:
        return Stages(None, None, runs.timings)
    keys = stage_keys(config, inputs.teacher, plan.module2)
    nets = datafree_stage(config.module1, config.student, inputs, runs, keys.module1)
    if config.encoder_adapt.epochs > 0 and (plan.module2 or plan.batches == "mixup"):
        kl_weight = config.module1.encoder_kl_weight
        nets = encoder_stage(config.encoder_adapt, kl_weight, nets, inputs, runs, keys.encoder)
    anchor_net = None
    if plan.module2:
        latent = config.module1.latent_size
        anchor_net = anchor_stage(config.module2, latent, nets, inputs, runs, keys.module2)
    frozen = mixup_nets(nets, anchor_net)
    mixing = frozen if plan.batches == "mixup" else None
    return Stages(nets.student, mixing, runs.timings, frozen)


def _stage_runs(
    config: Config, cache: StageCache, log: Callable[[str], None], on_step: StepHook | None = None
) -> StageRuns:
    return StageRuns(cache, config.seed, config.stage_checkpoint_minutes * 60, log, on_step)


def _cache_metrics(cache: StageCache) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for event in cache.events:
        if event.stage in ("module1", "module2"):
            metrics[cache_hit(event.stage)] = float(event.hit)
    if any(event.downloaded or event.node_copy for event in cache.events):
        # what this trial fetched from object storage vs found on its node (augkd.storage.node_cache)
        metrics[STAGE_DOWNLOADS] = float(sum(e.downloaded for e in cache.events))
        metrics[STAGE_NODE_READS] = float(sum(e.node_copy for e in cache.events))
    return metrics
