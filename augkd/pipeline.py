"""One trial: teacher -> Module 1 -> Module 2 -> Module 3, reporting every Module-3 epoch.

The search attaches ASHA to ``on_epoch``; the CLI attaches a progress printer. Val
picks the best epoch; test is computed once, at that epoch, after the last one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from augkd.cache import StageCache
from augkd.config import Config, Module3Config, with_overrides
from augkd.data import StudentSplits, load_student_splits
from augkd.diagnostics import Diagnostics, Judge, mixup_diagnostics, stage_diagnostics
from augkd.errors import ConfigError
from augkd.eta import StepHook
from augkd.memory_peaks import peak_memory, reset_peak
from augkd.method.anchor import train_anchor
from augkd.method.datafree import train_datafree
from augkd.method.encoder_adapt import adapt_encoder
from augkd.method.mixup import MixupNets, Report, mixup_reports, module3_budget
from augkd.method.plans import METHOD_PLANS, MethodPlan
from augkd.method.schedules import mixup_schedule
from augkd.models import AnchorNet, Encoder, Generator, build_student, count_parameters
from augkd.models.deployable import student_meta
from augkd.precision import AutocastModule, MixedPrecision
from augkd.runtime import configure_torch, resolve_device, seed_everything
from augkd.stage_keys import stage_keys
from augkd.teacher import Teacher, check_classes_match, default_cache_root, load_teacher

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
class _Stages:
    student_init: dict[str, torch.Tensor] | None
    mixup_nets: MixupNets | None
    timings: dict[str, float]
    frozen_nets: MixupNets | None = None
    """G, E (and A) whenever Module 1 ran, also for methods that do not mix (diagnostics)."""
    reported: dict[str, float] = field(default_factory=dict)
    """Constant metrics every epoch's report carries (the diagnostics)."""


@dataclass
class PreparedTrial:
    """Everything Module 3 starts from: teacher, splits and the frozen stage outputs."""

    config: Config
    plan: MethodPlan
    teacher: Teacher
    splits: StudentSplits
    stages: _Stages
    device: torch.device
    precision: MixedPrecision


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
    report as ``diag_*``.

    ``seeds``: the same settings on each of these seeds (splits, stages, student), advanced
    in lockstep; every report then carries each metric's mean over the seeds (the objective
    averaged: a winner picked on one seed's val is often picked on noise) and each seed's own
    val and test as ``<metric>_seed<k>``. Default: ``config.seed`` alone. ``on_step``: the
    progress of every stage it trains before Module 3 (augkd.eta)."""
    started = time.perf_counter()
    configure_torch(config.threads)
    device = device or resolve_device(config.device)
    reset_peak(device)  # every report carries the trial's peak memory so far
    seeds = list(seeds) if seeds else [config.seed]
    if len(seeds) == 1:
        cache = cache or StageCache(default_cache_root(config))
        run = _SeedRun.start(
            config, cache, device, log, resume_state, on_diagnostics, started, on_step
        )
        for report in run.reports:
            report.metrics.update(peak_memory(device))
            if on_epoch is not None:
                on_epoch(report.metrics, report.make_state)
        return TrialResult(
            report.metrics, report.history, report.best_student, cache.events, run.diagnostics
        )
    # Several seeds: one cache each (its events are that seed's), advanced in lockstep.
    root = cache.root if cache is not None else default_cache_root(config)
    resumed = resume_state or {"seeds": [None] * len(seeds), "history": []}
    runs = []
    for index, (seed, state) in enumerate(zip(seeds, resumed["seeds"], strict=True)):
        seeded = with_overrides(config, {"seed": seed})
        hook = on_diagnostics if index == 0 else None
        runs.append(
            _SeedRun.start(seeded, StageCache(root), device, log, state, hook, started, on_step)
        )
    history = list(resumed["history"])
    for reports in zip(*(run.reports for run in runs), strict=True):
        history.append(merge_seed_metrics([report.metrics for report in reports], seeds))
        history[-1].update(peak_memory(device))
        if on_epoch is not None:
            on_epoch(history[-1], _state_of(reports, history))
    events = [event for run in runs for event in run.cache.events]
    return TrialResult(history[-1], history, reports[0].best_student, events, runs[0].diagnostics)


SEED_METRICS = ("val_acc1", "best_val_acc1", "test_acc1")
"""Metrics a multi-seed trial also reports seed by seed."""


def merge_seed_metrics(reports: list[dict[str, float]], seeds: list[int]) -> dict[str, float]:
    """One report of several seeds: each metric's mean (seconds: their sum, the compute
    spent), plus each seed's own SEED_METRICS."""
    merged: dict[str, float] = {}
    for key in reports[0]:
        values = [report[key] for report in reports if isinstance(report.get(key), (int, float))]
        if len(values) != len(reports):
            merged[key] = reports[0][key]
        else:
            merged[key] = sum(values) if key.endswith("_seconds") else sum(values) / len(values)
    for seed, report in zip(seeds, reports, strict=True):
        for key in SEED_METRICS:
            if key in report:
                merged[f"{key}_seed{seed}"] = report[key]
    merged["seeds"] = float(len(seeds))
    return merged


def _state_of(
    reports: Sequence[Report], history: list[dict[str, float]]
) -> Callable[[], dict[str, Any]]:
    """The resume state of one lockstep report of several seeds."""
    history = list(history)

    def build() -> dict[str, Any]:
        states = [report.make_state() for report in reports]
        return {
            "seeds": states,
            "history": history,
            "best_student": states[0]["best_student"],  # what a search exports
            "student_meta": states[0]["student_meta"],
        }

    return build


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
        log: Callable[[str], None],
        resume_state: dict[str, Any] | None,
        on_diagnostics: Callable[[Diagnostics], None] | None,
        started: float,
        on_step: StepHook | None = None,
    ) -> _SeedRun:
        trial = prepare_trial(config, cache, log, device, on_step)
        diagnostics = None
        if config.diagnostics.enabled and trial.stages.frozen_nets is not None:
            start = time.perf_counter()
            diagnostics = trial_diagnostics(trial, cache)
            trial.stages.timings["diagnostics_seconds"] = time.perf_counter() - start
            trial.stages.reported = {f"diag_{k}": v for k, v in diagnostics.metrics.items()}
            if on_diagnostics is not None:
                on_diagnostics(diagnostics)
        # What the trial spent before Module 3's first epoch: out of ASHA's reach.
        trial.stages.timings["setup_seconds"] = time.perf_counter() - started
        return cls(_module3_reports(trial, cache, resume_state, log), cache, diagnostics)


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
    teacher, splits = load_inputs(config, cache, device, precision, on_step)
    plan = METHOD_PLANS[config.method]
    check_memory(config, plan, teacher, splits, device, cache)
    stages = _prepare_stages(config, plan, teacher, splits, cache, device, log, on_step)
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
    ``on_step``: the progress of a built-in teacher's training, if it trains."""
    seed_everything(config.seed)
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
    fit on ``device`` (augkd.memory), in one sentence naming the key that sets its size. A
    stage already in the cache is read, not run, and is not checked."""
    from augkd.memory import check_fits, estimate_stages, trial_stages
    from augkd.runtime import gpu_memory_share

    mixing = plan.batches == "mixup"
    keys = stage_keys(config, teacher, plan.module2)
    cached = {"module1": ("module1", keys.module1), "encoder_adapt": ("encoder", keys.encoder),
              "module2": ("module2", keys.module2)}  # fmt: skip
    stages = [
        stage
        for stage in trial_stages(config, plan.module1, plan.module2, mixing)
        if (stage != "module3" or with_module3)
        and (stage not in cached or not cache.contains(*cached[stage]))
    ]
    estimates = estimate_stages(
        config, len(splits.class_names), str(teacher.metadata.get("arch", config.teacher.arch)),
        stages, len(splits.train_y), bool(teacher.metadata.get("small_input", True)),
        keys.generator_channels, mixing,
    )  # fmt: skip
    check_fits(estimates, device, gpu_memory_share(device))


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
    that trials only read them. ``on_step``: every stage's progress (augkd.eta)."""
    precision = MixedPrecision(config.precision, device)
    teacher, splits = load_inputs(config, cache, device, precision, on_step)
    batches = "mixup" if with_encoder else "student"  # "mixup": E is adapted too, if asked
    plan = MethodPlan(module1=True, module2=with_module2, batches=batches, teacher_term="none")
    check_memory(config, plan, teacher, splits, device, cache, with_module3=False)
    stages = _prepare_stages(config, plan, teacher, splits, cache, device, log, on_step)
    if with_module2 and config.diagnostics.enabled:
        trial = PreparedTrial(config, plan, teacher, splits, stages, device, precision)
        _stage_diagnostics(trial, cache, _judge(trial))
    return stages.timings


def first_share(settings: Module3Config, plan: MethodPlan, train_size: int) -> float | None:
    """Module 3's first s when its batches mix; None when they don't or s = 1 (x_mix = x)."""
    if plan.batches != "mixup":
        return None
    epochs = module3_budget(settings, train_size).epochs
    share = mixup_schedule(plan.schedule or settings.schedule, 0, epochs, settings.a, settings.b)
    return share if share < 1.0 else None


def trial_diagnostics(trial: PreparedTrial, cache: StageCache) -> Diagnostics:
    """Diagnostics of the frozen G, E (and A): the stage part once per stage-2 artifact
    (cached next to it), the x_mix part per trial (it depends on module3.b)."""
    config = trial.config
    if trial.stages.frozen_nets is None:
        raise ConfigError(
            f"method '{config.method}' trains no generator, so there is nothing to diagnose; "
            "use --method augkd, no_anchor, no_mixup or dfkd."
        )
    judge = _judge(trial)
    stage = _stage_diagnostics(trial, cache, judge)
    share = first_share(config.module3, trial.plan, len(trial.splits.train_y))
    return Diagnostics.from_artifact(stage).merged(
        mixup_diagnostics(judge, config.diagnostics, share)
    )


def _judge(trial: PreparedTrial) -> Judge:
    splits = trial.splits
    return Judge(
        trial.teacher.model, trial.teacher.normalize, splits.val_x, splits.val_y,
        trial.stages.frozen_nets, splits.class_names,
    )  # fmt: skip


def _stage_diagnostics(trial: PreparedTrial, cache: StageCache, judge: Judge) -> dict[str, Any]:
    config = trial.config
    return cache.get_or_create(
        "diagnostics",
        stage_keys(config, trial.teacher, trial.plan.module2).diagnostics,
        lambda: stage_diagnostics(
            judge, config.diagnostics, config.module1.latent_size
        ).to_artifact(),
    )


def _prepare_stages(
    config, plan: MethodPlan, teacher, splits, cache, device, log, on_step=None
) -> _Stages:
    num_classes = len(splits.class_names)
    timings: dict[str, float] = {}
    if not plan.module1:
        return _Stages(None, None, timings)

    every_s = config.stage_checkpoint_minutes * 60
    keys = stage_keys(config, teacher, plan.module2)

    def produce_stage1() -> dict[str, Any]:
        seed_everything(config.seed * 1000 + 1)
        student = build_student(config.student, num_classes)
        progress = cache.progress("module1", keys.module1, every_s)
        return train_datafree(
            teacher.model, student, teacher.normalize, num_classes,
            config.data.image_size, config.module1, device, log,
            resume_state=progress.load(), on_epoch_end=progress.save, on_step=on_step,
        )  # fmt: skip

    start = time.perf_counter()
    stage1 = cache.get_or_create("module1", keys.module1, produce_stage1)
    timings["module1_seconds"] = time.perf_counter() - start
    latent = config.module1.latent_size
    generator = Generator(
        latent, config.data.image_size, config.module1.generator_width, keys.generator_channels
    ).to(device)
    generator.load_state_dict(stage1["generator"])
    encoder = Encoder(latent, config.data.image_size, num_classes).to(device)
    encoder.load_state_dict(stage1["encoder"])
    for frozen in (generator, encoder):
        frozen.eval().requires_grad_(False)
    if config.encoder_adapt.epochs > 0 and (plan.module2 or plan.batches == "mixup"):

        def produce_encoder() -> dict[str, Any]:
            rng = torch.Generator().manual_seed(config.seed * 1000 + 5)
            seed_everything(config.seed * 1000 + 5)
            return {
                "encoder": adapt_encoder(
                    encoder, generator, splits.train_x, splits.train_y, config.encoder_adapt,
                    config.module1.encoder_kl_weight, rng, log, on_step,
                )
            }  # fmt: skip

        start = time.perf_counter()
        adapted = cache.get_or_create("encoder", keys.encoder, produce_encoder)
        encoder.load_state_dict(adapted["encoder"])
        encoder.eval().requires_grad_(False)
        timings["encoder_adapt_seconds"] = time.perf_counter() - start

    anchor_net = None
    if plan.module2:

        def produce_stage2() -> dict[str, Any]:
            rng = torch.Generator().manual_seed(config.seed * 1000 + 2)
            seed_everything(config.seed * 1000 + 2)
            progress = cache.progress("module2", keys.module2, every_s)
            return train_anchor(
                encoder, generator, teacher.model, teacher.normalize, splits,
                num_classes, latent, config.module2, rng, log,
                resume_state=progress.load(), on_epoch_end=progress.save, on_step=on_step,
            )  # fmt: skip

        start = time.perf_counter()
        stage2 = cache.get_or_create("module2", keys.module2, produce_stage2)
        timings["module2_seconds"] = time.perf_counter() - start
        anchor_net = AnchorNet(latent, num_classes).to(device)
        anchor_net.load_state_dict(stage2["anchor_net"])
        anchor_net.eval().requires_grad_(False)
    frozen = MixupNets(encoder, generator, anchor_net)
    nets = frozen if plan.batches == "mixup" else None
    return _Stages(stage1["student"], nets, timings, frozen)


def _module3_reports(
    trial: PreparedTrial,
    cache: StageCache,
    resume_state: dict[str, Any] | None,
    log: Callable[[str], None],
) -> Iterator[Report]:
    """Module 3 from S0 (or a fresh student), one Report per val pass."""
    config, splits, teacher, stages = trial.config, trial.splits, trial.teacher, trial.stages
    seed_everything(config.seed * 1000 + 3)
    student = build_student(config.student, len(splits.class_names)).to(trial.device)
    if stages.student_init is not None:
        student.load_state_dict(stages.student_init)
    meta = student_meta(
        teacher.normalize, config.data.image_size, splits.class_names, splits.val_x[:2]
    )
    constant = {
        "student_params": float(count_parameters(student)),
        **{name: float(value) for name, value in stages.timings.items()},
        **stages.reported,
        **_cache_metrics(cache),
    }
    return mixup_reports(
        student, teacher.model, teacher.normalize, splits, stages.mixup_nets, config.module3,
        trial.plan, config.data.augment, torch.Generator().manual_seed(config.seed * 1000 + 4),
        trial.precision, constant, resume_state, {"student_meta": meta}, log,
    )  # fmt: skip


def _cache_metrics(cache: StageCache) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for event in cache.events:
        if event.stage in ("module1", "module2"):
            metrics[f"{event.stage}_cache_hit"] = float(event.hit)
    if any(event.downloaded or event.node_copy for event in cache.events):
        # what this trial fetched from object storage vs found on its node (augkd.node_cache)
        metrics["stage_downloads"] = float(sum(e.downloaded for e in cache.events))
        metrics["stage_node_reads"] = float(sum(e.node_copy for e in cache.events))
    return metrics
