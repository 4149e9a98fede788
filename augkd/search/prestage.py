"""Before the first trial: a preflight on a worker, then the shared stages.

Both are Ray tasks with a trial's resources, so they land where trials land (a GPU worker,
not the head) and see what trials see: the data (e.g. on S3), the teacher, the GPU. The
preflight loads the data, the teacher and the classes, and stops the search with one sentence
if any is missing. Then one task per seed produces what every trial would otherwise wait for:
the decoded data, the built-in teacher, Module 1 (hours at release size) and Module 2 when none
of its keys are searched. Trials then only read them from the stage cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from augkd.config import config_from_dict, with_overrides
from augkd.errors import AugkdError, PreflightError
from augkd.method.plans import METHOD_PLANS
from augkd.search.space import SearchSpace

log = logging.getLogger(__name__)

MODULE1_INPUTS = ("seed", "precision", "data.", "teacher.", "student.", "module1.")
"""Config keys a Module-1 artifact depends on (with the teacher, which data and teacher.* set)."""
ENCODER_INPUTS = (*MODULE1_INPUTS, "encoder_adapt.")
MODULE2_INPUTS = (*ENCODER_INPUTS, "module2.")
MAX_SEEDS = 16


@dataclass
class SharedStages:
    seeds: list[int]
    module1: bool
    module2: bool
    encoder: bool = False
    """The adapted encoder (encoder_adapt.epochs > 0 and none of its keys searched)."""
    preflight: dict[str, Any] = field(default_factory=dict)
    produced: list[tuple[str, str, bool, float]] = field(default_factory=list)
    """(stage, key, was a cache hit, seconds) of every artifact the tasks touched."""
    downloads: list[tuple[str, str]] = field(default_factory=list)
    """(stage, key) of what the tasks fetched from object storage into a node's copies."""
    seconds: float = 0.0


def _depends_on(key: str, inputs: tuple[str, ...]) -> bool:
    return any(key == name or (name.endswith(".") and key.startswith(name)) for name in inputs)


def plan_shared_stages(space: SearchSpace) -> SharedStages:
    """Which stages every trial shares: Module 1 per seed unless a key it depends on is
    searched, and Module 2 too when none of its own keys is."""
    base = space.base_config_object()
    methods = [base.method]
    if "method" in space.params:
        methods = list(space.params["method"].choices or [])
    seeds = [base.seed]
    seed_param = space.params.get("seed")
    if seed_param is not None:
        if seed_param.type == "categorical":
            seeds = [int(s) for s in seed_param.choices or []]
        elif seed_param.high is not None and seed_param.low is not None:
            seeds = list(range(int(seed_param.low), int(seed_param.high) + 1))
    searched = [key for key in space.params if key != "seed"]
    module1 = (
        any(METHOD_PLANS[m].module1 for m in methods)
        and not any(_depends_on(key, MODULE1_INPUTS) for key in searched)
        and len(seeds) <= MAX_SEEDS
    )
    module2 = (
        module1
        and any(METHOD_PLANS[m].module2 for m in methods)
        and not any(_depends_on(key, MODULE2_INPUTS) for key in searched)
    )
    encoder = (
        module1
        and base.encoder_adapt.epochs > 0
        and not any(_depends_on(key, ENCODER_INPUTS) for key in searched)
    )
    return SharedStages(seeds, module1, module2, encoder)


def _check_fits(space: SearchSpace, available: dict[str, float]) -> None:
    for key, name in (("gpu", "GPU"), ("cpu", "CPU")):
        wanted = getattr(space.resources, key)
        if wanted > available.get(name, 0.0):
            raise PreflightError(
                f"Each trial asks for resources.{key}={wanted:g}, but the local Ray cluster has "
                f"{available.get(name, 0.0):g} {name}s; set --set resources.{key}=... to fit, or "
                "pass --address of a cluster that has them."
            )


def _stage_task(
    base_config: dict[str, Any],
    cache_root: str,
    gpu_share: float,
    produce: bool,
    module2: bool,
    encoder: bool = False,
) -> dict[str, Any]:
    """Runs on a worker: the preflight (``produce`` False) or one seed's shared stages."""
    import ray

    from augkd.cache import StageCache
    from augkd.pipeline import load_inputs, produce_shared_stages
    from augkd.precision import MixedPrecision
    from augkd.runtime import limit_gpu_memory, resolve_device

    try:
        config = config_from_dict(base_config)
        device = resolve_device(config.device, ray.get_gpu_ids())
        limit_gpu_memory(device, gpu_share)
        cache = StageCache(cache_root)
        if produce:
            produce_shared_stages(
                config, cache, device, module2, log=log.info, with_encoder=encoder
            )
            summary: dict[str, Any] = {}
        else:
            teacher, splits = load_inputs(
                config, cache, device, MixedPrecision(config.precision, device)
            )
            summary = {
                "classes": len(splits.class_names),
                "train_images": len(splits.train_y),
                "teacher_arch": teacher.metadata.get("arch"),
            }
    except AugkdError as error:
        return {"error": str(error)}
    events = [(e.stage, e.key, e.hit, e.seconds) for e in cache.events]
    downloads = [(e.stage, e.key) for e in cache.events if e.downloaded]
    node = ray.get_runtime_context().get_node_id()
    return {
        "device": str(device), "node_id": node, "events": events, "downloads": downloads,
        **summary,
    }  # fmt: skip


def prepare_search(
    space: SearchSpace, cache_root: str, echo=print, local_cluster: bool = False
) -> SharedStages:
    """The preflight, then the shared stages; raises PreflightError before any trial.

    ``local_cluster``: Ray was started here and cannot grow, so a trial asking for more than
    it has (a GPU on a laptop) would wait forever: refused at once instead."""
    import ray

    if local_cluster:
        _check_fits(space, ray.cluster_resources())
    plan = plan_shared_stages(space)
    started = time.perf_counter()
    task = ray.remote(num_cpus=space.resources.cpu, num_gpus=space.resources.gpu, max_retries=3)(
        _stage_task
    )
    share = space.resources.gpu
    first = with_overrides(config_from_dict(space.base_resolved), {"seed": plan.seeds[0]})
    preflight = ray.get(task.remote(first.to_dict(), cache_root, share, False, False))
    if "error" in preflight:
        raise PreflightError(f"Preflight on a worker failed before any trial: {preflight['error']}")
    plan.preflight = preflight
    plan.produced.extend(preflight["events"])
    plan.downloads.extend(preflight["downloads"])
    if plan.module1:
        names = "Module 1" + (", encoder adaptation" if plan.encoder else "")
        names += " and 2" if plan.module2 else ""
        echo(f"[search] producing shared stages before the first trial: {names} for seeds "
             f"{plan.seeds}")  # fmt: skip
        configs = [with_overrides(first, {"seed": seed}).to_dict() for seed in plan.seeds]
        outcomes = ray.get(
            [task.remote(c, cache_root, share, True, plan.module2, plan.encoder) for c in configs]
        )
        for outcome in outcomes:
            if "error" in outcome:
                raise PreflightError(f"A shared stage failed before any trial: {outcome['error']}")
            plan.produced.extend(outcome["events"])
            plan.downloads.extend(outcome["downloads"])
    plan.seconds = time.perf_counter() - started
    echo(f"[search] preflight passed on a worker ({preflight['device']}); shared stages ready "
         f"after {plan.seconds:.0f}s")  # fmt: skip
    return plan
