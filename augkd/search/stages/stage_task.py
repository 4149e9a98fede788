"""What runs on a worker before the trials, as a Ray task with a trial's resources (so it
lands where trials land and sees what they see): the preflight (the GPU Ray gave it, the
object-store locations, the data, the teacher, the classes, the memory a trial needs) or one
seed's shared stages. Bad input comes back as an error, not an exception."""

from __future__ import annotations

import logging
from typing import Any

from augkd.basics.config import config_from_dict
from augkd.basics.errors import AugkdError
from augkd.method.plans import METHOD_PLANS
from augkd.search.stages.bucket_access import Location, check_locations

log = logging.getLogger(__name__)


def stage_task(
    base_config: dict[str, Any],
    cache_root: str,
    gpu_share: float,
    produce: bool,
    module2: bool,
    encoder: bool = False,
    locations: tuple[Location, ...] = (),
    progress: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Runs on a worker: the preflight (``produce`` False) or one seed's shared stages.
    ``progress``: (prefix, label) of the files its stages' progress goes to (augkd.basics.eta)."""
    import ray

    from augkd.hardware.gpu_check import gpu_stack, node_label
    from augkd.hardware.peaks import peak_memory, reset_peak
    from augkd.hardware.precision import MixedPrecision
    from augkd.hardware.runtime import (
        configure_torch,
        limit_gpu_memory,
        resolve_device,
        seed_everything,
    )
    from augkd.storage.cache import StageCache
    from augkd.storage.progress_files import ProgressFile
    from augkd.trial.pipeline import check_memory, load_inputs, produce_shared_stages

    summary: dict[str, Any] = {}
    try:
        config = config_from_dict(base_config)
        configure_torch(config.threads or _assigned_cpus())
        gpu_ids = ray.get_gpu_ids()
        device = resolve_device(config.device, gpu_ids)  # a GpuError if torch cannot use it
        limit_gpu_memory(device, gpu_share)
        reset_peak(device)
        cache = StageCache(cache_root)
        on_step = None
        if progress is not None:
            on_step = ProgressFile(cache.filesystem, *progress).on_step
        if produce:
            produce_shared_stages(
                config, cache, device, module2, log=log.info, with_encoder=encoder,
                on_step=on_step,
            )  # fmt: skip
        else:
            check_locations(list(locations), node_label())
            precision = MixedPrecision(config.precision, device)
            seed_everything(config.seed)
            teacher, splits = load_inputs(config, cache, device, precision, on_step)
            check_memory(config, METHOD_PLANS[config.method], teacher, splits, device, cache)
            summary = {
                "classes": len(splits.class_names),
                "train_images": len(splits.train_y),
                "teacher_arch": teacher.metadata.get("arch"),
            }
            if gpu_ids:
                summary["gpu_stack"] = gpu_stack().summary()
    except AugkdError as error:
        return {"error": str(error)}
    events = [(e.stage, e.key, e.hit, e.seconds) for e in cache.events]
    downloads = [(e.stage, e.key) for e in cache.events if e.downloaded]
    node = ray.get_runtime_context().get_node_id()
    return {
        "device": str(device), "node_id": node, "events": events, "downloads": downloads,
        "peak_memory": peak_memory(device), **summary,
    }  # fmt: skip


def _assigned_cpus() -> int:
    """The CPUs Ray gave this task (a worker process may have been started for another)."""
    import ray

    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
