"""benchmarks/gpu_search.py: how it splits a run into phases and reads the trials' timing.

The run itself (a whole search) is the lent GPU's job, and its CPU smoke run (`--tiny`, about
5 minutes here) is too long for the suite; these tests pin the accounting on recorded data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.paths import REPO as ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_search.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_phase_counts_only_its_own_samples_and_its_idle_share(bench):
    samples = [(0.5, 90.0, 1000.0), (1.5, 5.0, 1200.0), (2.5, 50.0, 3000.0), (9.0, 100.0, 9e3)]
    phase = bench.summarise(samples, 0.0, 3.0)
    assert phase["seconds"] == 3.0
    assert phase["util_mean_pct"] == pytest.approx((90 + 5 + 50) / 3)
    assert phase["idle_share_pct"] == pytest.approx(100 / 3)  # one sample under 10 %
    assert phase["mem_peak_mib"] == 3000.0
    assert bench.summarise([], 0.0, 3.0)["util_mean_pct"] is None  # a CPU run: empty columns


def _write_trial(folder: Path, trial_id: str, start: float, epochs: list[tuple[float, float]]):
    """A trial's result.json as Tune writes it: one line per report."""
    lines, total = [], 0.0
    for i, (epoch_seconds, gap) in enumerate(epochs, start=1):
        total += gap
        lines.append(json.dumps({
            "trial_id": trial_id, "epoch": float(i), "epoch_seconds": epoch_seconds,
            "time_total_s": total, "time_this_iter_s": gap, "timestamp": start + total,
        }))  # fmt: skip
    (folder / trial_id).mkdir()
    (folder / trial_id / "result.json").write_text("\n".join(lines) + "\n")


def test_trial_time_splits_into_preparation_epochs_and_the_gaps_between(bench, tmp_path):
    # 30 s before epoch 1 (Module 2 ...), then epochs of 2 s reported 0.5 s apart
    _write_trial(tmp_path, "a", 1000.0, [(2.0, 32.0), (2.0, 2.5), (2.0, 2.5)])
    [span] = bench.trial_spans(str(tmp_path), offset=1000.0)
    assert span["start"] == 0.0 and span["first_report"] == 32.0 and span["end"] == 37.0
    assert span["before_first_report_s"] == pytest.approx(30.0)
    assert span["module3_epochs_s"] == pytest.approx(6.0)
    assert span["between_epochs_s"] == pytest.approx(1.0)
    assert span["epochs"] == 3


def test_the_timeline_shows_running_and_preparing_trials_against_utilisation(bench, tmp_path):
    spans = [
        {"start": 0.0, "first_report": 15.0, "end": 40.0},
        {"start": 12.0, "first_report": 30.0, "end": 40.0},
    ]
    samples = [(t + 0.5, 20.0 if t < 15 else 80.0, 0.0) for t in range(40)]
    rows = bench.timeline(samples, spans, 0.0, 40.0)
    assert [(r["trials_running"], r["trials_preparing"]) for r in rows] == [
        (1, 1), (2, 1), (2, 1), (2, 0),
    ]  # fmt: skip
    assert rows[0]["util_mean_pct"] == 20.0 and rows[3]["util_mean_pct"] == 80.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_asks_for_tiny_instead_of_running_on_cpu(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr == "error: no CUDA GPU here; run with --tiny for a CPU smoke run\n"
    assert not (tmp_path / "r.json").exists()
