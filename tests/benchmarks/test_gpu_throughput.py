"""benchmarks/gpu_throughput.py runs its smallest setting on a CPU (the GPU run is the
lent machine's job; see docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.paths import REPO as ROOT


@pytest.mark.slow
def test_gpu_throughput_smallest_setting_runs_on_cpu(tmp_path):
    out = tmp_path / "throughput.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--device", "cpu",
         "--trials", "1,2", "--precisions", "bf16", "--images", "16", "--batch", "8",
         "--epochs", "1", "--student", "tiny_cnn", "--teacher", "small_cnn",
         "--image-size", "16", "--latent", "8", "--classes", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["trials"], r["precision"]) for r in rows] == [(1, "bf16"), (2, "bf16")]
    for row in rows:
        assert row["epochs_per_s_total"] > 0 and row["peak_mib_per_trial"] > 0
        assert row["epochs_per_s_per_trial"] * row["trials"] == pytest.approx(
            row["epochs_per_s_total"]
        )
        assert row["gpu_utilisation_pct"] is None  # no GPU to sample on a CPU run
    assert "epochs/s total" in run.stdout


@pytest.mark.slow
def test_a_trial_process_that_dies_ends_the_run_instead_of_hanging(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--device", "cpu",
         "--trials", "2", "--precisions", "bf16", "--images", "16", "--batch", "8",
         "--epochs", "1", "--student", "no_such_arch", "--teacher", "small_cnn",
         "--image-size", "16", "--out", str(tmp_path / "t.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1
    assert "2 trials per GPU: a trial process failed" in run.stderr
    assert not (tmp_path / "t.json").exists()
