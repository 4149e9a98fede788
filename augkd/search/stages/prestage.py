"""Before the first trial: a preflight on a worker, then the shared stages.

Both are Ray tasks with a trial's resources, so they land where trials land (a GPU worker,
not the head) and see what trials see: the data (e.g. on S3), the teacher, the GPU. The
preflight checks that torch can use the GPU Ray gave it (augkd.hardware.gpu_check) and that every
bucket prefix the search names can be read (the storage written) in the node's region
(augkd.search.prepare.access), loads the data, the teacher and the classes, and stops the search with
one sentence if any of it fails. Then one task per seed produces what every trial would
otherwise wait for: the decoded data, the built-in teacher, Module 1 (hours at release size)
and Module 2 — for the base setting when none of its keys are searched, or for every point of
a small grid when its searched keys are all categorical (then trials share the AnchorNets
instead of training one each before their first report, where ASHA cannot stop them). Trials
then only read them from the stage cache. A task whose worker or node dies (a spot reclaim) is
run again, stage_retries times.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from augkd.basics.config import Config, config_from_dict, with_overrides
from augkd.basics.errors import AugkdError, PreflightError, WorkersLostError
from augkd.basics.eta import LinePrinter, ProgressFiles
from augkd.hardware.peaks import PEAK_GPU_RESERVED, PEAK_RSS
from augkd.method.plans import METHOD_PLANS
from augkd.search.prepare.access import Location, check_locations, named_locations
from augkd.search.prepare.space import SearchSpace
from augkd.storage.locations import storage_of_stage_cache
from augkd.trial.memory import KILLED_FOR_MEMORY, stage_sizes

log = logging.getLogger(__name__)

MODULE1_INPUTS = ("seed", "precision", "data.", "teacher.", "student.", "module1.")
"""Config keys a Module-1 artifact depends on (with the teacher, which data and teacher.* set)."""
ENCODER_INPUTS = (*MODULE1_INPUTS, "encoder_adapt.")
MODULE2_INPUTS = (*ENCODER_INPUTS, "module2.")
MAX_SEEDS = 16
MAX_SHARED_ANCHOR_NETS = 64
"""At most this many Module-2 artifacts (grid points x seeds) are produced before a search."""


@dataclass
class SharedStages:
    seeds: list[int]
    module1: bool
    module2: bool
    encoder: bool = False
    """The adapted encoder (encoder_adapt.epochs > 0 and none of its keys searched)."""
    module2_grid: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    """The Module-2 settings produced per seed when ``module2``: ``[{}]`` is the base's alone."""
    notes: list[str] = field(default_factory=list)
    """What the plan could not share, and how to make it shareable (printed by the search)."""
    preflight: dict[str, Any] = field(default_factory=dict)
    produced: list[tuple[str, str, bool, float]] = field(default_factory=list)
    """(stage, key, was a cache hit, seconds) of every artifact the tasks touched."""
    downloads: list[tuple[str, str]] = field(default_factory=list)
    """(stage, key) of what the tasks fetched from object storage into a node's copies."""
    seconds: float = 0.0
    peak_memory: dict[str, dict[str, float]] = field(default_factory=dict)
    """Task name -> its peak memory in MiB (augkd.trial.memory: process RSS, and CUDA's peaks)."""


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
    # Each trial also runs the next objective.seeds - 1 seeds: their stages are shared too.
    seeds = sorted({seed + k for seed in seeds for k in range(space.objective.seeds)})
    searched = [key for key in space.params if key != "seed"]
    module1 = (
        any(METHOD_PLANS[m].module1 for m in methods)
        and not any(_depends_on(key, MODULE1_INPUTS) for key in searched)
        and len(seeds) <= MAX_SEEDS
    )
    upstream_of_module2 = [k for k in searched if _depends_on(k, ENCODER_INPUTS)]
    anchors = module1 and any(METHOD_PLANS[m].module2 for m in methods) and not upstream_of_module2
    grid, notes = _module2_grid(space, [k for k in searched if k.startswith("module2.")])
    module2 = anchors and grid is not None and len(grid) * len(seeds) <= MAX_SHARED_ANCHOR_NETS
    if anchors and grid is not None and not module2:
        notes.append(
            f"the Module-2 grid has {len(grid)} points x {len(seeds)} seeds, more than "
            f"{MAX_SHARED_ANCHOR_NETS} AnchorNets to train before the search: each trial trains "
            "its own before its first report; use fewer categorical choices to share them"
        )
    encoder = (
        module1
        and base.encoder_adapt.epochs > 0
        and not any(_depends_on(key, ENCODER_INPUTS) for key in searched)
    )
    return SharedStages(seeds, module1, module2, encoder, grid if module2 else [{}], notes)


def _module2_grid(
    space: SearchSpace, keys: list[str]
) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """Every combination of the searched Module-2 keys, when all are unconditional
    categoricals (a grid the stage cache can hold); None, with a note, otherwise."""
    if not keys:
        return [{}], []
    continuous = [k for k in keys if space.params[k].type != "categorical" or space.params[k].when]
    if continuous:
        return None, [
            f"{', '.join(continuous)} {'is' if len(continuous) == 1 else 'are'} searched on a "
            "continuous (or conditional) scale, so each trial trains its own AnchorNet before "
            "its first report, where ASHA cannot stop it; search Module 2 on a small "
            "categorical grid to train each AnchorNet once, before the trials"
        ]
    choices = [space.params[k].choices or [] for k in keys]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*choices)], []


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
    locations: tuple[Location, ...] = (),
    progress: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Runs on a worker: the preflight (``produce`` False) or one seed's shared stages.
    ``progress``: (prefix, label) of the files its stages' progress goes to (augkd.basics.eta)."""
    import ray

    from augkd.basics.eta import ProgressFile
    from augkd.hardware.gpu_check import gpu_stack, node_label
    from augkd.hardware.peaks import peak_memory, reset_peak
    from augkd.hardware.precision import MixedPrecision
    from augkd.hardware.runtime import configure_torch, limit_gpu_memory, resolve_device
    from augkd.storage.cache import StageCache
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
            teacher, splits = load_inputs(
                config, cache, device, MixedPrecision(config.precision, device), on_step
            )
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


LOST_WORKER = {
    "NodeDiedError": "its node died (a spot reclaim, or a crash)",
    "WorkerCrashedError": "its worker process died",
}
"""Ray's errors for a task whose worker went away (run again up to stage_retries times), and
what each means."""
OOM_KILL = "OutOfMemoryError"
"""Ray's error for a task its OOM killer ended: never run again (the same stage at the same
size would be killed again, and Ray's own retries of it never end)."""
POLL_S = 2.0
"""How often the driver reads the stage tasks' progress files while it waits for them."""


@dataclass
class _StageJob:
    """A task before the trials: its name, how to (re)submit it, and the config keys that set
    the memory it takes (for the sentence when it is killed for memory)."""

    name: str
    submit: Callable[[], Any]
    sizes: str
    ref: Any = None


def _sizes(config: Config, module1: bool, encoder: bool, module2: bool) -> str:
    stages = [name for name, runs in (("module1", module1), ("encoder_adapt", encoder),
                                      ("module2", module2)) if runs]  # fmt: skip
    return stage_sizes(config, stages)


def _get(
    jobs: list[_StageJob], retries: int, rerun: str | None, watch: ProgressFiles | None = None
) -> list[dict[str, Any]]:
    """ray.get of tasks before the trials. A task whose node or worker died runs again up to
    ``retries`` times, then ends the search with one sentence and the command that continues;
    one Ray killed for memory ends it at once, naming the keys that set its size. (Ray's own
    max_retries would re-run an OOM-killed task without end: tasks are submitted without.)
    ``watch``: the tasks' progress, shown while waiting."""
    import ray

    for job in jobs:
        job.ref = job.submit()
    again = f"so continue the search with: {rerun}" if rerun else "run the same command again"
    outcomes: list[dict[str, Any]] = []
    for job in jobs:
        lost = 0
        while True:
            try:
                while watch is not None and not ray.wait([job.ref], timeout=POLL_S)[0]:
                    watch.poll()
                if watch is not None:
                    watch.poll()  # its last updates, before the next task's
                outcomes.append(ray.get(job.ref))
                break
            except ray.exceptions.RayError as error:
                kind = type(error).__name__
                if kind not in LOST_WORKER and kind != OOM_KILL:
                    raise  # the task itself failed: a defect, with its traceback
                if kind in LOST_WORKER and lost < retries:
                    lost += 1
                    job.ref = job.submit()
                    continue
                for other in jobs:
                    ray.cancel(other.ref)  # finished work stays cached; the rest is not waited for
                raise _ended(job, kind, retries, again) from None
    return outcomes


def _ended(job: _StageJob, kind: str, retries: int, again: str) -> WorkersLostError:
    """The sentence of a task that Ray killed for memory, or lost its worker too often."""
    if kind == OOM_KILL:
        return WorkersLostError(
            f"Ray killed the {job.name} task {KILLED_FOR_MEMORY} ({job.sizes}); the stages it "
            f"finished stay cached: lower that size (or free memory on the node), then "
            f"{again.removeprefix('so ')}"
        )
    cause = LOST_WORKER[kind]
    if kind == "WorkerCrashedError":  # how a kill by the kernel's OOM killer shows
        cause += f" (the kernel kills one that runs out of memory; {job.sizes})"
    return WorkersLostError(
        f"The {job.name} task lost its worker {retries + 1} times (stage_retries={retries}), "
        f"the last time because {cause}; the stages it finished stay cached, {again}"
    )


def prepare_search(
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
    # _get re-runs a task whose worker or node died (not one that raised, nor one killed for
    # memory); Ray's max_retries would re-run an OOM-killed task for ever.
    task = ray.remote(num_cpus=space.resources.cpu, num_gpus=space.resources.gpu, max_retries=0)(
        _stage_task
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
    preflight_job = _StageJob(
        "preflight",
        lambda: task.remote(first.to_dict(), cache_root, share, False, False,
                            locations=locations, progress=progress),
        _sizes(first, False, False, False),
    )  # fmt: skip
    (preflight,) = _get([preflight_job], retries, rerun, watch)
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
            _StageJob(
                f"shared-stage (seed {c.seed})",
                partial(
                    task.options(num_cpus=cpus).remote,
                    c.to_dict(), cache_root, share, True, plan.module2, plan.encoder,
                    progress=(watch.path_for(f"seed{c.seed}"), f"seed {c.seed}"),
                ),
                _sizes(c, True, plan.encoder, plan.module2),
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
                _StageJob(
                    f"Module-2 (seed {c.seed}, {point})",
                    partial(task.remote, with_overrides(c, point).to_dict(), cache_root, share,
                            True, True, plan.encoder,
                            progress=(watch.path_for(f"grid{n}"),
                                      f"seed {c.seed}, {_point_label(point)}")),
                    _sizes(c, False, False, True),
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
    jobs: list[_StageJob],
    plan: SharedStages,
    retries: int,
    rerun: str | None,
    watch: ProgressFiles | None = None,
) -> None:
    for job, outcome in zip(jobs, _get(jobs, retries, rerun, watch), strict=True):
        name = job.name
        if "error" in outcome:
            raise PreflightError(f"A shared stage failed before any trial: {outcome['error']}")
        plan.peak_memory[name] = outcome["peak_memory"]
        plan.produced.extend(outcome["events"])
        plan.downloads.extend(outcome["downloads"])
