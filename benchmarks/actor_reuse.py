"""Speed goal: reusing a finished trial's worker process (the space's ``reuse_actors``, on by
default) makes the trial phase of a search cheaper than a fresh process per trial.

    OMP_NUM_THREADS=1 python benchmarks/actor_reuse.py [--space fonts] [--trials 8] [--repeats 2]

Each arm is the same --smoke-test search (FIFO, every trial to its end) on one storage, so the
shared stages come from the stage cache after a first, untimed search; the arms alternate
(on, off, on, off, ...) so that the machine's drift falls on both. Prints each search's
seconds and the median ratio off/on; only the ratio is meaningful on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import ray

from augkd.search.run.runner import SearchOptions, run_search
from augkd.storage.locations import sqlite_tracking_uri


def timed_search(space: str, storage: Path, name: str, trials: int, reuse: bool) -> float:
    options = SearchOptions(
        space=space, storage=str(storage), name=name, smoke_test=True, num_samples=trials,
        tracking_uri=sqlite_tracking_uri(storage), address="local",
        overrides=["scheduler.name=fifo", f"reuse_actors={str(reuse).lower()}"],
    )  # fmt: skip
    start = time.perf_counter()
    run_search(options, echo=lambda *a, **k: None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="fonts")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        storage = Path(folder)
        timed_search(args.space, storage, "warm-up", 1, True)  # the shared stages, cached
        for repeat in range(args.repeats):
            for reuse in (True, False):
                name = f"reuse-{str(reuse).lower()}-{repeat}"
                took = timed_search(args.space, storage, name, args.trials, reuse)
                seconds[reuse].append(took)
                print(f"{name:<18} {took:6.1f} s", flush=True)
    ray.shutdown()
    ratio = statistics.median(
        off / on for on, off in zip(seconds[True], seconds[False], strict=True)
    )
    print(
        f"{args.space} --smoke-test, {args.trials} trials: reuse_actors off/on = {ratio:.2f}x "
        f"(on {statistics.median(seconds[True]):.1f} s, off {statistics.median(seconds[False]):.1f} s)"
    )


if __name__ == "__main__":
    main()
