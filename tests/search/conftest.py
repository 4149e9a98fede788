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


def trial_worker_pids(search_path: str) -> dict[str, set[int]]:
    """Trial id -> the worker process ids that reported its results (Tune's ``pid``)."""
    pids: dict[str, set[int]] = {}
    for path in Path(search_path).glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                pids.setdefault(result["trial_id"], set()).add(result["pid"])
    return pids
