"""A trial's diagnostics of Modules 1-2 (augkd.method.diagnostics computes them): the part that
depends on the stages only is a stage-cache artifact, kept once per stage-2 artifact; the x_mix
part is computed per trial (it depends on module3.b)."""

from __future__ import annotations

from augkd.basics.errors import ConfigError
from augkd.method.diagnostics import Diagnostics, Judge, mixup_diagnostics, stage_diagnostics
from augkd.method.mixup import first_share
from augkd.method.plans import methods_that
from augkd.method.stages import PreparedTrial
from augkd.storage.cache import StageCache
from augkd.trial.stage_keys import stage_keys


def trial_diagnostics(trial: PreparedTrial, cache: StageCache) -> Diagnostics:
    """Diagnostics of the frozen G, E (and A): the stage part once per stage-2 artifact
    (cached next to it), the x_mix part per trial (it depends on module3.b)."""
    config = trial.config
    if trial.stages.frozen_nets is None:
        raise ConfigError(
            f"method '{config.method}' trains no generator, so there is nothing to diagnose; "
            f"use --method {methods_that(lambda plan: plan.module1)}."
        )
    judge = trial_judge(trial)
    stage = Diagnostics.from_artifact(cached_stage_diagnostics(trial, cache, judge))
    share = first_share(config.module3, trial.plan, len(trial.splits.train_y))
    return stage.merged(mixup_diagnostics(judge, config.diagnostics, share))


def trial_judge(trial: PreparedTrial) -> Judge:
    """The teacher of a prepared trial, judging its val split and its frozen nets."""
    splits = trial.splits
    return Judge(
        trial.teacher.model, trial.teacher.normalize, splits.val_x, splits.val_y,
        trial.stages.frozen_nets, splits.class_names,
    )  # fmt: skip


def cached_stage_diagnostics(trial: PreparedTrial, cache: StageCache, judge: Judge) -> dict:
    """The stage part (``stage_diagnostics``) as a stage-cache artifact, kept under its key."""
    config = trial.config
    key = stage_keys(config, trial.teacher, trial.plan.module2).diagnostics
    return cache.get_or_create(
        "diagnostics",
        key,
        lambda: stage_diagnostics(
            judge, config.diagnostics, config.module1.latent_size
        ).to_artifact(),
    )
