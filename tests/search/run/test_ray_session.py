"""search.py and `augkd evaluate` join a Ray cluster only when asked (--address, or
$RAY_ADDRESS as `ray job submit` sets it); otherwise they start a Ray of their own, even
when another process's Ray runs on the same machine, and say which in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from augkd.search.run.ray_session import requested_address

WHICH_RAY = """
import json, sys, ray
from augkd.search.run.ray_session import init_ray
start = init_ray(sys.argv[1] or None)
print(json.dumps({"gcs": ray.get_runtime_context().gcs_address, "here": start.started_here,
                  "summary": start.summary}))
"""


@pytest.fixture(scope="module")
def other_ray(tmp_path_factory):
    """Another process's Ray on this machine, alive until the module ends."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    script = (
        "import sys, ray; ray.init(address='local', num_cpus=1, include_dashboard=False); "
        "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        yield {"gcs": other.stdout.readline().strip(), "env": env}
    finally:
        other.stdin.close()  # ray.init's process shuts its Ray down as it exits
        other.wait()


def _which_ray(address: str | None, env: dict[str, str]) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", WHICH_RAY, address or ""],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Token authentication" not in run.stderr  # augkd's commands filter Ray's notice
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_without_an_address_a_search_starts_its_own_ray_beside_anothers(other_ray):
    assert other_ray["gcs"]
    mine = _which_ray(None, other_ray["env"])
    assert mine["here"] and mine["gcs"] != other_ray["gcs"]
    assert mine["summary"].startswith("started a local Ray (--address auto or HOST:PORT joins")


@pytest.mark.slow
def test_an_address_or_ray_address_joins_that_cluster(other_ray):
    joined = _which_ray(other_ray["gcs"], other_ray["env"])
    assert not joined["here"] and joined["gcs"] == other_ray["gcs"]
    assert joined["summary"] == f"joined the Ray cluster at {other_ray['gcs']}: 1 CPUs, 0 GPUs"
    from_env = _which_ray(None, {**other_ray["env"], "RAY_ADDRESS": other_ray["gcs"]})
    assert not from_env["here"] and from_env["gcs"] == other_ray["gcs"]


def test_local_means_a_ray_of_ones_own_even_with_ray_address_set(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert requested_address(None) == "10.0.0.1:6379"
    assert requested_address("local") is None
    assert requested_address("auto") == "auto"
    monkeypatch.delenv("RAY_ADDRESS")
    assert requested_address(None) is None
