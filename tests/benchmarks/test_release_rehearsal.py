"""benchmarks/release_rehearsal.py: the office31 space end to end on synthetic folders.

The full rehearsal (Office-31-sized folders, resnet34 and batch 256, about 20 minutes here)
is a benchmark; its tiny variant (--smoke-test: a few tiny images, tiny nets) runs here as
the user runs it, a subprocess, through every step: data, teacher, --estimate, the search
(shared stages, trials under ASHA, MLflow), the evaluation and the report."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "release_rehearsal.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("release_rehearsal", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rehearsal")
    out = folder / "result.json"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke-test", "--work", str(folder / "work"),
         "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    return {"out": run.stdout, "result": json.loads(out.read_text())}


def test_the_synthetic_folders_are_office31_sized_and_deterministic(bench, tmp_path):
    assert bench.OFFICE31 == {"amazon": 2817, "webcam": 795, "dslr": 498}
    sizes = {"amazon": 62, "dslr": 31}
    assert bench.make_folders(tmp_path, sizes, bench.CLASSES, bench.IMAGE_SIZE) == 93
    classes = sorted(p.name for p in (tmp_path / "dslr").iterdir())
    assert len(classes) == 31 and all(len(list((tmp_path / "dslr" / c).iterdir())) == 1
                                      for c in classes)  # fmt: skip
    first = bench.synthetic_image("dslr", 3, 7, 31, 32)
    assert first.shape == (32, 32, 3) and first.dtype.name == "uint8"
    assert (first == bench.synthetic_image("dslr", 3, 7, 31, 32)).all()
    assert not (first == bench.synthetic_image("amazon", 3, 7, 31, 32)).all()  # the shift
    assert bench.make_folders(tmp_path, sizes, bench.CLASSES, bench.IMAGE_SIZE) == 0  # kept


def test_the_dry_run_states_the_shapes_and_every_cut_budget(capsys, bench):
    assert bench.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "'amazon': 2817, 'webcam': 795, 'dslr': 498" in out and "teacher resnet34" in out
    for cut in (*bench.CUT_BUDGETS, "resources.gpu=0", "resources.cpu=1", "data.image_size=32"):
        assert f"--set {cut}" in out
    assert bench.main(["--dry-run", "--device", "cuda"]) == 0
    assert "resources.gpu=0" not in capsys.readouterr().out  # a GPU run keeps the space's


def test_trials_per_gpu_divide_each_card_by_a_trials_peak_and_check_the_spaces_share(bench):
    rows = bench.trials_per_gpu(trial_gpu_mib=1500.0, stage_gpu_mib=3000.0, gpu_share=0.5)
    by_card = {row["card"].split()[0]: row for row in rows}
    assert set(by_card) == {"24", "40", "80"}
    assert by_card["24"]["trials_fit"] == int(23028 * 0.9 // (1500 + bench.CUDA_CONTEXT_MIB))
    assert all(row["space_asks"] == 2 and row["space_fits"] for row in rows)
    (small,) = [r for r in bench.trials_per_gpu(9000.0, 11000.0, 0.5) if r["card"][:2] == "24"]
    assert small["trials_fit"] == 2 and not small["space_fits"]  # two 11.5 GB stage tasks


@pytest.mark.slow
def test_the_smoke_rehearsal_runs_every_phase_and_reports_forecast_actual_and_peaks(smoke):
    out, result = smoke["out"], smoke["result"]
    assert "[estimate] office31: calibrated on cpu (bf16)" in out
    phases = [row["phase"] for row in result["forecast_actual"]]
    assert phases == ["shared stages (wall s)", "trials (wall s)", "trials (trial-s)"]
    assert all(row["forecast_s"] > 0 and row["actual_s"] > 0 for row in result["forecast_actual"])
    for phase in phases:
        assert re.search(rf"{re.escape(phase)}\s+[\d.]+\s+[\d.]+\s+[\d.]+", out)
    # the peak memory of every shared-stage task, trial and evaluation run
    assert {"preflight", "shared-stage (seed 0)"} <= set(result["shared_peaks"])
    assert all(peaks["peak_rss_mb"] > 0 for peaks in result["shared_peaks"].values())
    assert result["trials"] == 2 and len(result["trial_peaks"]) == 2
    assert all(row["peak_rss_mb"] > 0 for row in result["trial_peaks"])
    runs = {row["run"] for row in result["evaluation_peaks"]}
    assert {"rank1 seed 1", "ce seed 1"} <= runs <= {"rank1 seed 1", "defaults seed 1", "ce seed 1"}
    assert all(row["peak_rss_mb"] > 0 for row in result["evaluation_peaks"])
    # progress lines of the shared stages and of the evaluation's runs, in this log
    assert re.search(r"\[search\] module1 \(seed 0\): \d+/\d+ iterations", out)
    assert re.search(r"\[evaluate\] module3 \(rank1 seed 1\): \d+/\d+ steps, done in", out)
    assert [row["card"][:2] for row in result["trials_per_gpu"]] == ["24", "40", "80"]
    assert "[rehearsal] trials per GPU (the shipped space asks resources.gpu=0.5: 2 per GPU" in out


def _check(tmp_path: Path, python: str, *args: str) -> subprocess.CompletedProcess:
    """benchmarks/gpu_release_check.sh as a lent machine runs it, with $OUT in tmp_path."""
    env = {**os.environ, "PYTHON": python, "OUT": str(tmp_path / "out")}
    script = ROOT / "benchmarks" / "gpu_release_check.sh"
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env)


def test_the_gpu_check_plans_the_release_shapes_with_the_spaces_resources(tmp_path):
    run = _check(tmp_path, sys.executable, "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "on cuda" in run.stdout and "teacher resnet34 5 epoch(s); 8 trials" in run.stdout
    assert "--set module1.iters_per_epoch=200" in run.stdout
    assert "resources.gpu=0" not in run.stdout  # 2 trials per GPU, as the space asks


def test_the_gpu_check_names_the_packages_it_lacks_in_one_sentence(tmp_path):
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')  # no site-packages
    bare.chmod(0o755)
    run = _check(tmp_path, str(bare))
    assert run.returncode == 2
    assert run.stderr.startswith(f"error: {bare} lacks torch ray optuna mlflow")
    assert run.stderr.strip().endswith("(pip install -e . -c constraints.txt).")
    assert not (tmp_path / "out" / "release_rehearsal_cuda.log").exists()
