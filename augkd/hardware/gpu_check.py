"""Whether torch on this node can use the GPU Ray gave a worker, and if not, why.

A GPU that cannot be used is an error, never a silent CPU run (design.md): a trial that
trains on CPU where it was scheduled for a GPU costs hours and says nothing. The sentence
names the node, torch's CUDA build, the NVIDIA driver and the fix.

The one exception is opt-in: on a CPU machine whose Ray nodes advertise logical GPUs
(``ray start --num-gpus``, ``ray.cluster_utils.Cluster(num_gpus=1)``: tests and rehearsals of
GPU scheduling), setting LOGICAL_GPUS_ENV on those nodes lets ``device: auto`` run on CPU.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from augkd.basics.errors import GpuError

LOGICAL_GPUS_ENV = "AUGKD_LOGICAL_GPUS_ON_CPU"
"""Set to 1 in a Ray node's environment when its GPUs are logical only: a worker given one
then runs ``device: auto`` on CPU instead of refusing."""
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580"}
"""Oldest Linux NVIDIA driver that runs each CUDA major release (NVIDIA's CUDA
compatibility guide, minor version compatibility)."""
DRIVER_FILE = "/proc/driver/nvidia/version"
NO_DRIVER = "no NVIDIA driver found"


def logical_gpus_on_cpu() -> bool:
    return os.environ.get(LOGICAL_GPUS_ENV, "").strip().lower() in ("1", "true", "yes")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def parse_driver_version(text: str) -> str | None:
    """The driver version in /proc/driver/nvidia/version ('NVRM version: NVIDIA UNIX
    x86_64 Kernel Module  570.86.15  ...') or in nvidia-smi's output."""
    found = re.search(r"Kernel Module\s+(\d+\.\d+(?:\.\d+)?)", text) or re.search(
        r"^\s*(\d+\.\d+(?:\.\d+)?)\s*$", text, re.MULTILINE
    )
    return found.group(1) if found else None


def driver_version() -> str | None:
    """This node's NVIDIA driver, from the kernel module's file, else nvidia-smi."""
    try:
        with open(DRIVER_FILE) as handle:
            return parse_driver_version(handle.read())
    except OSError:
        pass
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_driver_version(smi.stdout) if smi.returncode == 0 else None


def supported_cuda_major(driver: str) -> int | None:
    """The newest CUDA major release the driver runs, by MIN_DRIVER."""
    majors = [
        m for m, least in MIN_DRIVER.items() if _version_tuple(driver) >= _version_tuple(least)
    ]
    return max(majors) if majors else None


@dataclass(frozen=True)
class GpuStack:
    """What decides whether torch can use a GPU on this node."""

    node: str
    """The Ray node id, hostname and IP, as the sentence names them."""
    torch_version: str
    torch_cuda: str | None
    """torch.version.cuda: the CUDA release torch was built for; None for a CPU-only build."""
    driver: str | None

    @property
    def needed_driver(self) -> str | None:
        if self.torch_cuda is None:
            return None
        return MIN_DRIVER.get(_version_tuple(self.torch_cuda)[0])

    def cause(self) -> str:
        """Which of CAUSES explains an unusable GPU."""
        if self.torch_cuda is None:
            return "cpu_build"
        if self.driver is None:
            return "no_driver"
        needed = self.needed_driver
        if needed and _version_tuple(self.driver) < _version_tuple(needed):
            return "old_driver"
        return "unexplained"

    def summary(self) -> str:
        """One line for the preflight: torch's build and the driver."""
        build = f"CUDA {self.torch_cuda}" if self.torch_cuda else "CPU-only"
        driver = f"NVIDIA driver {self.driver}" if self.driver else NO_DRIVER
        return f"torch {self.torch_version} ({build}), {driver}"


def _cpu_build(stack: GpuStack) -> str:
    return (
        f"torch {stack.torch_version} is a CPU-only build; install a CUDA build of torch on "
        "that node (the image's own, or the wheel for its driver from download.pytorch.org)"
    )


def _no_driver(stack: GpuStack) -> str:
    return (
        f"torch {stack.torch_version} is built for CUDA {stack.torch_cuda} and {NO_DRIVER}; "
        "start GPU nodes from an image with the NVIDIA driver (the Deep Learning AMI of "
        "clusters/aws.yaml), or set resources.gpu=0 to train on CPU"
    )


def _old_driver(stack: GpuStack) -> str:
    runs = supported_cuda_major(stack.driver or "")
    wheel = f"a torch wheel built for CUDA {runs}.x" if runs else "a torch wheel for an older CUDA"
    return (
        f"torch {stack.torch_version} is built for CUDA {stack.torch_cuda}, which needs NVIDIA "
        f"driver {stack.needed_driver} or newer, and the node has driver {stack.driver}; install "
        f"{wheel} on that node, or use an image with a newer driver"
    )


def _unexplained(stack: GpuStack) -> str:
    return (
        f"torch {stack.torch_version} is built for CUDA {stack.torch_cuda} and the node has "
        f"NVIDIA driver {stack.driver}, yet torch sees no CUDA device; run nvidia-smi on that "
        "node (a GPU in a bad state, or CUDA_VISIBLE_DEVICES hiding it), or set "
        "resources.gpu=0 to train on CPU"
    )


CAUSES: dict[str, Callable[[GpuStack], str]] = {
    "cpu_build": _cpu_build,
    "no_driver": _no_driver,
    "old_driver": _old_driver,
    "unexplained": _unexplained,
}
"""What is wrong and how to fix it, by GpuStack.cause()."""


def unusable_gpu_sentence(gpu_ids: list, stack: GpuStack) -> str:
    return (
        f"Ray gave this worker GPU {gpu_ids[0]} on {stack.node}, but torch cannot use it: "
        f"{CAUSES[stack.cause()](stack)}."
    )


def node_label() -> str:
    """'node <Ray node id> (<hostname>, <IP>)' of the calling Ray worker."""
    import ray

    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "(no Ray)"
    try:
        address = ray.util.get_node_ip_address()
    except Exception:  # the label must not fail where the check is reported
        address = "IP unknown"
    return f"node {node_id} ({socket.gethostname()}, {address})"


def gpu_stack() -> GpuStack:
    import torch

    return GpuStack(node_label(), torch.__version__, torch.version.cuda, driver_version())


def unusable_gpu_error(gpu_ids: list) -> GpuError:
    return GpuError(unusable_gpu_sentence(gpu_ids, gpu_stack()))
