"""clusters/kuberay-rayjob.yaml: a KubeRay RayJob that runs search.py on a GPU worker group."""

from __future__ import annotations

import re

import pytest
import ray
import yaml

from tests.paths import REPO

RAYJOB_YAML = REPO / "clusters" / "kuberay-rayjob.yaml"


@pytest.fixture(scope="module")
def job() -> dict:
    documents = list(yaml.safe_load_all(RAYJOB_YAML.read_text()))
    assert len(documents) == 1
    return documents[0]


def test_it_is_a_rayjob_of_the_ray_io_v1_api(job: dict) -> None:
    assert job["apiVersion"] == "ray.io/v1"
    assert job["kind"] == "RayJob"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])


def test_entrypoint_runs_search_py_with_a_space_storage_and_tracking_uri(job: dict) -> None:
    entrypoint = job["spec"]["entrypoint"]
    assert "python search.py --space search_spaces/" in entrypoint
    assert re.search(r"--storage s3://\S+", entrypoint)
    assert re.search(r"--tracking-uri http://\S+:5000", entrypoint)


def test_cluster_runs_the_pinned_ray_and_tears_itself_down(job: dict) -> None:
    spec = job["spec"]
    assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__
    assert spec["shutdownAfterJobFinishes"] is True


def test_trials_go_to_an_autoscaled_gpu_worker_group_not_the_head(job: dict) -> None:
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["enableInTreeAutoscaling"] is True
    groups = cluster["workerGroupSpecs"]
    gpu_groups = [
        g
        for g in groups
        if any(
            int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) >= 1
            for c in g["template"]["spec"]["containers"]
        )
    ]
    assert gpu_groups
    for group in gpu_groups:
        assert group["minReplicas"] == 0 < group["maxReplicas"]


def test_pods_carry_no_credentials(job: dict) -> None:
    text = RAYJOB_YAML.read_text()
    for pattern in (r"aws_access_key_id", r"aws_secret_access_key", r"AKIA[0-9A-Z]{16}"):
        assert not re.search(pattern, text, flags=re.IGNORECASE), pattern
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["workerGroupSpecs"]
    ]
    for pod in pods:
        assert pod["serviceAccountName"]
        for container in pod["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
