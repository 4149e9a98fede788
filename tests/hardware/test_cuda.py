"""What only a real GPU can show; skipped without CUDA. Imports torch, pytest and augkd's
core only (no Ray, MLflow or Optuna), so it runs on a bare GPU machine:

    PYTHONPATH=. python -m pytest -q tests/test_cuda.py
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from augkd.basics.config import with_overrides
from augkd.hardware.runtime import resolve_device
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import run_trial
from tests.paths import REPO as ROOT

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda", 0)


def _quiet(_line: str) -> None:
    pass


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_augkd_trial_runs_on_the_gpu_in_each_precision(tiny_config, tmp_path, precision):
    config = with_overrides(tiny_config, {"precision": precision, "module3.epochs": 2})
    reports = []
    result = run_trial(
        config, on_epoch=lambda m, _s: reports.append(m), cache=StageCache(str(tmp_path)),
        log=_quiet, device=CUDA,
    )  # fmt: skip
    assert [m["epoch"] for m in reports] == [1.0, 2.0]
    assert all(torch.isfinite(torch.tensor(m["train_loss"])) for m in reports)
    assert 0.0 <= result.metrics["test_acc1"] <= 100.0


def test_gpu_checkpoint_loads_on_cpu_and_resumes_there(tiny_config, tmp_path):
    config = with_overrides(tiny_config, {"method": "kd", "module3.epochs": 3})
    states = {}

    def keep(metrics, make_state):
        states[int(metrics["epoch"])] = make_state()

    run_trial(config, on_epoch=keep, cache=StageCache(str(tmp_path)), log=_quiet, device=CUDA)
    assert states[1]["cuda_rng"] is not None  # the CUDA RNG state is saved too
    torch.save(states[1], tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" for v in state["student"].values())
    resumed = run_trial(
        config, resume_state=state, cache=StageCache(str(tmp_path)), log=_quiet,
        device=torch.device("cpu"),
    )  # fmt: skip
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0, 3.0]


def test_gpu_resume_mid_module3_matches_an_uninterrupted_run(tiny_config, tmp_path):
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    config = with_overrides(tiny_config, {"module3.epochs": 3})
    states = {}

    def keep(metrics, make_state):
        states[int(metrics["epoch"])] = make_state()

    full = run_trial(config, on_epoch=keep, cache=StageCache(str(tmp_path)), log=_quiet,
                     device=CUDA)  # fmt: skip
    resumed = run_trial(config, resume_state=states[1], cache=StageCache(str(tmp_path)),
                        log=_quiet, device=CUDA)  # fmt: skip
    assert [h["val_acc1"] for h in resumed.history] == [h["val_acc1"] for h in full.history]
    for key, value in full.best_student.items():
        assert torch.allclose(resumed.best_student[key].float(), value.float(), atol=1e-4), key


def test_trial_sharing_a_gpu_is_capped_at_its_share_of_memory():
    code = (
        "import torch\n"
        "from augkd.hardware.runtime import limit_gpu_memory\n"
        "device = torch.device('cuda', 0)\n"
        "limit_gpu_memory(device, 0.25)\n"
        "total = torch.cuda.get_device_properties(device).total_memory\n"
        "small = torch.empty(int(total * 0.1), dtype=torch.uint8, device=device)\n"
        "try:\n"
        "    torch.empty(int(total * 0.3), dtype=torch.uint8, device=device)\n"
        "except torch.OutOfMemoryError:\n"
        "    print('capped')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "capped", run.stderr[-2000:]


def test_device_is_the_gpu_ray_assigned_or_cpu_when_none():
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", ray_gpu_ids=[]) == torch.device("cpu")
    assert resolve_device("cuda", ray_gpu_ids=["0"]).type == "cuda"


def test_throughput_benchmark_smallest_setting_on_the_gpu(tmp_path):
    out = tmp_path / "throughput.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--trials", "1,2",
         "--precisions", "bf16,fp16", "--images", "256", "--epochs", "1", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.exists() and "epochs/s total" in run.stdout
