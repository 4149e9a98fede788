"""The calibration behind ``search.py --estimate``: plan the search's stages as the search
does (prepare/shared_plan.py: the same seeds, Module-2 grid and stage keys), look each one
up in the stage cache, and time a few iterations of every stage it would run, on the device,
precision and threads its tasks and trials would use: the teacher (when the built-in one is
not cached), Module 1, the encoder adaptation, Module 2, a Module-3 step and a val pass.
Nothing trains beyond that; what it decodes (the data) is cached as the search would."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any

from augkd.basics.config import Config, with_overrides
from augkd.search.prepare.shared_plan import plan_shared_stages
from augkd.search.prepare.space import SearchSpace
from augkd.search.prepare.step_timer import TIMED, WHOLE_EPOCH_STEPS, StepTimer
from augkd.search.prepare.trial_steps import searched_teacher_terms


@dataclass
class StageCost:
    """One artifact the search would produce before its trials (or each trial would)."""

    stage: str
    label: str
    key: str | None
    """Its stage-cache key; None while the teacher it depends on is not trained yet."""
    cached: bool
    units: int
    seconds_per_unit: float
    peak_mib: float = 0.0
    """Peak memory while timed (CUDA reserved on a GPU, else process RSS); 0 when cached."""
    per_trial: bool = False
    """Not shared: every trial produces its own (once per seed it runs)."""

    @property
    def seconds(self) -> float:
        return 0.0 if self.cached else self.units * self.seconds_per_unit


def calibrate(
    space: SearchSpace,
    cache_root: str,
    device_name: str,
    shared_threads: int,
    trial_threads: int,
    gpu_ids: list | None = None,
    fresh_seeds: bool = False,
) -> dict[str, Any]:
    """Plan the search's stages, look each one up in the cache and time the ones it would
    run; returns plain data (it may run as a Ray task). ``fresh_seeds``: also time every
    shared stage as a seed the cache has never seen would run it, and a Module-3 step on
    student batches alone (an evaluation's fresh seeds and its baselines)."""
    import torch

    from augkd.data import iterate_batches, load_student_splits
    from augkd.hardware.precision import AutocastModule, MixedPrecision
    from augkd.hardware.runtime import Normalize, configure_torch, resolve_device, seed_everything
    from augkd.method.anchor import anchor_batch_loss, encode, module2_budget
    from augkd.method.datafree import build_datafree_nets, train_iteration
    from augkd.method.encoder_adapt import adaptation_step, adaptation_steps_per_epoch
    from augkd.method.losses import BatchNormStatistics
    from augkd.method.mixup import EpochSettings, MixupNets, module3_budget, train_epoch
    from augkd.method.plans import METHOD_PLANS, ce_shares
    from augkd.models import AnchorNet, build_classifier, build_student, generator_channels
    from augkd.models.metrics import evaluate
    from augkd.storage.cache import StageCache
    from augkd.trial.stage_keys import stage_keys
    from augkd.trial.teacher import (
        built_in_teacher_key,
        load_teacher,
        teacher_split,
        teacher_step,
        teacher_steps_per_epoch,
    )

    started = time.perf_counter()
    plan = plan_shared_stages(space)
    base = with_overrides(space.base_config_object(), {"seed": plan.seeds[0]})
    device = resolve_device(device_name, gpu_ids)
    precision = MixedPrecision(base.precision, device)
    timed = StepTimer(device)
    cache = StageCache(cache_root)
    configure_torch(trial_threads)  # the preflight task, which trains a built-in teacher
    seed_everything(base.seed)
    costs: list[StageCost] = []

    # The teacher: a checkpoint is read as the search reads it; the built-in one is trained
    # once per data setting (timed here unless cached).
    teacher = None
    if base.teacher.checkpoint is not None or cache.contains("teacher", built_in_teacher_key(base)):
        load_started = time.perf_counter()
        teacher = load_teacher(base, device, cache)
        teacher_load_s = time.perf_counter() - load_started
        model, normalize, classes = teacher.model, teacher.normalize, len(teacher.class_names)
        if base.teacher.checkpoint is None:
            costs.append(StageCost("teacher", "built-in", built_in_teacher_key(base), True, 0, 0))
    else:
        from augkd.data import load_teacher_domain

        domain = load_teacher_domain(base.data)
        rows = teacher_split(len(domain))
        train_rows = torch.cat([rows["train"], rows["val"]])
        x = domain.images[train_rows].to(device).float() / 255
        y = domain.labels[train_rows].to(device)
        normalize = Normalize(
            x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
        ).to(device)
        classes = len(domain.class_names)
        model = build_classifier(base.teacher.arch, classes).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=base.teacher.lr)
        batches = iter(list(iterate_batches(x, y, 64, torch.Generator().manual_seed(0))) * 8)

        def one_teacher_step() -> None:
            images, labels = next(batches)
            teacher_step(model, optimizer, normalize, images, labels)

        model.train()
        per_step = timed("teacher", one_teacher_step, TIMED["teacher"])
        units = base.teacher.epochs * teacher_steps_per_epoch(len(y))
        peak = timed.peaks["teacher"]
        key = built_in_teacher_key(base)
        costs.append(StageCost("teacher", "built-in", key, False, units, per_step, peak))
        model.eval().requires_grad_(False)
        teacher_load_s = 0.0
    if precision.dtype is not None:
        model = AutocastModule(model, precision)
    configure_torch(shared_threads)  # each seed's task of shared stages

    load_started = time.perf_counter()
    splits = load_student_splits(base.data, base.seed, device, cache)
    setup_s = teacher_load_s + time.perf_counter() - load_started
    task_setup_s = setup_s  # what every stage task pays before its stage: teacher and data
    stage_diagnostics_s = 0.0
    train_size = len(splits.train_y)
    method = METHOD_PLANS[base.method]
    methods = [base.method]
    if "method" in space.params:
        methods = list(space.params["method"].choices or [])
    needs_module1 = any(METHOD_PLANS[m].module1 for m in methods)
    needs_module2 = any(METHOD_PLANS[m].module2 for m in methods)
    needs_encoder = base.encoder_adapt.epochs > 0 and (
        needs_module2 or any(METHOD_PLANS[m].batches == "mixup" for m in methods)
    )

    # The stages and their keys: as stages/before_trials produces them (seed, then grid point).
    def keys_of(config: Config):
        return stage_keys(config, teacher, True) if teacher is not None else None

    seeds_configs = [with_overrides(base, {"seed": s, **plan.module2_grid[0]}) for s in plan.seeds]
    shared: list[tuple[str, str, Config]] = []
    if plan.module1:
        for config in seeds_configs:
            shared.append(("module1", f"seed {config.seed}", config))
            if plan.encoder:
                shared.append(("encoder", f"seed {config.seed}", config))
            if plan.module2:
                for point in plan.module2_grid:
                    label = f"seed {config.seed}" + "".join(
                        f" {k.rsplit('.', 1)[-1]}={v}" for k, v in point.items()
                    )
                    shared.append(("module2", label, with_overrides(config, point)))
    per_trial = []
    if needs_module1 and not plan.module1:
        per_trial.append("module1")
    if needs_encoder and not plan.encoder:
        per_trial.append("encoder")
    if needs_module2 and not plan.module2:
        per_trial.append("module2")

    # Time one iteration of each stage that is to run (never one that is cached).
    seconds: dict[str, float] = {}

    def units_of(stage: str, config: Config) -> int:
        if stage == "module1":
            return config.module1.epochs * config.module1.iters_per_epoch
        if stage == "encoder":
            return config.encoder_adapt.epochs * adaptation_steps_per_epoch(
                train_size, config.encoder_adapt.batch_size
            )
        return module2_budget(config.module2, train_size).steps

    planned = []
    for stage, label, config in shared:
        keys = keys_of(config)
        key = None if keys is None else getattr(keys, stage)
        cached = key is not None and cache.contains(stage, key)
        planned.append((stage, label, key, cached, units_of(stage, config)))
    to_time = {stage for stage, *_, cached, _units in planned if not cached} | set(per_trial)
    if fresh_seeds:
        to_time |= {stage for stage, *_ in planned}

    nets = None
    fresh_module1_s = None
    if needs_module1:
        channels = generator_channels(
            base.module1.generator_colour,
            normalize.mean.flatten().tolist(),
            normalize.std.flatten().tolist(),
        )
        student = build_student(base.student, classes)
        nets = build_datafree_nets(
            model, student, classes, base.data.image_size, base.module1, device, channels
        )
        if "module1" in to_time:
            bn_stats = BatchNormStatistics(model)

            def one_iteration() -> None:
                train_iteration(nets, normalize, bn_stats, base.module1)

            try:
                seconds["module1"] = timed("module1", one_iteration, TIMED["module1"])
                if fresh_seeds and trial_threads != shared_threads:
                    configure_torch(trial_threads)  # an evaluation run makes its own Module 1
                    fresh_module1_s = timed("module1", one_iteration, TIMED["module1"])
                    configure_torch(shared_threads)
            finally:
                bn_stats.remove()
        generator, encoder = nets.generator, nets.encoder
        generator.eval().requires_grad_(False)
        if "encoder" in to_time:
            adapt = encoder.__class__(base.module1.latent_size, base.data.image_size, classes)
            adapt.load_state_dict(encoder.state_dict())
            adapt.to(device).train()
            optimizer = torch.optim.Adam(adapt.parameters(), lr=base.encoder_adapt.lr)
            rng = torch.Generator().manual_seed(0)
            batches = iter(
                list(
                    iterate_batches(
                        splits.train_x, splits.train_y, base.encoder_adapt.batch_size, rng, True
                    )
                )
                * 8
            )

            def one_adaptation_step() -> None:
                images, labels = next(batches)
                adaptation_step(
                    adapt, generator, optimizer, images, labels, base.module1.encoder_kl_weight
                )

            seconds["encoder"] = timed("encoder", one_adaptation_step, TIMED["encoder"])
        encoder.eval().requires_grad_(False)
        anchor_net = None
        if needs_module2:
            anchor_net = AnchorNet(base.module1.latent_size, classes).to(device)
        if "module2" in to_time:
            latents = encode(encoder, splits.train_x, splits.train_y)
            optimizer = torch.optim.Adam(anchor_net.parameters(), lr=base.module2.lr)
            anchor_net.train()
            # The epoch's own batches, a short epoch whole (fonts: 128 + 22 latents a step).
            rng, size = torch.Generator().manual_seed(0), base.module2.batch_size
            epoch_batches = [
                batch
                for batch in iterate_batches(latents, splits.train_y, size, rng)
                if len(batch[1]) >= 2
            ]
            per_call = len(epoch_batches) if len(epoch_batches) <= WHOLE_EPOCH_STEPS else 1
            anchor_batches = itertools.cycle(epoch_batches)

            def anchor_steps() -> None:
                for _ in range(per_call):
                    z, labels = next(anchor_batches)
                    loss = anchor_batch_loss(
                        anchor_net, z, labels, generator, model, normalize, base.module2
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()

            seconds["module2"] = timed("module2", anchor_steps, TIMED["module2"]) / per_call
            if len(plan.module2_grid) > 1 and trial_threads != shared_threads:
                # The rest of the grid runs as tasks with a trial's CPUs (and threads), as
                # do the diagnostics below: each trial's, and each later AnchorNet's.
                configure_torch(trial_threads)
                anchor_batches = itertools.cycle(epoch_batches)
                rest_s = timed("module2", anchor_steps, TIMED["module2"]) / per_call
                seconds["module2_rest"] = rest_s
        if anchor_net is not None:
            anchor_net.eval().requires_grad_(False)
        mixup_nets = MixupNets(encoder, generator, anchor_net if method.module2 else None)
        if base.diagnostics.enabled:  # each trial's own part of the diagnostics (x_mix)
            from augkd.method.diagnostics import Judge, mixup_diagnostics

            judge = Judge(
                model, normalize, splits.val_x, splits.val_y,
                MixupNets(encoder, generator, anchor_net), splits.class_names,
            )  # fmt: skip
            started_diagnostics = time.perf_counter()
            mixup_diagnostics(judge, base.diagnostics, 0.5)
            setup_s += time.perf_counter() - started_diagnostics
            if "module2" in to_time and plan.module2:  # each AnchorNet's own diagnostics
                from augkd.method.diagnostics import stage_diagnostics

                started_diagnostics = time.perf_counter()
                stage_diagnostics(judge, base.diagnostics, base.module1.latent_size)
                stage_diagnostics_s = time.perf_counter() - started_diagnostics
    else:
        mixup_nets = None

    # Module 3: a few optimizer steps and a val pass, with a trial's threads.
    configure_torch(trial_threads)
    student = build_student(base.student, classes).to(device)
    settings = base.module3
    optimizer = torch.optim.Adam(student.parameters(), lr=settings.lr)
    rng = torch.Generator().manual_seed(0)
    mixing = method.batches == "mixup" and mixup_nets is not None
    # A short epoch is timed whole (WHOLE_EPOCH_STEPS).
    per_epoch = module3_budget(settings, train_size).steps_per_epoch
    steps_per_call = per_epoch if per_epoch <= WHOLE_EPOCH_STEPS else 1

    def module3_step_s(
        nets: MixupNets | None, stage: str, teacher_term: str, share: float = 0.5
    ) -> float:
        shares = ce_shares(method, teacher_term, settings.ce_share, share, settings.teacher_fade)
        epoch = EpochSettings(
            share, shares, settings.kd_temperature, base.data.augment, settings.batch_size,
            steps_per_call,
        )  # fmt: skip

        def one_call() -> None:
            train_epoch(
                student, model, normalize, optimizer, splits.train_x, splits.train_y, epoch,
                rng, nets, precision,
            )  # fmt: skip

        return timed(stage, one_call, TIMED["module3"]) / steps_per_call

    # A step costs what its teacher term runs the teacher on (`none`: never), and whether it
    # builds x_mix (s < 1) or trains on [x ; x] (s = 1, after a x T). Each searched term is
    # timed both ways; the forecast weighs them (prepare/trial_steps.mixing_share).
    terms = searched_teacher_terms(space)
    nets_or_none = mixup_nets if mixing else None
    step_by_term = {term: module3_step_s(nets_or_none, "module3", term) for term in terms}
    plain_by_term = dict(step_by_term)
    if mixing:
        plain_by_term = {term: module3_step_s(mixup_nets, "module3", term, 1.0) for term in terms}
    step_s = sum(step_by_term.values()) / len(step_by_term)
    fresh: dict[str, float] = {}  # seconds of each stage a fresh seed runs
    student_step_s = step_by_term.get(settings.teacher_term, step_s)
    if fresh_seeds:  # the baselines' steps (student batches alone) and a fresh seed's stages
        if mixing:
            student_step_s = module3_step_s(None, "student", settings.teacher_term)
        # An evaluation run makes a fresh seed's Module 1 with a trial's threads.
        rates = {**seconds, **({"module1": fresh_module1_s} if fresh_module1_s else {})}
        for stage in ("module1", "encoder"):
            if stage in rates and plan.module1:
                fresh[stage] = units_of(stage, base) * rates[stage]
        if "module2" in seconds and plan.module2:
            grid = [units_of("module2", with_overrides(base, p)) for p in plan.module2_grid]
            rate = seconds.get("module2_rest", seconds["module2"])  # an evaluation run's
            fresh["module2"] = sum(grid) / len(grid) * rate + stage_diagnostics_s
    val_s = timed("val", lambda: evaluate(student, splits.val_x, splits.val_y, normalize), 1)
    firsts: set[str] = set()  # seeds whose first grid point (their own task's) is priced
    for stage, label, key, cached, units in planned:
        rate = seconds.get(stage, 0.0)
        if stage == "module2":
            seed = label.split(" ")[1]
            if seed in firsts:  # the rest of the grid: tasks with a trial's threads
                rate = seconds.get("module2_rest", rate)
            firsts.add(seed)
        peak = timed.peaks.get(stage, 0.0)
        costs.append(StageCost(stage, label, key, cached, units, rate, peak))
    for stage in per_trial:
        costs.append(
            StageCost(stage, "each trial, each seed", None, False, units_of(stage, base),
                      seconds[stage], timed.peaks.get(stage, 0.0), per_trial=True)
        )  # fmt: skip
    budget = module3_budget(settings, train_size)
    return {
        "stages": [asdict(cost) for cost in costs],
        "step_s": step_s,
        "step_s_by_teacher_term": step_by_term,
        "plain_step_s_by_teacher_term": plain_by_term,
        "trial_peak_mib": max(timed.peaks["module3"], timed.peaks["val"]),
        "val_s": val_s,
        "setup_s": setup_s,
        "task_setup_s": task_setup_s,
        "stage_diagnostics_s": stage_diagnostics_s,
        "train_images": train_size,
        "val_every": settings.val_interval() or budget.steps_per_epoch,
        "device": str(device),
        "precision": base.precision,
        "fresh_seed_s": fresh,
        "student_step_s": student_step_s,
        "calibration_s": time.perf_counter() - started,
    }


def calibrate_task(
    space: SearchSpace, cache_root: str, device: str, shared: int, trial: int, fresh: bool
) -> dict[str, Any]:
    """calibrate() on a worker, with the GPU Ray assigned it."""
    import ray

    return calibrate(space, cache_root, device, shared, trial, ray.get_gpu_ids(), fresh)
