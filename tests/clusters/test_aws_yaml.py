"""clusters/aws.yaml: Ray's own validation, offline, plus what the deployment promises.

Nothing here talks to AWS: the socket layer is blocked while Ray prepares the config.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.paths import REPO

AWS_YAML = REPO / "clusters" / "aws.yaml"
WORLD = {"0.0.0.0/0", "::/0"}
HOSTNAME_I = "$(hostname -I | awk '{print $1}')"


@pytest.fixture(scope="module")
def raw_text() -> str:
    return AWS_YAML.read_text()


@pytest.fixture(scope="module")
def cfg(raw_text: str) -> dict:
    return yaml.safe_load(raw_text)


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the cluster config test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture()
def prepared(cfg: dict, no_network: None) -> dict:
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def _head(cfg: dict) -> dict:
    return cfg["available_node_types"][cfg["head_node_type"]]


def _workers(cfg: dict) -> dict[str, dict]:
    return {
        name: node
        for name, node in cfg["available_node_types"].items()
        if name != cfg["head_node_type"]
    }


def _gpu_workers(cfg: dict) -> dict[str, dict]:
    return {
        name: node for name, node in _workers(cfg).items() if node["resources"].get("GPU", 0) >= 1
    }


def _is_spot(node: dict) -> bool:
    return node["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"


def _one(commands: list[str], needle: str) -> str:
    found = [c for c in commands if needle in c]
    assert len(found) == 1, f"expected exactly one command containing {needle!r}, got {found}"
    return found[0]


def _flag(command: str, flag: str) -> str:
    """Value of `--flag value` / `--flag=value`, where the value may be $(hostname -I ...)."""
    match = re.search(rf"{re.escape(flag)}[ =](\$\([^)]*\)|\S+)", command)
    assert match, f"{flag} not found in {command!r}"
    return match.group(1)


def _ingress_rules(cfg: dict) -> list[dict]:
    return cfg["provider"].get("security_group", {}).get("IpPermissions", [])


def _covers(rule: dict, port: int) -> bool:
    if str(rule.get("IpProtocol")) == "-1":
        return True
    return rule.get("FromPort", -1) <= port <= rule.get("ToPort", -1)


def _cidrs(rule: dict) -> set[str]:
    return {r["CidrIp"] for r in rule.get("IpRanges", [])} | {
        r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])
    }


def _run(command: str, home: Path, extra_env: dict[str, str], path_prefix: Path | None = None):
    env = {"HOME": str(home), "PATH": os.environ["PATH"], **extra_env}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, check=True
    )


# --- Ray's own validation -----------------------------------------------------------------


def test_config_passes_rays_schema_validation_without_contacting_aws(prepared: dict) -> None:
    # prepare_config merges ray/autoscaler/aws/defaults.yaml (a local file) and the
    # setup-command lists; validate_config checks ray-schema.json. Neither may need AWS.
    assert prepared["provider"]["type"] == "aws"
    assert set(prepared["available_node_types"]) == {"head", "gpu_spot", "gpu_ondemand"}
    assert prepared["head_node_type"] == "head"
    # The common setup_commands were merged in front of the head- and worker-specific ones.
    assert (
        prepared["head_setup_commands"][: len(prepared["setup_commands"])]
        == (prepared["setup_commands"])
    )
    assert (
        prepared["worker_setup_commands"][: len(prepared["setup_commands"])]
        == (prepared["setup_commands"])
    )


def test_autoscaler_v2_reads_the_node_types_with_spot_preferred(cfg: dict, no_network) -> None:
    # `ray up` in Ray 2.60 runs autoscaler v2, which breaks ties between node types that fit
    # a request equally well by recent allocation failures, then by `priority` (higher first).
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    types = AutoscalingConfig(copy.deepcopy(cfg), skip_content_hash=True).get_node_type_configs()
    spot, ondemand = types["gpu_spot"], types["gpu_ondemand"]
    assert spot.priority > ondemand.priority
    assert spot.resources == ondemand.resources, "fallback must be interchangeable with spot"
    assert ondemand.min_worker_nodes == 0
    assert spot.min_worker_nodes == 0
    assert spot.max_worker_nodes >= 1 and ondemand.max_worker_nodes >= 1


def test_every_node_resource_value_is_an_integer(cfg: dict) -> None:
    for name, node in cfg["available_node_types"].items():
        assert node["resources"], f"{name} should declare its resources"
        for key, value in node["resources"].items():
            assert type(value) is int, f"{name}.resources.{key} = {value!r} is not an int"


def test_schema_rejects_fractional_resources_so_the_integer_check_is_real(cfg: dict) -> None:
    broken = copy.deepcopy(cfg)
    broken["available_node_types"]["gpu_spot"]["resources"]["GPU"] = 0.5
    with pytest.raises(Exception, match="integer"):
        validate_config(prepare_config(broken))


# --- node types -----------------------------------------------------------------------------


def test_head_advertises_no_cpu_so_no_trial_is_scheduled_there(cfg: dict) -> None:
    head = _head(cfg)
    assert head["resources"].get("CPU") == 0
    assert head["resources"].get("GPU", 0) == 0
    assert head.get("max_workers", 0) == 0
    assert not _is_spot(head), "the head runs the driver and MLflow; it must not be preempted"


def test_there_is_a_gpu_worker_type_on_a_gpu_instance_family(cfg: dict) -> None:
    gpu = _gpu_workers(cfg)
    assert gpu, "no worker type advertises a GPU"
    for name, node in gpu.items():
        instance = node["node_config"]["InstanceType"]
        assert re.match(r"^(g|p)\d", instance), f"{name}: {instance} is not a g/p GPU instance"
        assert node["resources"]["CPU"] >= 1


def test_a_spot_gpu_worker_type_has_an_on_demand_fallback(cfg: dict) -> None:
    gpu = _gpu_workers(cfg)
    spot = {n: w for n, w in gpu.items() if _is_spot(w)}
    ondemand = {n: w for n, w in gpu.items() if not _is_spot(w)}
    assert spot and ondemand
    best_spot = max(w.get("priority", 0) for w in spot.values())
    assert all(w.get("priority", 0) < best_spot for w in ondemand.values())
    assert all(w.get("min_workers", 0) == 0 for w in ondemand.values())
    spot_types = {w["node_config"]["InstanceType"] for w in spot.values()}
    assert {w["node_config"]["InstanceType"] for w in ondemand.values()} <= spot_types


def test_all_nodes_use_one_pytorch_deep_learning_ami(cfg: dict) -> None:
    images = {n["node_config"]["ImageId"] for n in cfg["available_node_types"].values()}
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"ami-[0-9a-f]{8,17}", image) or re.fullmatch(
        r"resolve:ssm:/aws/service/deeplearning/ami/x86_64/[a-z0-9.-]*gpu-pytorch[a-z0-9.-]*"
        r"/latest/ami-id",
        image,
    ), image


def test_every_node_gets_an_instance_profile_instead_of_keys(cfg: dict) -> None:
    for name, node in cfg["available_node_types"].items():
        profile = node["node_config"].get("IamInstanceProfile")
        assert profile and (profile.get("Name") or profile.get("Arn")), name


# --- code on the nodes ----------------------------------------------------------------------


def test_the_checkout_is_mounted_and_pip_installed_not_editable_on_every_node(
    prepared: dict,
) -> None:
    """Not editable: a worker added mid-search runs the code its node was set up with."""
    mounts = {remote: local for remote, local in prepared["file_mounts"].items()}
    remote = next(r for r, local in mounts.items() if local in (".", "./"))
    assert (REPO / "pyproject.toml").is_file(), "'.' is the repository root when run from there"
    for key in ("head_setup_commands", "worker_setup_commands"):
        installs = [
            c for c in prepared[key] if re.search(rf"pip install\b.*\s{re.escape(remote)}$", c)
        ]
        assert installs and not any(" -e " in c for c in installs), installs
        assert any("--force-reinstall --no-deps" in c for c in installs), installs
    assert {"**/.git", "**/.git/**"} <= set(prepared["rsync_exclude"])
    assert ".gitignore" in prepared["rsync_filter"]


def test_nodes_pin_the_ray_version_of_pyproject_and_of_this_machine(cfg: dict) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pinned = next(d for d in extras["cluster"] if d.startswith("ray[")).split("==")[1]
    assert f"ray=={pinned}\n" in (REPO / "constraints.txt").read_text()  # what CI tests
    install = _one(cfg["setup_commands"], "ray[default")
    assert f"=={pinned}" in install
    # validate_config refuses a config prepared by an older autoscaler; the launcher and the
    # cluster must run the same Ray.
    assert ray.__version__ == pinned
    ray_pin = cfg["setup_commands"].index(install)
    project = cfg["setup_commands"].index(
        _one(cfg["setup_commands"], "install --quiet /home/ubuntu/augkd")
    )
    assert ray_pin < project


def test_relative_space_path_of_ray_submit_resolves_from_the_head_home(cfg: dict) -> None:
    # `ray submit` runs `python ~/search.py ...` in ~, so search_spaces/ must exist there.
    link = _one(cfg["head_setup_commands"], "search_spaces")
    remote = next(r for r, local in cfg["file_mounts"].items() if local in (".", "./"))
    assert link.split() == ["ln", "-sfn", f"{remote}/search_spaces", "/home/ubuntu/search_spaces"]
    assert (REPO / "search_spaces").is_dir()


def test_every_shell_command_is_valid_bash(prepared: dict) -> None:
    keys = (
        "initialization_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    for key in keys:
        for command in prepared[key]:
            # Ray wraps each command like this before running it over ssh.
            wrapped = f"true && ({command})"
            result = subprocess.run(["bash", "-n", "-c", wrapped], capture_output=True, text=True)
            assert result.returncode == 0, f"{key}: {command!r}: {result.stderr}"


# --- MLflow on the head ---------------------------------------------------------------------


def test_head_starts_mlflow_on_its_private_address_in_the_background(cfg: dict) -> None:
    command = _one(cfg["head_start_ray_commands"], "mlflow server")
    host = _flag(command, "--host")
    assert host == HOSTNAME_I or ipaddress.ip_address(host).is_private, host
    assert host not in {"0.0.0.0", "::", "*"}
    assert _flag(command, "--port") == "5000"
    # in the background with its output in a log file, unless it already runs (start_once.sh)
    assert re.search(
        r"clusters/start_once\.sh mlflow 5000 --log \S+\.log --\s+mlflow server", command
    )
    # `ray up` fails if the server does not answer.
    health = _one(cfg["head_start_ray_commands"], "/health")
    assert ":5000/health" in health and "exit 1" in health
    assert cfg["head_start_ray_commands"].index(command) < cfg["head_start_ray_commands"].index(
        health
    )


def test_mlflow_keeps_metadata_on_local_disk_and_artifacts_under_the_s3_storage(
    cfg: dict,
) -> None:
    command = _one(cfg["head_start_ray_commands"], "mlflow server")
    backend = _flag(command, "--backend-store-uri")
    assert re.fullmatch(r"sqlite:////home/ubuntu/\S+\.db", backend), backend
    artifacts = _flag(command, "--artifacts-destination")
    storage = re.search(r"AUGKD_STORAGE=(\S+?)\"", _one(cfg["head_setup_commands"], "AUGKD_"))
    assert storage and storage.group(1).startswith("s3://")
    assert artifacts == f"{storage.group(1)}/mlflow-artifacts"
    # The SQLite directory is created before the server starts.
    assert (
        f"mkdir -p {Path(backend.removeprefix('sqlite:///')).parent}"
        in (cfg["head_setup_commands"])
    )


def test_head_env_file_exports_storage_and_its_private_tracking_uri(
    cfg: dict, tmp_path: Path
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "hostname").write_text("#!/bin/sh\necho '10.0.12.34 172.17.0.1 '\n")
    (fake_bin / "hostname").chmod(0o755)
    command = _one(cfg["head_setup_commands"], "AUGKD_STORAGE")
    _run(command, tmp_path, {}, path_prefix=fake_bin)
    env = _run(". ~/.augkd_env && env", tmp_path, {}, path_prefix=fake_bin).stdout.splitlines()
    assert "MLFLOW_TRACKING_URI=http://10.0.12.34:5000" in env
    assert "AUGKD_TRACKING_URI=http://10.0.12.34:5000" in env
    assert any(re.fullmatch(r"AUGKD_STORAGE=s3://[^/]+/augkd", line) for line in env)


def test_every_shell_loads_the_augkd_env_file_and_the_dlami_venv(cfg: dict, tmp_path: Path) -> None:
    (tmp_path / ".bashrc").write_text("# stock bashrc\n")
    lines = [c for c in cfg["setup_commands"] if "~/.bashrc" in c]
    for _ in range(2):  # re-running `ray up` must not append the lines twice
        for command in lines:
            _run(command, tmp_path, {})
    bashrc = (tmp_path / ".bashrc").read_text().splitlines()
    assert bashrc.count("source /opt/pytorch/bin/activate") == 1
    assert bashrc.count("[ -f ~/.augkd_env ] && . ~/.augkd_env") == 1


# --- workers --------------------------------------------------------------------------------


def test_workers_join_the_head_and_export_its_tracking_uri(cfg: dict, tmp_path: Path) -> None:
    start = _one(cfg["worker_start_ray_commands"], "ray start")
    assert "--address=$RAY_HEAD_IP:6379" in start
    before_start = start[: start.index("ray start")]
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in before_start
    assert "AUGKD_TRACKING_URI=http://$RAY_HEAD_IP:5000" in before_start
    resources = re.search(r"--resources[ =]'?(\{[^}]*\})", start)
    if resources:
        assert all(type(v) is int for v in yaml.safe_load(resources.group(1)).values())
    # The same environment for interactive shells on the worker (`ray attach`, debugging).
    setup = _one(cfg["worker_setup_commands"], "MLFLOW_TRACKING_URI")
    _run(setup, tmp_path, {"RAY_HEAD_IP": "10.0.1.2"})
    env = _run(". ~/.augkd_env && env", tmp_path, {}).stdout.splitlines()
    assert "MLFLOW_TRACKING_URI=http://10.0.1.2:5000" in env
    assert "AUGKD_TRACKING_URI=http://10.0.1.2:5000" in env


@pytest.mark.parametrize("key", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_rerunning_the_start_commands_keeps_what_runs(cfg: dict, key: str) -> None:
    """`ray up` re-runs the head's start commands: none may stop Ray or MLflow, and each
    service starts through start_once.sh, guarded by the port it listens on."""
    for command in cfg[key]:
        assert not re.search(r"\bray stop\b|\bfuser\b|\bpkill\b|\bkillall\b|\bkill\b", command)
    starts = [c for c in cfg[key] if "ray start" in c or "mlflow server" in c]
    assert starts
    for command in starts:
        guard = re.search(r"clusters/start_once\.sh (\w+) (\d+) (--log \S+ )?--\s", command)
        assert guard, command
        service = command[guard.end() :]
        if guard.group(1) == "mlflow":
            assert _flag(service, "--port") == guard.group(2)
        elif "--head" in service:
            assert _flag(service, "--port") == guard.group(2)  # the GCS
        else:
            assert _flag(service, "--object-manager-port") == guard.group(2)


def test_head_starts_ray_with_the_autoscaler_and_a_local_only_dashboard(cfg: dict) -> None:
    start = _one(cfg["head_start_ray_commands"], "ray start")
    assert "--head" in start and "--port=6379" in start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in start
    dashboard_host = re.search(r"--dashboard-host[ =](\S+)", start)
    assert dashboard_host is None or dashboard_host.group(1) in {"127.0.0.1", "localhost"}


# --- secrets and network --------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        r"aws_access_key_id",
        r"aws_secret_access_key",
        r"aws_session_token",
        r"AKIA[0-9A-Z]{16}",
        r"ASIA[0-9A-Z]{16}",
        r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
        r"BEGIN (RSA |OPENSSH |EC )?PRIVATE KEY",
    ],
)
def test_no_credentials_in_the_file(raw_text: str, pattern: str) -> None:
    assert not re.search(pattern, raw_text, flags=re.IGNORECASE), pattern


def test_credentials_come_only_from_instance_profiles_and_ssh_keys(cfg: dict) -> None:
    # auth holds at most the SSH user and a path to a key file, never key material.
    assert set(cfg.get("auth", {})) <= {"ssh_user", "ssh_private_key"}
    assert not cfg.get("auth", {}).get("ssh_private_key", "").startswith("-----")
    for name, node in cfg["available_node_types"].items():
        assert "UserData" not in node["node_config"], f"{name}: keep secrets out of UserData"


def test_ssh_is_open_only_to_a_specific_cidr(cfg: dict) -> None:
    rules = _ingress_rules(cfg)
    ssh = [r for r in rules if _covers(r, 22)]
    assert ssh, "SSH must be allowed from the user's CIDR, or ray up cannot reach the head"
    for rule in ssh:
        cidrs = _cidrs(rule)
        assert cidrs and not (cidrs & WORLD), cidrs
        for cidr in cidrs:
            assert ipaddress.ip_network(cidr).num_addresses < 2**16, cidr


def test_no_rule_opens_anything_to_the_world(cfg: dict) -> None:
    for rule in _ingress_rules(cfg):
        assert not (_cidrs(rule) & WORLD), rule


@pytest.mark.parametrize("port", [8265, 5000, 6379])
def test_dashboard_mlflow_and_gcs_ports_are_not_in_the_ingress_rules(cfg: dict, port: int) -> None:
    for rule in _ingress_rules(cfg):
        assert not _covers(rule, port), rule


def test_security_group_is_named_so_a_precreated_group_replaces_rays_world_open_ssh(
    cfg: dict,
) -> None:
    # When Ray creates the group itself it prepends its defaults, including SSH from
    # 0.0.0.0/0, to our IpPermissions; it leaves an existing group with rules alone. The
    # config therefore names the group that docs/cluster.md tells the user to create first.
    pytest.importorskip("boto3")
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    merged = _create_default_inbound_rules({"sg-0"}, _ingress_rules(cfg))
    assert any(_covers(r, 22) and _cidrs(r) & WORLD for r in merged), (
        "Ray no longer opens SSH to the world by default: the pre-created group in "
        "docs/cluster.md may be optional now"
    )
    name = cfg["provider"]["security_group"]["GroupName"]
    assert name and name != f"ray-autoscaler-{cfg['cluster_name']}"
    docs = (REPO / "docs" / "cluster.md").read_text()
    assert f"--group-name {name}" in docs
