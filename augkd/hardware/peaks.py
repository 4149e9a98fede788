"""Peak memory of a trial or a stage: what tells whether two trials fit on one GPU.

On CPU the process's peak resident set (Linux VmHWM, which ``reset_peak`` sets back to the
current RSS so that a reused worker process does not carry an earlier trial's peak; elsewhere
the process's lifetime peak); on CUDA also torch's peak allocated and reserved bytes.
"""

from __future__ import annotations

import contextlib
import re
import resource
import sys

import torch

PEAK_RSS = "peak_rss_mb"
PEAK_GPU_ALLOCATED = "peak_gpu_allocated_mb"
PEAK_GPU_RESERVED = "peak_gpu_reserved_mb"
PEAK_MEMORY_KEYS = (PEAK_RSS, PEAK_GPU_ALLOCATED, PEAK_GPU_RESERVED)
MIB = 1024 * 1024


def reset_peak(device: torch.device) -> None:
    """Start counting peaks from now (best effort: a kernel without clear_refs keeps the
    process's lifetime peak)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    """The peaks since ``reset_peak``, in MiB."""
    peaks = {PEAK_RSS: _peak_rss_bytes() / MIB}
    if device.type == "cuda":
        peaks[PEAK_GPU_ALLOCATED] = torch.cuda.max_memory_allocated(device) / MIB
        peaks[PEAK_GPU_RESERVED] = torch.cuda.max_memory_reserved(device) / MIB
    return peaks


def _peak_rss_bytes() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def task_peak_metrics(peaks: dict[str, dict[str, float]]) -> dict[str, float]:
    """The shared stages' peaks as metrics of the search's parent run: ``<peak>.<task>`` per
    task (``peak_rss_mb.shared_stage_seed_0``) and ``shared_<peak>`` the largest of them."""
    metrics: dict[str, float] = {}
    for task, task_peaks in peaks.items():
        slug = re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_")
        for key, value in task_peaks.items():
            metrics[f"{key}.{slug}"] = float(value)
            metrics[f"shared_{key}"] = max(metrics.get(f"shared_{key}", 0.0), float(value))
    return metrics
