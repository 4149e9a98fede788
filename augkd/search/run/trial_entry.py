"""The one entry of a search's trial, shared by Tune's trainable (run/trainable.py) and the
evaluation's runs (answer/evaluate.py), so that both run a config the same way: the config
from the base and the sampled values, the device Ray assigned (CPU when none), the run
settings pinned (augkd.trial.reproduce), the trial on the search's stage cache, and bad
input or divergence turned into an error result: it would fail again on every retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
import torch

from augkd.basics.config import Config, config_from_dict, with_overrides
from augkd.basics.errors import AugkdError
from augkd.basics.seeds import trial_seeds
from augkd.hardware.runtime import limit_gpu_memory, resolve_device
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import TrialResult, run_trial
from augkd.trial.reproduce import pin_run_settings

Hooks = Callable[[Config, torch.device], dict[str, Any]]
"""Given the pinned config and the device: more keyword arguments of run_trial (on_epoch,
resume_state, on_diagnostics), the caller's way to watch the trial."""


@dataclass
class TrialEnd:
    """How a trial entered with ``run_search_trial`` ended: its result, or its error."""

    config: Config | None
    """The config it ran, pinned; None when the config or the device was refused."""
    result: TrialResult | None = None
    error: str | None = None
    ran: bool = False
    """Whether the trial itself started (its error came from running it)."""


def ray_gpu_ids() -> list | None:
    """The GPUs Ray assigned to this worker; None outside Ray (then config.device decides)."""
    return ray.get_gpu_ids() if ray.is_initialized() else None


def run_search_trial(
    base_config: dict[str, Any],
    params: dict[str, Any],
    cache_root: str,
    gpu_share: float = 0.0,
    seeds: int = 1,
    log: Callable[[str], None] = print,
    hooks: Hooks | None = None,
) -> TrialEnd:
    """``params`` (dotted config keys) over ``base_config``, run on ``seeds`` seeds from the
    config's (objective.seeds) in lockstep; an AugkdError ends it as a TrialEnd's error."""
    try:
        config = with_overrides(config_from_dict(base_config), params)
        device = resolve_device(config.device, ray_gpu_ids())
        config = pin_run_settings(config, cache_root, device)
    except AugkdError as error:
        return TrialEnd(None, error=str(error))
    limit_gpu_memory(device, gpu_share)
    watch = hooks(config, device) if hooks is not None else {}
    try:
        result = run_trial(
            config, cache=StageCache(cache_root), log=log, device=device,
            seeds=trial_seeds(config.seed, seeds), **watch,
        )  # fmt: skip
    except AugkdError as error:
        return TrialEnd(config, error=str(error), ran=True)
    return TrialEnd(config, result, ran=True)


def trial_stage_sizes(config: Config) -> str:
    """The stages a trial of ``config`` runs and the config keys that set their memory (for
    the sentence when Ray kills one of its runs for memory)."""
    from augkd.method.memory import stage_sizes, trial_stages
    from augkd.method.plans import METHOD_PLANS

    plan = METHOD_PLANS[config.method]
    return stage_sizes(
        config, trial_stages(config, plan.module1, plan.module2, plan.batches == "mixup")
    )
