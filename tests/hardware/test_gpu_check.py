"""Why torch cannot use a GPU Ray assigned, in one sentence: the node, torch's CUDA build, the
NVIDIA driver and the fix, for each cause (augkd/hardware/gpu_check.py). The search-level refusal runs
on a fake-GPU Ray node in tests/search/test_cluster_failures.py."""

from __future__ import annotations

import pytest

from augkd.basics.errors import ExitCode, GpuError
from augkd.hardware.gpu_check import (
    LOGICAL_GPUS_ENV,
    NO_DRIVER,
    GpuStack,
    logical_gpus_on_cpu,
    parse_driver_version,
    supported_cuda_major,
    unusable_gpu_sentence,
)
from augkd.hardware.runtime import resolve_device

NODE = "node 6983cecfbe5a (ip-10-0-1-5, 10.0.1.5)"
PROC_TEXT = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)


def test_driver_version_is_read_from_the_kernel_module_file_or_nvidia_smi():
    assert parse_driver_version(PROC_TEXT) == "535.104.05"
    assert parse_driver_version("570.86.15\n") == "570.86.15"  # nvidia-smi --query-gpu
    assert parse_driver_version("NVIDIA-SMI has failed because it couldn't communicate") is None


def test_newest_cuda_a_driver_runs():
    assert supported_cuda_major("535.104.05") == 12
    assert supported_cuda_major("580.65.06") == 13
    assert supported_cuda_major("470.82.01") == 11
    assert supported_cuda_major("418.0") is None


@pytest.mark.parametrize(
    ("cuda", "driver", "says"),
    [
        (None, "570.86.15", ["torch 2.14.1 is a CPU-only build", "install a CUDA build of torch"]),
        ("13.0", None, [f"built for CUDA 13.0 and {NO_DRIVER}", "set resources.gpu=0"]),
        (
            "13.0",
            "535.104.05",
            [
                "built for CUDA 13.0, which needs NVIDIA driver 580 or newer",
                "the node has driver 535.104.05",
                "install a torch wheel built for CUDA 12.x on that node",
            ],
        ),
        ("12.8", "570.86.15", ["NVIDIA driver 570.86.15, yet torch sees no CUDA device", "nvidia-smi"]),
    ],
)  # fmt: skip
def test_unusable_gpu_sentence_names_node_versions_and_fix(cuda, driver, says):
    sentence = unusable_gpu_sentence(["0"], GpuStack(NODE, "2.14.1", cuda, driver))
    assert sentence.startswith(f"Ray gave this worker GPU 0 on {NODE}, but torch cannot use it: ")
    for part in says:
        assert part in sentence, sentence
    assert sentence.endswith(".") and "\n" not in sentence


def test_a_gpu_ray_assigned_that_torch_cannot_use_is_refused_even_for_device_auto(monkeypatch):
    monkeypatch.delenv(LOGICAL_GPUS_ENV, raising=False)
    for device in ("auto", "cuda"):
        with pytest.raises(GpuError, match="Ray gave this worker GPU 0 on node ") as refused:
            resolve_device(device, ray_gpu_ids=["0"], cuda_available=False)
        assert refused.value.exit_code == ExitCode.BAD_INPUT


def test_logical_gpus_run_device_auto_on_cpu_only_where_the_node_opted_in(monkeypatch):
    monkeypatch.setenv(LOGICAL_GPUS_ENV, "1")
    assert logical_gpus_on_cpu()
    assert resolve_device("auto", ray_gpu_ids=["0"], cuda_available=False).type == "cpu"
    with pytest.raises(GpuError):  # device: cuda insists on CUDA, opt-in or not
        resolve_device("cuda", ray_gpu_ids=["0"], cuda_available=False)
    monkeypatch.setenv(LOGICAL_GPUS_ENV, "0")
    assert not logical_gpus_on_cpu()
