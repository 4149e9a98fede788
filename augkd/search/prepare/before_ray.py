"""Everything a search can check before Ray starts: bad input then costs seconds, not
a cluster start, and leaves no half-made search (no parent run RUNNING) behind.

The space file itself (parse errors, unknown keys, bounds) is checked by
``requested_space``; these are the places the search writes and the resources it asks for.
"""

from __future__ import annotations

from augkd.basics.config import with_overrides
from augkd.basics.errors import AugkdError, ConfigError
from augkd.search.prepare.space import SearchSpace, recorded_space
from augkd.search.records.results import load_results
from augkd.search.records.tracking_store import check_tracking_uri
from augkd.storage.files import join_uri, uri_is_file
from augkd.storage.locations import RESULTS_FILE
from augkd.storage.outputs import check_folder_writable


def check_before_ray(space: SearchSpace, storage: str, tracking_uri: str) -> None:
    check_folder_writable(storage, "--storage")
    if "://" in storage:  # best configs are exported to a local folder
        check_folder_writable("augkd_exports", "the export folder augkd_exports/")
    check_tracking_uri(tracking_uri)
    check_gpu_requested_with_device(space)


SIZE_KEYS = ("module1.batch_size", "module1.generator_width", "data.image_size")
"""Searched keys whose largest value the check before Ray sizes Module 1 at."""


def check_memory_before_ray(space: SearchSpace, address: str | None) -> None:
    """On a local Ray the trials run on this machine: a teacher training or Module 1 that
    cannot fit here is refused now (at the largest searched size), not after Ray started and
    the kernel killed a worker. On a cluster the preflight checks on a worker instead."""
    import torch

    from augkd.hardware.runtime import resolve_device
    from augkd.method.memory import check_config_before_work
    from augkd.search.run.ray_session import requested_address

    if requested_address(address) is not None:
        return
    largest = {}
    for key in SIZE_KEYS:
        param = space.params.get(key)
        if param is not None:
            values = param.choices if param.type == "categorical" else [param.high]
            numbers = [v for v in values or [] if isinstance(v, (int, float))]
            if numbers:
                largest[key] = int(max(numbers))
    config = with_overrides(space.base_config_object(), largest)
    try:
        device = resolve_device(config.device)
    except AugkdError:  # e.g. device=cuda with resources.gpu: the workers' own check
        device = torch.device("cpu")
    check_config_before_work(config, device, module1_copies=module1_at_once(space))


def module1_at_once(space: SearchSpace, cpus: int | None = None) -> int:
    """How many Module 1s a search on a local Ray of ``cpus`` CPUs runs at once: one
    shared-stage task per seed (each given its share of the CPUs, at least resources.cpu), or,
    when a key Module 1 depends on is searched, one per concurrent trial."""
    import os

    from augkd.search.prepare.shared_plan import plan_shared_stages

    cpus = cpus or os.cpu_count() or 1
    plan = plan_shared_stages(space)
    per_task = max(space.resources.cpu, 1e-3)
    if plan.module1:
        per_task = max(per_task, float(int(cpus // len(plan.seeds))))
        wanted = len(plan.seeds)
    else:
        wanted = space.max_concurrent
    return max(1, min(wanted, int(cpus // per_task)))


def check_resumable(search_path: str) -> None:
    """--resume needs Tune's saved experiment, and a results table that can be read."""
    from ray import tune

    if not tune.Tuner.can_restore(search_path):
        raise ConfigError(
            f"--resume: '{search_path}' holds no saved search to resume; check --name and "
            "--storage, or run it again without --resume."
        )
    if uri_is_file(join_uri(search_path, RESULTS_FILE)):
        load_results(search_path)  # a damaged table is named now, not inside Tune


def check_fixed_keys_on_resume(space: SearchSpace, search_path: str) -> None:
    """A key the saved search samples cannot be fixed by a --set added on resume: its
    restored searcher would still sample it, overriding the value in every trial."""
    recorded = (recorded_space(search_path) or {}).get("params") or {}
    newly_fixed = sorted(set(recorded) - set(space.params))
    if newly_fixed:
        raise ConfigError(
            f"--set {newly_fixed[0]}: the search being resumed samples this key, and a resumed "
            "search keeps its space; drop the --set, or start a new search to fix it."
        )


def check_gpu_requested_with_device(space: SearchSpace) -> None:
    """`device: cuda` needs trials that get a GPU; whether the workers have one is the
    workers' own check (the driver may be a CPU head node of a GPU cluster)."""
    devices = {str(space.base_resolved.get("device", "auto"))}
    if "device" in space.params:
        devices |= {str(choice) for choice in space.params["device"].choices or []}
    cuda = sorted(device for device in devices if device.startswith("cuda"))
    if cuda and space.resources.gpu == 0:
        raise ConfigError(
            f"config key 'device' is '{cuda[0]}' but resources.gpu is 0, so no trial gets a GPU; "
            "set resources.gpu (1, or 0.5 to share one) or device=auto."
        )
