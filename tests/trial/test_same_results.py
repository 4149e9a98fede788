"""A trial's results are bit-identical to the ones recorded before the trial was restructured:
the same seeds, drawn in the same order, at every stage (teacher, Modules 1-3, the encoder's
adaptation, the diagnostics, several seeds in lockstep).

Floating-point results are only bit-identical on the same torch build and CPU kind, so the
comparison runs where the recording was made (tiny_trial_results.json says where) and is
skipped elsewhere; re-record it there with ``python -m tests.trial.test_same_results``.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import pytest
import torch

from augkd.basics.config import Config, load_config, with_overrides
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import run_trial
from tests.conftest import TINY

RECORDED = Path(__file__).with_name("tiny_trial_results.json")
VARIES = ("_seconds", "_cache_hit")
"""Metrics that differ from run to run by nature (time, memory, what the cache held)."""


def environment() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def tiny_trials(cache_dir: str) -> dict[str, dict]:
    """AuG-KD, no_anchor on two seeds in lockstep, and KD, on the tiny settings: each
    report's metrics but those that vary, and a checksum of the best student's weights."""
    # One intra-op thread, as recorded: two threads sum in another order, and the process's
    # count (a core count, OMP_NUM_THREADS, an earlier test's) must not decide the result.
    config = load_config(None, [*TINY, "threads=1", f"teacher.cache_dir={cache_dir}"])
    runs: list[tuple[str, Config, list[int] | None]] = [
        ("augkd", config, None),
        ("no_anchor_2seeds", with_overrides(config, {"method": "no_anchor"}), [0, 1]),
        ("kd", with_overrides(config, {"method": "kd"}), None),
    ]
    results = {}
    for name, settings, seeds in runs:
        result = run_trial(settings, cache=StageCache(cache_dir), log=lambda _l: None, seeds=seeds)
        weights = [v.double().sum() for v in result.best_student.values() if v.is_floating_point()]
        results[name] = {
            "history": [_steady(report) for report in result.history],
            "best_student_sum": float(sum(weights)),
        }
    return results


def _steady(report: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in report.items() if not k.endswith(VARIES) and "peak_" not in k}


@pytest.mark.slow
def test_a_tiny_trial_reports_exactly_what_it_reported_before_the_restructuring(tmp_path):
    recorded = json.loads(RECORDED.read_text())
    if recorded["recorded_with"] != environment():
        pytest.skip(f"recorded with {recorded['recorded_with']}, running on {environment()}")
    found = tiny_trials(str(tmp_path))
    # Every recorded value is the same; a metric added since (val_loss) may come beside them.
    assert found.keys() == recorded["trials"].keys()
    for name, trial in recorded["trials"].items():
        assert found[name]["best_student_sum"] == trial["best_student_sum"], name
        assert len(found[name]["history"]) == len(trial["history"]), name
        for now, then in zip(found[name]["history"], trial["history"], strict=True):
            assert {key: now.get(key) for key in then} == then, name


if __name__ == "__main__":  # re-record, on the machine the comparison should run on
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        trials = tiny_trials(folder)
    RECORDED.write_text(
        json.dumps({"recorded_with": environment(), "trials": trials}, indent=1, sort_keys=True)
    )
    sys.exit(0)
