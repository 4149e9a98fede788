"""Fixtures of the search tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray


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
