"""A cluster that fails loudly and early, on a local multi-node Ray cluster
(``ray.cluster_utils.Cluster``): a GPU that torch cannot use stops the search before any trial
(or, on a node that joined later, fails every trial there alike, which ends the search), and a
shared-stage task whose node keeps dying ends with one sentence and the command that continues.

The head has no CPU (nothing lands there); each test adds its own worker nodes. Their GPUs are
logical, and torch on this machine has no CUDA, so a node sees "no NVIDIA driver" unless it
opted in to logical GPUs (gpu_check.LOGICAL_GPUS_ENV), as the other cluster tests' nodes do.
"""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path

import pytest
import torch
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from augkd.basics.errors import AllTrialsFailedError, ExitCode
from augkd.hardware.gpu_check import LOGICAL_GPUS_ENV, NO_DRIVER
from augkd.search.records.results import load_results
from augkd.search.run.runner import SearchOptions, run_search
from augkd.search.stages.stage_task import stage_task
from tests.basics.test_exit_codes import one_line
from tests.search.conftest import assert_nothing_running, local_cluster

SMALL = [
    "teacher.epochs=3",
    "module1.iters_per_epoch=2",
    "module2.epochs=1",
    "module3.epochs=2",
    "scheduler.grace_period=1",
]
HALF_GPU = ["resources.cpu=0.5", "resources.gpu=0.5"]


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(unset=(LOGICAL_GPUS_ENV,)) as local:  # only nodes that say so opt in
        yield local


def _add(cluster: Cluster, **node_args):
    node = cluster.add_node(num_cpus=1, **node_args)
    cluster.wait_for_nodes()
    return node


def _remove_workers(cluster: Cluster) -> None:
    for node in list(cluster.worker_nodes):
        cluster.remove_node(node)


def _args(tmp_path: Path, name: str, address: str, *overrides: str) -> list[str]:
    argv = ["--space", "digits", "--smoke-test", "--num-samples", "2", "--name", name,
            "--storage", str(tmp_path / "runs"), "--tracking-uri", _tracking(tmp_path),
            "--address", address]  # fmt: skip
    return argv + [item for override in (*SMALL, *overrides) for item in ("--set", override)]


def _tracking(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_fake_gpu_node_without_cuda_stops_a_half_gpu_search_before_any_trial(
    cluster, search_main, tmp_path, capsys
):
    node = _add(cluster, num_gpus=1)  # no opt-in: a GPU torch cannot use
    try:
        code = search_main(_args(tmp_path, "nocuda", cluster.address, *HALF_GPU))
    finally:
        _remove_workers(cluster)
    assert code == ExitCode.BAD_INPUT
    line = one_line(capsys.readouterr())
    assert line.startswith(
        "error: Preflight on a worker failed before any trial: Ray gave this worker GPU 0 on "
        f"node {node.node_id} ("
    ), line
    assert (
        f"but torch cannot use it: torch {torch.__version__} is built for CUDA "
        f"{torch.version.cuda} and {NO_DRIVER}; "
    ) in line
    assert line.endswith("or set resources.gpu=0 to train on CPU.")
    assert not (tmp_path / "runs" / "nocuda").exists()  # no trial, no Tune experiment
    assert_nothing_running(_tracking(tmp_path))


@pytest.mark.slow
def test_trials_on_a_gpu_node_that_joined_later_refuse_it_and_the_search_stops(cluster, tmp_path):
    """The preflight passes on a node whose logical GPUs are opted in; that node then leaves
    and one without usable GPUs joins: every trial there fails with the same sentence, and
    the SameFailureStopper ends the search after the first two."""
    rehearsal = _add(cluster, num_gpus=1, env_vars={LOGICAL_GPUS_ENV: "1"})
    joined = {}

    def echo(line: str) -> None:
        if line.startswith("[search] preflight passed"):
            cluster.remove_node(rehearsal)
            joined["node"] = _add(cluster, num_gpus=1)

    samples = 6
    options = SearchOptions(
        space="digits", storage=str(tmp_path / "runs"), name="joined",
        tracking_uri=_tracking(tmp_path), smoke_test=True, num_samples=samples,
        address=cluster.address,
        overrides=[*SMALL, *HALF_GPU, "stop_after_same_failures=2", "max_concurrent=2"],
    )  # fmt: skip
    try:
        with pytest.raises(AllTrialsFailedError) as ended:
            run_search(options, echo=echo)
    finally:
        _remove_workers(cluster)
    assert joined, "the preflight did not pass on the opted-in node"
    sentence = f"Ray gave this worker GPU 0 on node {joined['node'].node_id} ("
    assert str(ended.value).startswith("All ") and "failed with the same error: " + sentence in str(
        ended.value
    ), ended.value
    assert ended.value.exit_code == ExitCode.ALL_TRIALS_FAILED
    rows = load_results(str(tmp_path / "runs" / "joined"))
    assert {row["status"] for row in rows} == {"failed"}
    assert all(sentence in row["error"] for row in rows), [row["error"] for row in rows]
    assert len(rows) < samples  # stopped, not run to the end
    assert_nothing_running(_tracking(tmp_path))


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _stage_task_running_on(node) -> bool:
    """Whether a worker of ``node``'s raylet is executing the stage task (Ray titles a
    worker process 'ray::<function>' while it runs one)."""
    children = _children()
    pending = [node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid]
    while pending:
        pid = pending.pop()
        try:
            if f"ray::{stage_task.__name__}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            pass
        pending.extend(children.get(pid, []))
    return False


@pytest.mark.slow
def test_shared_stage_task_that_keeps_losing_its_node_ends_with_the_command_that_continues(
    cluster, search_main, tmp_path, capsys
):
    """stage_retries=1: Module 1's task runs on one of two nodes, which is removed; Ray runs it
    again on the other, which is removed too; the search ends with exit 4, one sentence and
    the command, and on a healthy node that command finishes the search from the cache."""
    storage = tmp_path / "runs"
    progress = storage / "stage_cache" / "module1" / ".progress"
    nodes = [_add(cluster), _add(cluster)]
    lost: list[str] = []
    done = threading.Event()

    def lose_the_stage_tasks_node_twice() -> None:  # (nodes are added by the main thread only)
        while not done.is_set() and len(lost) < 2:
            if list(progress.glob("*.pt")):  # Module 1 under way: the shared-stage task
                for node in [n for n in nodes if n.node_id not in lost]:
                    if _stage_task_running_on(node):
                        cluster.remove_node(node, allow_graceful=False)
                        lost.append(node.node_id)
            time.sleep(0.1)

    watcher = threading.Thread(target=lose_the_stage_tasks_node_twice, daemon=True)
    watcher.start()
    # Module 1 in many cheap epochs: long enough to be caught running twice, its progress saved
    # every epoch, and quick to finish once a healthy node continues it
    slow = ["module1.epochs=60", "module1.batch_size=8", "module1.student_steps=1",
            "stage_checkpoint_minutes=0", "stage_retries=1"]  # fmt: skip
    try:
        code = search_main(_args(tmp_path, "spot", cluster.address, *slow))
    finally:
        done.set()
        watcher.join()
    assert sorted(lost) == sorted(n.node_id for n in nodes), lost
    assert code == ExitCode.WORKERS_LOST
    line = one_line(capsys.readouterr())
    prefix = (
        "error: The shared-stage (seed 0) task lost its worker 2 times (stage_retries=1), the "
        "last time because its node died (a spot reclaim, or a crash); the stages it finished "
        "stay cached, so continue the search with: "
    )
    assert line.startswith(prefix), line
    argv = shlex.split(line.removeprefix(prefix))
    assert argv[:2] == ["python", "search.py"] and "--resume" not in argv  # no Tune run yet
    assert argv[argv.index("--name") + 1] == "spot"
    assert not (storage / "spot").exists()  # no trial started
    assert_nothing_running(_tracking(tmp_path))

    _add(cluster)  # a healthy node
    try:
        assert search_main(argv[2:]) == ExitCode.OK
    finally:
        _remove_workers(cluster)
    rows = load_results(str(storage / "spot"))
    assert len(rows) == 2 and {row["status"] for row in rows} <= {"completed", "pruned"}
    assert [row["module1_cache_hit"] for row in rows] == [1.0, 1.0]
