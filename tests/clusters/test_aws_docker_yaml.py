"""clusters/aws-docker.yaml and clusters/Dockerfile: Ray's `docker:` path with the augkd image.

Nothing here talks to AWS or needs Docker (there is no Docker engine on the test machine): the
config passes Ray's own validation offline, stays aws.yaml in everything but the container,
and the image it names installs what the nodes would otherwise install.
"""

from __future__ import annotations

import copy
import re
import socket
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.paths import REPO

DOCKER_YAML = REPO / "clusters" / "aws-docker.yaml"
PLAIN_YAML = REPO / "clusters" / "aws.yaml"
DOCKERFILE = REPO / "clusters" / "Dockerfile"
CONTAINER_KEYS = {"docker", "initialization_commands", "setup_commands"}
"""What the docker config may change; everything else is aws.yaml's."""


@pytest.fixture(scope="module")
def cfg() -> dict:
    return yaml.safe_load(DOCKER_YAML.read_text())


@pytest.fixture()
def prepared(cfg: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    def refuse(*args, **kwargs):
        raise AssertionError("the cluster config test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def test_the_docker_config_passes_rays_schema_validation_offline(prepared: dict) -> None:
    docker = prepared["docker"]
    assert docker["image"] and docker["container_name"] == "augkd"
    assert docker["pull_before_run"] is True
    assert set(prepared["available_node_types"]) == {"head", "gpu_spot", "gpu_ondemand"}


def test_a_broken_docker_section_is_refused_so_the_validation_is_real(cfg: dict) -> None:
    broken = copy.deepcopy(cfg)
    broken["docker"]["run_option"] = ["--gpus all"]  # a misspelt key
    with pytest.raises(Exception, match="run_option"):
        validate_config(prepare_config(broken))


def test_everything_but_the_container_is_aws_yaml(cfg: dict) -> None:
    plain = yaml.safe_load(PLAIN_YAML.read_text())
    assert set(cfg) - set(plain) == {"docker"}
    for key in set(plain) - CONTAINER_KEYS:
        assert cfg[key] == plain[key], f"{key} differs from clusters/aws.yaml"


def test_only_workers_ask_for_the_gpus_and_the_head_keeps_mlflow_on_the_host(cfg: dict) -> None:
    docker = cfg["docker"]
    assert "--gpus all" in docker["worker_run_options"]
    assert not any("--gpus" in option for option in docker["run_options"])
    assert not any("--gpus" in option for option in docker.get("head_run_options", []))
    mlflow = next(c for c in cfg["head_start_ray_commands"] if "mlflow server" in c)
    store = Path(re.search(r"--backend-store-uri sqlite:///(\S+)", mlflow).group(1)).parent
    assert f"-v {store}:{store}" in docker["head_run_options"]


def test_nodes_install_only_the_checkout_not_the_stack(cfg: dict) -> None:
    installs = [c for c in cfg["setup_commands"] if "pip install" in c]
    assert installs == [
        "python -m pip install --quiet --force-reinstall --no-deps /home/ubuntu/augkd "
        "&& python -m pip check"
    ]
    for key in ("head_setup_commands", "worker_setup_commands", "initialization_commands"):
        assert not any("pip install" in c for c in cfg[key]), key


def test_the_ecr_login_and_the_image_name_the_same_registry(cfg: dict) -> None:
    registry = cfg["docker"]["image"].split("/")[0]
    login = next(c for c in cfg["initialization_commands"] if "docker login" in c)
    assert login.rstrip().endswith(registry)
    assert f"--region {cfg['provider']['region']}" in login
    assert registry.endswith(f".ecr.{cfg['provider']['region']}.amazonaws.com")


def test_every_command_is_valid_bash(prepared: dict) -> None:
    for key in ("initialization_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands"):  # fmt: skip
        for command in prepared[key]:
            result = subprocess.run(
                ["bash", "-n", "-c", f"true && ({command})"], capture_output=True, text=True
            )
            assert result.returncode == 0, f"{key}: {command!r}: {result.stderr}"


# --- the image ------------------------------------------------------------------------------


def _dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_the_image_starts_from_the_cuda_of_the_torch_the_project_runs() -> None:
    base = re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.(\d+)\.\d+-base-ubuntu", _dockerfile(),
                     re.MULTILINE)  # fmt: skip
    assert base, "FROM a CUDA base image of nvidia/cuda"
    assert "FROM ${CUDA_IMAGE}" in _dockerfile()
    if torch.version.cuda is None:
        pytest.skip("this machine's torch is a CPU build: nothing to compare the image with")
    major, minor = torch.version.cuda.split(".")[:2]
    assert (base.group(1), base.group(2)) == (major, minor)


def test_the_image_installs_the_cluster_extra_under_the_tested_constraints() -> None:
    text = _dockerfile()
    assert "COPY pyproject.toml constraints.txt ./" in text
    assert "['optional-dependencies']['cluster']" in text
    assert re.search(
        r"pip install --extra-index-url \S+ -r requirements.txt \\\s+-c constraints.txt", text
    )
    assert "pip install --no-deps ." in text and "pip check" in text
    # what Ray's launcher runs inside the container
    packages = re.search(r"apt-get install -y --no-install-recommends([^&]*)&&", text).group(1)
    assert {"rsync", "openssh-client", "curl", "python3"} <= set(packages.split())
    assert "ENV HOME=/home/ubuntu" in text  # the paths of clusters/aws*.yaml
