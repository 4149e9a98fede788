"""Device choice, CPU share and seeding: CUDA when present (and, inside Ray, assigned),
CPU otherwise; a GPU Ray assigned that torch cannot use is an error (augkd.hardware.gpu_check)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from augkd.basics.errors import ConfigError
from augkd.hardware.gpu_check import logical_gpus_on_cpu, unusable_gpu_error


def resolve_device(
    name: str, ray_gpu_ids: list | None = None, cuda_available: bool | None = None
) -> torch.device:
    """The device for config key ``device``.

    Outside Ray (``ray_gpu_ids`` None): 'auto' is CUDA when present. Inside a Ray trial or
    task, ``ray_gpu_ids`` is ``ray.get_gpu_ids()``: none assigned means CPU even for 'auto'
    (Ray 2.60 no longer hides a node's GPUs from zero-GPU workers), and 'cuda' means the GPU
    Ray assigned; 'cuda:N' is refused there, since Ray, not the config, picks the GPU. A GPU
    Ray assigned that torch cannot use is a GpuError naming the node and the fix, for 'auto'
    too, unless the node opted in to logical GPUs (gpu_check.LOGICAL_GPUS_ENV)."""
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name == "cpu":
        return torch.device("cpu")
    if ray_gpu_ids is None:
        if name == "auto":
            return torch.device("cuda" if available else "cpu")
        if not available:
            raise ConfigError(
                f"config key 'device' is '{name}' but no CUDA GPU is visible here; "
                "set device=auto (or cpu)."
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"config key 'device' is '{name}' but this machine has "
                f"{torch.cuda.device_count()} GPU(s), numbered from 0; set device=cuda:0 or auto."
            )
        return device
    if name.startswith("cuda:"):
        raise ConfigError(
            f"config key 'device' is '{name}', but inside a Ray trial the GPU is the one Ray "
            "assigned; set device=cuda (or auto)."
        )
    if not ray_gpu_ids:
        if name == "cuda":
            raise ConfigError(
                "config key 'device' is 'cuda' but Ray gave this trial no GPU; set "
                "resources.gpu above 0 in the search space, or device=auto to run on CPU."
            )
        return torch.device("cpu")
    if not available:
        if name == "auto" and logical_gpus_on_cpu():
            return torch.device("cpu")  # opted in: this node's GPUs are logical (tests)
        raise unusable_gpu_error(ray_gpu_ids)
    return torch.device("cuda", _visible_index(str(ray_gpu_ids[0])))


def _visible_index(gpu_id: str) -> int:
    """Torch's index of the GPU Ray assigned: Ray narrows CUDA_VISIBLE_DEVICES to it."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    if gpu_id in visible:
        return visible.index(gpu_id)
    return int(gpu_id) if gpu_id.isdigit() and not visible else 0


_GPU_SHARES: dict[int, float] = {}
"""The share limit_gpu_memory set per GPU index (torch has no getter for it)."""


def limit_gpu_memory(device: torch.device, gpu_share: float) -> None:
    """Cap this process's CUDA memory at its GPU share, so trials sharing a GPU (e.g.
    resources.gpu=0.5) cannot starve each other; a whole GPU (or CPU) needs no cap."""
    if device.type == "cuda" and 0 < gpu_share < 1:
        # torch wants an index: a bare "cuda" means the current device.
        index = torch.cuda.current_device() if device.index is None else device.index
        torch.cuda.set_per_process_memory_fraction(gpu_share, index)
        _GPU_SHARES[index] = gpu_share


def gpu_memory_share(device: torch.device) -> float:
    """The share of ``device`` this process was limited to (0: the whole GPU, or a CPU)."""
    if device.type != "cuda" or not _GPU_SHARES:
        return 0.0
    index = torch.cuda.current_device() if device.index is None else device.index
    return _GPU_SHARES.get(index, 0.0)


def cpu_share() -> int:
    """CPUs this process may use: a Ray trial's share (Ray sets OMP_NUM_THREADS to it),
    else the CPUs this process is allowed to run on."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(int(share), allowed or 1) if share.isdigit() else (allowed or 1))


def configure_torch(threads: int | None) -> None:
    """Pin torch's intra-op threads (results depend on them) and pick deterministic
    kernels where that costs little (cuDNN; warnings, not errors, elsewhere)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Normalize(torch.nn.Module):
    """The teacher's input normalisation, applied alike to every image a model sees."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
