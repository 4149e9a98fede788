"""benchmarks/ood_digits.py --merge: runs on disjoint seeds combine into one paired table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO as ROOT


def _summary(seeds: list[int], ce: list[float], dfkd: list[float], kd_tau: float = 10.0) -> dict:
    def record(values: list[float]) -> dict:
        return {"test_acc1": values, "best_val_acc1": values, "best_step": [20.0] * len(values)}

    return {
        "benchmark": "fonts", "student_domain": "handwritten", "seeds": seeds, "epochs": 150,
        "steps_per_epoch": 2, "budget_steps": 300,
        "configs": {"ce": {"method": "ce", "seed": 0, "module3": {"kd_temperature": kd_tau}},
                    "dfkd": {"method": "dfkd", "seed": 0}},
        "methods": {"ce": record(ce), "dfkd": record(dfkd)},
    }  # fmt: skip


def _merge(tmp_path: Path, *summaries: dict) -> subprocess.CompletedProcess:
    files = []
    for index, summary in enumerate(summaries):
        files.append(tmp_path / f"part{index}.json")
        files[-1].write_text(json.dumps(summary))
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ood_digits.py"), "--merge", *map(str, files),
         "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_runs_on_disjoint_seeds_merge_into_one_paired_table(tmp_path):
    run = _merge(
        tmp_path, _summary([0, 1], [90.0, 92.0], [91.0, 94.0]), _summary([2], [93.0], [95.0])
    )
    assert run.returncode == 0, run.stderr
    merged = json.loads((tmp_path / "out" / "ood_fonts.json").read_text())
    assert merged["seeds"] == [0, 1, 2]
    assert merged["methods"]["ce"]["test_acc1"] == [90.0, 92.0, 93.0]
    # dfkd is the best baseline; ce's per-seed differences are -1, -2, -2
    assert "| ce | 91.7 ± 1.5 |" in run.stdout and "-1.7 ± 0.3" in run.stdout


def test_runs_of_different_configs_are_not_merged(tmp_path):
    run = _merge(tmp_path, _summary([0], [90.0], [91.0]), _summary([1], [92.0], [93.0], 1.0))
    assert run.returncode == 2
    assert "entry 'ce' ran different configs" in run.stderr


def test_runs_on_the_same_seed_are_not_merged(tmp_path):
    run = _merge(tmp_path, _summary([0], [90.0], [91.0]), _summary([0], [92.0], [93.0]))
    assert run.returncode == 2
    assert "seeds [0] appear twice; merge runs on disjoint seeds" in run.stderr
