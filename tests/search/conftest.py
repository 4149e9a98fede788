"""Fixtures of the search tests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray for one test module, shut down after it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def trial_results(search_path: str) -> dict[str, list[dict]]:
    """Every result Tune received, per trial, from the trial folders' result.json."""
    reports: dict[str, list[dict]] = {}
    for path in Path(search_path).glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                reports.setdefault(result["trial_id"], []).append(result)
    return reports


def trial_worker_pids(search_path: str) -> dict[str, set[int]]:
    """Trial id -> the worker process ids that reported its results (Tune's ``pid``)."""
    return {
        trial: {result["pid"] for result in results}
        for trial, results in trial_results(search_path).items()
    }


@contextmanager
def kept_environment(keys: tuple[str, ...]) -> Iterator[None]:
    """The environment variables ``keys`` as they were before, whatever the block set."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def local_cluster(
    env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    """A multi-node Ray on this machine (ray.cluster_utils.Cluster) with a 0-CPU head, for
    searches that join it by address; ``env`` set and ``unset`` removed first, so that the
    raylets and every trial inherit them. Each trial uses one thread."""
    env = {"AUGKD_TRIAL_THREADS": "1", **(env or {})}
    with kept_environment((*env, "RAY_ADDRESS", *unset)):
        os.environ.update(env)
        for key in ("RAY_ADDRESS", *unset):
            os.environ.pop(key, None)
        if ray.is_initialized():
            ray.shutdown()  # run_search must join this cluster, not an earlier Ray
        local = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
        )
        try:
            yield local
        finally:
            ray.shutdown()
            local.shutdown()


def assert_nothing_running(tracking_uri: str) -> None:
    """No MLflow run of any experiment in the store is left RUNNING."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = (
        client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
    )
    assert not running, [r.info.run_name for r in running]
