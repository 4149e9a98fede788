"""What memory a device still has for this process: host RAM (capped by a cgroup's limit)
on a CPU, free memory on a GPU; and the refusal, in one sentence naming the key that sets its
size, of a stage whose estimate (``StageMemory``, made by augkd.method.memory) does not fit in it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from augkd.basics.config import MEMORY_SHARE
from augkd.basics.errors import ResourceError


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


# ---- the refusal ---------------------------------------------------------------------


@dataclass(frozen=True)
class StageMemory:
    """One stage's estimate: what it holds whatever the batch, and what each row adds."""

    stage: str
    """As the sentence names it: "Module 1", "Module 3", "teacher training"."""
    key: str
    """The config key that sets the stage's size (its batch size)."""
    value: int | str
    """That key's value in the config."""
    rows: int
    """Rows one training step runs (the batch, capped by the data; doubled by mixing)."""
    fixed_bytes: int
    """Parameters, gradients, optimizer state and data, whatever the batch."""
    row_bytes: int
    """Peak bytes each row of the batch adds."""
    rows_per_unit: float = 1.0
    """Rows per unit of the key's value (2 for Module 3's mixed batch)."""
    copies: int = 1
    """Processes that run the stage at once on the device (a search's concurrent tasks)."""

    @property
    def bytes(self) -> int:
        return self.copies * (self.fixed_bytes + self.rows * self.row_bytes)

    def largest_value(self, available: int) -> int:
        """The largest value of the key whose estimate fits in ``available`` bytes."""
        spare = available // self.copies - self.fixed_bytes
        return max(0, int(spare / max(self.row_bytes * self.rows_per_unit, 1)))


def gib(count: float) -> str:
    """Bytes as a short human number (GB, MB)."""
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.0f} MB"


def check_fits(
    estimates: Iterable[StageMemory], device: torch.device, gpu_share: float = 0.0
) -> None:
    """Refuse, in one sentence naming the key, the first stage that cannot fit in
    MEMORY_SHARE of what ``device`` has available now."""
    estimates = list(estimates)
    if not estimates:
        return
    available, where = available_bytes(device, gpu_share)
    room = int(available * MEMORY_SHARE)
    for estimate in estimates:
        if estimate.bytes > room:
            largest = estimate.largest_value(room)
            fix = (
                f"lower {estimate.key} to {largest} or less"
                if largest >= 2 and estimate.key.endswith("batch_size")
                else f"lower {estimate.key} or choose smaller networks (teacher.arch, student.arch)"
            )
            at_once = f" ({estimate.copies} at once)" if estimate.copies > 1 else ""
            raise ResourceError(
                f"{estimate.stage}{at_once} would need about {gib(estimate.bytes)} of memory "
                f"at {estimate.key}={estimate.value}, but {where} {gib(available)} available; "
                f"{fix}."
            )
