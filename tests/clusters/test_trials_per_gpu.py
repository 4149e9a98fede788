"""The shipped spaces, the AWS cluster, the RayJob and docs/cluster.md agree on how many
trials share a GPU and how many CPUs each gets: every GPU node fits its share of trials."""

from __future__ import annotations

import pytest
import yaml

from augkd.search.prepare.space_file import load_space
from tests.paths import REPO

SPACES = ("office31", "officehome", "visda")


def _gpu_node_shapes() -> dict[str, tuple[float, float]]:
    """(CPUs, GPUs) of every GPU node: AWS worker types and the RayJob's GPU group."""
    aws = yaml.safe_load((REPO / "clusters" / "aws.yaml").read_text())
    shapes = {
        name: (float(t["resources"]["CPU"]), float(t["resources"]["GPU"]))
        for name, t in aws["available_node_types"].items()
        if t["resources"].get("GPU")
    }
    job = yaml.safe_load((REPO / "clusters" / "kuberay-rayjob.yaml").read_text())
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        [container] = group["template"]["spec"]["containers"]
        limits = container["resources"]["limits"]
        if int(limits.get("nvidia.com/gpu", 0)):
            shapes[f"rayjob/{group['groupName']}"] = (
                float(limits["cpu"]),
                float(limits["nvidia.com/gpu"]),
            )
    return shapes


@pytest.mark.parametrize("name", SPACES)
def test_each_gpu_node_fits_its_share_of_trials(name):
    space = load_space(name)
    per_gpu = round(1 / space.resources.gpu)
    assert per_gpu * space.resources.gpu == pytest.approx(1.0)
    shapes = _gpu_node_shapes()
    assert shapes
    for node, (cpus, gpus) in shapes.items():
        assert cpus >= per_gpu * gpus * space.resources.cpu, (node, cpus, per_gpu)
    docs = (REPO / "docs" / "cluster.md").read_text()
    assert f"{per_gpu} trials per GPU" in docs
    assert f"resources: {{cpu: {space.resources.cpu:g}, gpu: {space.resources.gpu:g}}}" in docs
