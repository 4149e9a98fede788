"""The Ray tasks before the trials as jobs: each submitted without Ray's own retries, run
again by hand when its worker or node dies (a spot reclaim), up to ``stage_retries`` times;
one Ray's OOM killer ended, or one that keeps losing its worker, ends the search with one
sentence naming the keys that set its size, and the command that continues it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from augkd.basics.config import Config
from augkd.basics.errors import WorkersLostError
from augkd.method.memory import KILLED_FOR_MEMORY, stage_sizes
from augkd.storage.progress_files import ProgressFiles

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
class StageJob:
    """A task before the trials: its name, how to (re)submit it, and the config keys that set
    the memory it takes (for the sentence when it is killed for memory)."""

    name: str
    submit: Callable[[], Any]
    sizes: str
    ref: Any = None


def sizes_of(config: Config, module1: bool, encoder: bool, module2: bool) -> str:
    stages = [name for name, runs in (("module1", module1), ("encoder_adapt", encoder),
                                      ("module2", module2)) if runs]  # fmt: skip
    return stage_sizes(config, stages)


def gather(
    jobs: list[StageJob], retries: int, rerun: str | None, watch: ProgressFiles | None = None
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


def _ended(job: StageJob, kind: str, retries: int, again: str) -> WorkersLostError:
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
