"""Before the first trial: a preflight on a worker, then the shared stages (which ones:
prepare/shared_plan.py; the task: stage_task.py; its re-runs: stage_jobs.py).

Both are Ray tasks with a trial's resources, so they land where trials land (a GPU worker,
not the head) and see what trials see: the data (e.g. on S3), the teacher, the GPU. The
preflight checks that torch can use the GPU Ray gave it (augkd.hardware.gpu_check) and that
every bucket prefix the search names can be read (the storage written) in the node's region
(stages/bucket_access.py), loads the data, the teacher and the classes, and stops the search
with one sentence if any of it fails. Then one task per seed produces what every trial would
otherwise wait for: the decoded data, the built-in teacher, Module 1 (hours at release size)
and Module 2 — for the base setting when none of its keys are searched, or for every point of
a small grid when its searched keys are all categorical (then trials share the AnchorNets
instead of training one each before their first report, where ASHA cannot stop them). Trials
then only read them from the stage cache. A task whose worker or node dies (a spot reclaim) is
run again, stage_retries times.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from augkd.basics.config import Config, config_from_dict, with_overrides
from augkd.basics.errors import PreflightError
from augkd.basics.eta import LinePrinter
from augkd.hardware.peaks import PEAK_GPU_RESERVED, PEAK_RSS
from augkd.search.prepare.shared_plan import SharedStages, plan_shared_stages
from augkd.search.prepare.space import SearchSpace
from augkd.search.stages.bucket_access import Location, named_locations
from augkd.search.stages.stage_jobs import StageJob, gather, sizes_of
from augkd.search.stages.stage_task import stage_task
from augkd.storage.locations import storage_of_stage_cache
from augkd.storage.progress_files import ProgressFiles


def _check_fits(space: SearchSpace, available: dict[str, float]) -> None:
    for key, name in (("gpu", "GPU"), ("cpu", "CPU")):
        wanted = getattr(space.resources, key)
        if wanted > available.get(name, 0.0):
            raise PreflightError(
                f"Each trial asks for resources.{key}={wanted:g}, but the local Ray cluster has "
                f"{available.get(name, 0.0):g} {name}s; set --set resources.{key}=... to fit, or "
                "pass --address of a cluster that has them."
            )


def run_before_trials(
    space: SearchSpace,
    cache_root: str,
    echo=print,
    local_cluster: bool = False,
    rerun: str | None = None,
) -> SharedStages:
    """The preflight, then the shared stages; raises PreflightError before any trial.

    ``local_cluster``: Ray was started here and cannot grow, so a trial asking for more than
    it has (a GPU on a laptop) would wait forever: refused at once instead. ``rerun``: the
    command that continues the search, for the sentence when a task's workers keep dying."""
    import ray

    if local_cluster:
        _check_fits(space, ray.cluster_resources())
    plan = plan_shared_stages(space)
    started = time.perf_counter()
    # gather re-runs a task whose worker or node died (not one that raised, nor one killed for
    # memory); Ray's max_retries would re-run an OOM-killed task for ever.
    task = ray.remote(num_cpus=space.resources.cpu, num_gpus=space.resources.gpu, max_retries=0)(
        stage_task
    )
    first = with_overrides(config_from_dict(space.base_resolved), {"seed": plan.seeds[0]})
    locations = tuple(named_locations(first, storage_of_stage_cache(cache_root)))
    watch = ProgressFiles(cache_root, LinePrinter(echo))
    try:
        _produce(space, plan, task, first, cache_root, locations, watch, echo, local_cluster,
                 rerun)  # fmt: skip
    finally:
        watch.close()
    plan.seconds = time.perf_counter() - started
    for note in plan.notes:
        echo(f"[search] note: {note}")
    preflight = plan.preflight
    where = preflight["device"] + (
        f"; {preflight['gpu_stack']}" if "gpu_stack" in preflight else ""
    )
    echo(f"[search] preflight passed on a worker ({where}); shared stages ready "
         f"after {plan.seconds:.0f}s{_peak_text(plan.peak_memory)}")  # fmt: skip
    return plan


def _produce(
    space: SearchSpace,
    plan: SharedStages,
    task: Any,
    first: Config,
    cache_root: str,
    locations: tuple[Location, ...],
    watch: ProgressFiles,
    echo,
    local_cluster: bool,
    rerun: str | None,
) -> None:
    """The preflight task, then the shared stages' tasks, their progress shown meanwhile."""
    import ray

    retries, share = space.stage_retries, space.resources.gpu
    progress = (watch.path_for("preflight"), f"seed {first.seed}")
    preflight_job = StageJob(
        "preflight",
        lambda: task.remote(first.to_dict(), cache_root, share, False, False,
                            locations=locations, progress=progress),
        sizes_of(first, False, False, False),
    )  # fmt: skip
    (preflight,) = gather([preflight_job], retries, rerun, watch)
    if "error" in preflight:
        raise PreflightError(f"Preflight on a worker failed before any trial: {preflight['error']}")
    plan.preflight = preflight
    plan.peak_memory["preflight"] = preflight["peak_memory"]
    plan.produced.extend(preflight["events"])
    plan.downloads.extend(preflight["downloads"])
    if plan.module1:
        names = "Module 1" + (", encoder adaptation" if plan.encoder else "")
        names += " and Module 2" if plan.module2 else ""
        echo(f"[search] producing shared stages before the first trial: {names} for seeds "
             f"{plan.seeds}")  # fmt: skip
        # Module 1 is the longest stage and nothing else runs yet: on a local cluster, give
        # each seed's task its share of every CPU (torch uses them as threads).
        cpus = space.resources.cpu
        if local_cluster:
            total = ray.cluster_resources().get("CPU", cpus)
            cpus = max(cpus, float(int(total // len(plan.seeds))))
        first_point = plan.module2_grid[0]
        configs = [with_overrides(first, {"seed": s, **first_point}) for s in plan.seeds]
        jobs = [
            StageJob(
                f"shared-stage (seed {c.seed})",
                partial(
                    task.options(num_cpus=cpus).remote,
                    c.to_dict(), cache_root, share, True, plan.module2, plan.encoder,
                    progress=(watch.path_for(f"seed{c.seed}"), f"seed {c.seed}"),
                ),
                sizes_of(c, True, plan.encoder, plan.module2),
            )
            for c in configs
        ]  # fmt: skip
        _run_stage_tasks(jobs, plan, retries, rerun, watch)
        # Then the rest of the Module-2 grid, every point of every seed at once.
        rest = [(config, point) for config in configs for point in plan.module2_grid[1:]]
        if plan.module2 and rest:
            echo(f"[search] training {len(rest) + len(configs)} AnchorNets (the Module-2 grid "
                 f"{', '.join(plan.module2_grid[0])} x {len(plan.seeds)} seeds)")  # fmt: skip
            jobs = [
                StageJob(
                    f"Module-2 (seed {c.seed}, {point})",
                    partial(task.remote, with_overrides(c, point).to_dict(), cache_root, share,
                            True, True, plan.encoder,
                            progress=(watch.path_for(f"grid{n}"),
                                      f"seed {c.seed}, {_point_label(point)}")),
                    sizes_of(c, False, False, True),
                )
                for n, (c, point) in enumerate(rest)
            ]  # fmt: skip
            _run_stage_tasks(jobs, plan, retries, rerun, watch)


def _peak_text(peaks: dict[str, dict[str, float]]) -> str:
    """', peak memory of a task 1.2 GiB RSS (+ 3.4 GiB GPU reserved)': the largest."""
    if not peaks:
        return ""
    rss = max(peak.get(PEAK_RSS, 0.0) for peak in peaks.values())
    text = f", peak memory of a task {rss / 1024:.2f} GiB RSS"
    gpu = max(peak.get(PEAK_GPU_RESERVED, 0.0) for peak in peaks.values())
    return text + (f" and {gpu / 1024:.2f} GiB GPU reserved" if gpu else "")


def _point_label(point: dict[str, Any]) -> str:
    return " ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point.items())


def _run_stage_tasks(
    jobs: list[StageJob],
    plan: SharedStages,
    retries: int,
    rerun: str | None,
    watch: ProgressFiles | None = None,
) -> None:
    for job, outcome in zip(jobs, gather(jobs, retries, rerun, watch), strict=True):
        name = job.name
        if "error" in outcome:
            raise PreflightError(f"A shared stage failed before any trial: {outcome['error']}")
        plan.peak_memory[name] = outcome["peak_memory"]
        plan.produced.extend(outcome["events"])
        plan.downloads.extend(outcome["downloads"])
