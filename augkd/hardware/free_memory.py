"""What memory a device still has for this process: host RAM (capped by a cgroup's limit)
on a CPU, free memory on a GPU. What augkd.trial.memory holds its estimates against.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch


def host_available_bytes() -> int:
    """Host RAM this process can still get: the kernel's MemAvailable, capped by the
    cgroup's limit (a container or a Ray worker's cgroup) when there is one."""
    available = _meminfo_available()
    limit = _cgroup_room()
    return min(available, limit) if limit is not None else available


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _cgroup_room() -> int | None:
    """The cgroup's limit minus its use (cgroup v2, then v1); None when unlimited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:
            return None
        return max(0, int(limit) - usage)
    return None


def cuda_available_bytes(
    device: torch.device,
    share: float = 0.0,
    mem_get_info: Callable[[torch.device], tuple[int, int]] | None = None,
) -> int:
    """Free memory of the GPU for this process: what the driver reports free, plus what
    torch's allocator holds unused, capped by the process's GPU share (a trial sharing a GPU,
    resources.gpu=0.5)."""
    free, total = (mem_get_info or torch.cuda.mem_get_info)(device)
    allocated, reserved = 0, 0
    if torch.cuda.is_initialized():
        allocated = torch.cuda.memory_allocated(device)
        reserved = torch.cuda.memory_reserved(device)
    free += reserved - allocated
    if 0 < share < 1:
        free = min(free, int(total * share) - allocated)
    return max(0, free)


def available_bytes(device: torch.device, gpu_share: float = 0.0) -> tuple[int, str]:
    """(bytes a stage may still allocate on ``device``, how the sentence names it)."""
    if device.type == "cuda":
        return cuda_available_bytes(device, gpu_share), f"GPU {device} has"
    return host_available_bytes(), "this machine has"
